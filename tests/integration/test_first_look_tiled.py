"""A first look's maps (no references) written to a real Tiled server, uploaded and registered,
and read back with the ordinary Tiled client and by the store."""

import numpy as np
import pytest
from helpers.phantoms import kinds_phantom

from xanes_stream.pipeline.first_look import FIRST_LOOK_NOTE, first_look


@pytest.fixture(scope="module")
def look():
    p, _ = kinds_phantom(("NiO", "LiNiO2"), shape=(48, 48), n_particles=4, seed=2)
    settings = {"mask": {"n_clusters": 2}, "registration": {"method": "none"}}
    return first_look(p.frames, p.energies, dark=p.dark, flat=p.flat, settings=settings)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["register", "upload"])
def test_first_look_in_tiled(look, tiled, mode):
    from tiled.client import from_uri

    from xanes_stream.store.tiled_store import TiledResultStore

    client = from_uri(tiled.uri, api_key=tiled.api_key)
    results_dir = tiled.results_dir if mode == "register" else None
    store = TiledResultStore(client, results_dir=results_dir)
    uid = f"look-{mode}"
    store.write_maps(uid, look, {})

    node = from_uri(tiled.uri, api_key=tiled.api_key)["xanes"][uid]  # as a user reads it
    md = node.metadata
    assert md["method"] == "first_look" and md["references"] == []
    assert FIRST_LOOK_NOTE in md["notes"]
    assert node["fractions"].read().size == 0
    np.testing.assert_allclose(node["edge_energy"].read(), look.edge_energy, equal_nan=True)
    product = look.products["first_look"]
    stored = node["products"]["first_look"]
    for name in ("white_line_height", "pre_edge"):
        np.testing.assert_allclose(stored[name].read(), product.images[name], equal_nan=True)
    spectra = md["first_look"]["cluster_spectra"]
    assert list(spectra) == ["cluster1", "cluster2"]
    np.testing.assert_allclose(spectra["cluster2"], product.spectra["cluster_spectra"][1])
    scree = node["products"]["decomposition"]["pca"]["scree"].read()
    assert np.all(np.diff(np.asarray(scree["singular_value"])) <= 1e-9)

    back = store.read_maps(uid)
    assert back.reference_names == [] and back.fractions.shape == (0, 48, 48)
    np.testing.assert_allclose(
        back.products["first_look"].spectra["cluster_spectra"], product.spectra["cluster_spectra"]
    )
