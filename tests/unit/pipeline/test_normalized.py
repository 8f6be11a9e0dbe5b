"""normalize_stack() normalizes exactly as analyze() does."""

import numpy as np
import pytest

from xanes_stream import analyze
from xanes_stream.errors import AnalysisError
from xanes_stream.pipeline.normalized import normalize_stack
from xanes_stream.sim.phantom import make_phantom
from xanes_stream.spectra.normalize import edge_windows, normalize


@pytest.fixture(scope="module")
def phantom():
    return make_phantom((64, 64), references=("NiO", "LiNiO2", "Ni"), drift=0.5, seed=3)


@pytest.fixture(scope="module")
def maps(phantom):
    p = phantom
    return analyze(p.frames, p.energies, p.references, dark=p.dark, flat=p.flat)


@pytest.fixture(scope="module")
def stack(phantom, maps):
    p = phantom
    return normalize_stack(p.frames, p.energies, dark=p.dark, flat=p.flat, apply_shifts=maps.shifts)


def test_edge_step_is_analyze_thickness(phantom, maps, stack):
    p = phantom
    assert stack.e0 == maps.metadata["normalization"]["e0"]
    np.testing.assert_allclose(stack.edge_step, maps.thickness, rtol=1e-4, atol=1e-5)
    # registering again measures the same shifts: the same stack
    again = normalize_stack(p.frames, p.energies, dark=p.dark, flat=p.flat)
    np.testing.assert_allclose(again.spectra, stack.spectra, rtol=1e-4, atol=1e-4, equal_nan=True)


def test_spectra_are_larch_normalization(phantom, maps):
    """Pixels of an unregistered stack equal spectra.normalize (Larch's pre_edge) on -ln(T)."""
    p = phantom
    stack = normalize_stack(
        p.frames,
        p.energies,
        dark=p.dark,
        flat=p.flat,
        settings={"registration": {"method": "none"}},
    )
    mu = -np.log(p.transmission).astype(np.float64)
    windows = edge_windows(p.energies, stack.e0)
    ys, xs = np.nonzero(p.particles)
    picks = np.linspace(0, ys.size - 1, 7).astype(int)
    for y, x in zip(ys[picks], xs[picks], strict=True):
        expected = normalize(p.energies, mu[:, y, x], windows)
        np.testing.assert_allclose(stack.spectra[:, y, x], expected.norm, atol=2e-3)
        assert stack.edge_step[y, x] == pytest.approx(expected.step, rel=1e-3)


def test_registered_mean_spectrum_is_truth(phantom, stack):
    """Over thick particle pixels of the registered stack, the mean normalized spectrum is the
    mean of the true spectra up to the common factor a short post-edge window gives the step
    (references are normalized over their full range; see references.unit_step)."""
    p = phantom
    core = p.particles & (p.thickness > 0.5 * p.thickness.max())
    truth = p.true_spectra()[:, core].mean(axis=1)
    mean = stack.spectra[:, core].mean(axis=1)
    scale = float(mean @ truth / (mean @ mean))
    assert 0.9 < scale < 1.1
    assert np.abs(scale * mean - truth).max() < 0.03
    assert stack.mask[core].mean() > 0.98 and stack.mask[~p.particles].mean() < 0.02


def test_too_few_energies_is_an_error(phantom):
    p = phantom
    with pytest.raises(AnalysisError, match="at least 5"):
        normalize_stack(p.frames[:4], p.energies[:4], dark=p.dark, flat=p.flat[:4])
