"""The live page lists and draws the fraction-error maps when the scan has them."""

import io
from dataclasses import replace

import matplotlib.image
import numpy as np
import pytest
from helpers.od_phantom import od_phantom

from xanes_stream import analyze
from xanes_stream.live.web.render import UnknownMap, map_names, map_title, render_map


def test_fraction_errors_are_listed_and_drawn():
    p = od_phantom((32, 32), counts=20_000, seed=2)
    settings = {"registration": {"method": "none"}, "mask": {"n_clusters": 0}}
    settings["fit"] = {"errors": True}
    maps = analyze(p.od, p.energies, p.references, mode="absorbance", settings=settings)
    names = map_names(maps)
    expected = [f"fraction_errors/{n}" for n in maps.reference_names]
    assert names[-len(expected) :] == expected
    png = render_map(maps, expected[0])
    assert matplotlib.image.imread(io.BytesIO(png)).ndim == 3
    assert "1-sigma" in map_title(expected[1], maps)
    without = replace(maps, fraction_errors=None)
    assert not any(n.startswith("fraction_errors/") for n in map_names(without))
    with pytest.raises(UnknownMap):
        map_title(expected[0], without)
    assert np.isfinite(maps.fraction_errors).all()
