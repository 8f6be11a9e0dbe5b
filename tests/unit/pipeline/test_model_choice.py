"""``fit.model: auto`` (the default): an L2,3-edge stack with no post-edge free of other edges
is fitted in optical density, and says why; a K-edge stack keeps the normalized model; asked
for the normalized model where it distorts, the analysis warns, or refuses when told to."""

import numpy as np
import pytest
from helpers import core
from helpers.l_edge import l_edge_phantom

from xanes_stream import analyze
from xanes_stream.errors import AnalysisError

NO_REGISTRATION = {"registration": {"method": "none"}}


@pytest.fixture(scope="module")
def l_edge():
    return l_edge_phantom(seed=2)


def _od_maps(p, **fit):
    settings = {**NO_REGISTRATION, "fit": fit}
    return analyze(p.od, p.energies, p.references, mode="absorbance", settings=settings)


def _median_error(maps, p):
    return float(np.nanmedian(np.abs(maps.fractions - p.fractions)[:, maps.mask]))


def test_an_l_edge_stack_is_fitted_in_optical_density_and_says_why(l_edge):
    auto, normalized = _od_maps(l_edge), _od_maps(l_edge, model="normalized")
    chosen = auto.metadata["fit_model"]
    assert chosen["model"] == "optical_density" and chosen["asked"] == "auto"
    assert chosen["r_factor_normalized"] > 100 * chosen["r_factor_optical_density"]
    assert any(n.startswith("fit model: optical_density") for n in auto.metadata["notes"])
    # the normalized model, asked for, is kept with a warning; its fractions are worse
    assert normalized.metadata["fit_model"]["model"] == "normalized"
    assert any(n.startswith("warning: edge normalization") for n in normalized.metadata["notes"])
    assert _median_error(auto, l_edge) < 0.02
    assert _median_error(normalized, l_edge) > 2 * _median_error(auto, l_edge)
    ratio = auto.thickness / l_edge.thickness
    assert abs(np.median(ratio) - 1) < 0.01 and np.percentile(np.abs(ratio - 1), 99) < 0.1


def test_refused_when_told_to(l_edge):
    with pytest.raises(AnalysisError, match="optical_density"):
        _od_maps(l_edge, model="normalized", model_check="refuse")


def test_a_k_edge_stack_keeps_the_normalized_model(phantom2):
    settings: dict = {}
    p = phantom2
    auto = analyze(p.frames, p.energies, p.references, dark=p.dark, flat=p.flat, settings=settings)
    chosen = auto.metadata["fit_model"]
    assert chosen["model"] == "normalized"
    assert chosen["r_factor_normalized"] < 100 * chosen["r_factor_optical_density"]
    explicit = analyze(p.frames, p.energies, p.references, dark=p.dark, flat=p.flat,
                       settings={**settings, "fit": {"model": "normalized"}})  # fmt: skip
    np.testing.assert_array_equal(auto.fractions, explicit.fractions)
    assert not any(n.startswith("warning") for n in explicit.metadata["notes"])
    inside = core(p)
    assert np.median(np.abs(auto.fraction("NiO") - p.fractions[0])[inside]) < 0.03
