"""The topography of a volume (a ball with a spherical reaction front) written to a real Tiled
server, uploaded and registered, and read back as a user reads it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers.front_ball import front_volume

from xanes_stream.pipeline.volume import analyze_volume


@pytest.fixture(scope="module")
def volume_maps():
    od, energies, refs, _, _ = front_volume()
    # a level no voxel reaches adds an empty surface to the tables
    topography = {"enabled": True, "n_levels": 2, "percentiles": (8.0, 18.0)}
    settings = {"products": {"topography": topography}}
    maps = analyze_volume(od, energies, refs, mode="absorbance", settings=settings, progress=0)
    empty = {**topography, "levels": (9000.0,)}
    lonely = analyze_volume(
        od[:, 16:20],
        energies,
        refs,
        mode="absorbance",
        settings={"products": {"topography": empty}},
        progress=0,
    )
    return maps, lonely


def _table(node) -> dict:
    table = pd.DataFrame(node.read())  # a table when uploaded, a record array when registered
    return {c: table[c].to_numpy() for c in table.columns}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["register", "upload"])
def test_topography_in_tiled(volume_maps, tiled, mode):
    from tiled.client import from_uri

    from xanes_stream.store.tiled_store import TiledResultStore

    maps, lonely = volume_maps
    client = from_uri(tiled.uri, api_key=tiled.api_key)
    results_dir = tiled.results_dir if mode == "register" else None
    store = TiledResultStore(client, results_dir=results_dir)
    store.write_maps(f"topo-{mode}", maps, {})
    store.write_maps(f"topo-empty-{mode}", lonely, {})
    reader = from_uri(tiled.uri, api_key=tiled.api_key)
    node = reader["xanes"][f"topo-{mode}"]["products"]["topography"]
    expected = maps.products["topography"].tables
    for key in ("levels", "histogram", "vertices", "faces"):
        got = _table(node[key])
        for column, values in expected[f"topography/{key}"].items():
            np.testing.assert_allclose(got[column], values, equal_nan=True)
    # read back with the maps, as the page reads them: the levels and histograms, not surfaces
    back = store.read_maps(f"topo-{mode}").products["topography"]
    assert set(back.tables) == {"topography/levels", "topography/histogram"}
    for key, table in back.tables.items():
        for column, values in expected[key].items():
            np.testing.assert_allclose(table[column], values, equal_nan=True)
    assert back.metadata["levels"] == pytest.approx(maps.products["topography"].metadata["levels"])
    meta = node.metadata
    if isinstance(meta.get("metadata"), str):  # register: the HDF5 attribute, as JSON
        meta = json.loads(meta["metadata"])
    assert meta["levels"] == pytest.approx(maps.products["topography"].metadata["levels"])
    # the empty surface: a level row with no points, no vertices
    empty = reader["xanes"][f"topo-empty-{mode}"]["products"]["topography"]
    levels = _table(empty["levels"])
    assert list(levels["n_points"]) == [0]
    assert "error" not in lonely.products["topography"].metadata
