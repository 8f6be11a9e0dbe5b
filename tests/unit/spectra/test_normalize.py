"""Edge normalization against real Larch output (tests/data/larch_pre_edge.json)."""

import json

import numpy as np
import pytest
from helpers import DATA

from xanes_stream.io.references import bundled_reference
from xanes_stream.spectra.normalize import (
    EdgeOperator,
    NormalizationError,
    edge_windows,
    find_e0,
    normalize,
)

LARCH = json.loads((DATA / "larch_pre_edge.json").read_text())


@pytest.mark.parametrize(
    ("name", "bundled"), [("cu_metal_rt.xdi", "Cu"), ("ni_metal_rt.xdi", "Ni")]
)
def test_matches_larch_pre_edge(name, bundled):
    larch = LARCH["spectra"][name]
    ref = bundled_reference(bundled)
    e0 = find_e0(ref.energy, ref.mu)
    assert e0 == pytest.approx(larch["e0"], abs=0.01)
    windows = edge_windows(ref.energy, e0)
    assert (windows.pre[0] - e0, windows.pre[1] - e0) == pytest.approx(larch["pre"])
    assert (windows.post[0] - e0, windows.post[1] - e0) == pytest.approx(larch["norm"])
    assert windows.post_order == larch["nnorm"]
    result = normalize(ref.energy, ref.mu, windows)
    assert result.step == pytest.approx(larch["edge_step"], rel=1e-9)
    ours = np.interp(larch["energy"], ref.energy, result.norm)
    assert np.max(np.abs(ours - np.array(larch["normalized"]))) < 2e-6


def test_cu_e0_is_larch_figure():
    ref = bundled_reference("Cu")
    assert find_e0(ref.energy, ref.mu) == 8980.5


def test_operator_equals_direct_normalization():
    """The matrix form used per block gives the same numbers as the per-spectrum path."""
    rng = np.random.default_rng(0)
    ref = bundled_reference("Ni")
    energy = np.linspace(8250, 8600, 90)
    mu = np.interp(energy, ref.energy, ref.mu)[:, None] * rng.uniform(0.5, 2, 50) + rng.normal(
        0, 1e-3, (90, 50)
    )
    windows = edge_windows(energy, find_e0(energy, mu.mean(axis=1)))
    op = EdgeOperator.build(energy, windows)
    norm, step = op.apply(mu.astype(np.float64), out_dtype=np.float64)
    direct = normalize(energy, mu, windows)
    np.testing.assert_allclose(step, direct.step, rtol=1e-9)
    np.testing.assert_allclose(norm, direct.norm[op.fit_index], atol=1e-9)


def test_too_few_pre_edge_points_is_clear_error():
    energy = np.linspace(8330, 8400, 30)
    with pytest.raises(NormalizationError, match="pre-edge window"):
        edge_windows(energy, 8340.0, pre=(-100, -95))


def test_e0_outside_scan_is_clear_error():
    with pytest.raises(NormalizationError, match="outside the scan"):
        edge_windows(np.linspace(8300, 8400, 30), 9000.0)
