"""``fraction_errors`` in Tiled: written both ways (uploaded, and registered as a maps file),
read back with a plain Tiled client and with the store's reader."""

import numpy as np
import pytest
from helpers.od_phantom import od_phantom

from xanes_stream import analyze


@pytest.fixture(scope="module")
def maps():
    p = od_phantom((24, 24), counts=20_000, seed=4)
    settings = {
        "registration": {"method": "none"},
        "mask": {"n_clusters": 0},
        "fit": {"errors": True},
    }
    return analyze(p.od, p.energies, p.references, mode="absorbance", settings=settings)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["register", "upload"])
def test_fraction_errors_read_back(maps, tiled, mode):
    from tiled.client import from_uri

    from xanes_stream.store.tiled_store import TiledResultStore

    client = from_uri(tiled.uri, api_key=tiled.api_key)
    results_dir = tiled.results_dir if mode == "register" else None
    store = TiledResultStore(client, results_dir=results_dir)
    store.write_maps(f"errors-{mode}", maps, {})
    reader = from_uri(tiled.uri, api_key=tiled.api_key)  # a plain client, as users have
    node = reader["xanes"][f"errors-{mode}"]["fraction_errors"]
    np.testing.assert_array_equal(node.read(), maps.fraction_errors)
    assert list(node.metadata["reference_names"]) == maps.reference_names
    back = store.read_maps(f"errors-{mode}")
    np.testing.assert_array_equal(back.fraction_errors, maps.fraction_errors)
