"""The FLUO self-absorption equations: alpha, the correction, and the forward model."""

import numpy as np
import pytest

from xanes_stream.errors import AnalysisError
from xanes_stream.io.references import bundled_reference
from xanes_stream.spectra.references import unit_step
from xanes_stream.spectra.self_absorption import (
    absorption_ratio,
    correct_self_absorption,
    self_absorbed,
)


def test_alpha_from_cross_sections_and_angles():
    # equal angles: (mu_f + mu_below) / jump
    assert absorption_ratio(50.0, 40.0, 240.0) == pytest.approx(90.0 / 200.0)
    # grazing exit: the fluorescence travels further out, alpha grows by sin(in)/sin(out)
    ratio = np.sin(np.deg2rad(80)) / np.sin(np.deg2rad(10))
    assert absorption_ratio(50.0, 40.0, 240.0, 80.0, 10.0) == pytest.approx(
        (50.0 * ratio + 40.0) / 200.0
    )


@pytest.mark.parametrize("values", [(50.0, 240.0, 40.0), (50.0, 40.0, 40.0), (np.nan, 1.0, 2.0)])
def test_no_edge_jump_is_a_clear_error(values):
    with pytest.raises(AnalysisError, match="self-absorption"):
        absorption_ratio(*values)


def test_correction_undoes_the_thick_sample_damping_of_many_pixels():
    """Mixtures of NiO and LiNiO2 (normalized), damped by the forward model, each pixel with
    its own edge step and no pre-edge offset (fluorescence): the correction returns them to
    1e-12."""
    nio, linio2 = unit_step(bundled_reference("NiO")), unit_step(bundled_reference("LiNiO2"))
    other = np.interp(nio.energy, linio2.energy, linio2.mu)
    f = np.linspace(0.0, 1.0, 7)
    true = np.outer(nio.mu, f) + np.outer(other, 1 - f)  # (n_energy, 7 pixels)
    for alpha in (0.4, 1.7, 9.0):
        damped = self_absorbed(true, alpha)
        assert np.max(true - damped) > 0.01  # the white line is damped
        np.testing.assert_allclose(damped[-1] / true[-1], 1.0, atol=0.1)
        # fluo_corr corrects mu with its own normalization: here step 1, no pre-edge line
        step = np.array([2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
        corrected = correct_self_absorption(damped * step, damped, alpha) / step
        np.testing.assert_allclose(corrected, true, atol=1e-12)


def test_beyond_saturation_is_nan_and_dtype_kept():
    alpha = 0.4
    norm = np.array([[0.0, 1.0, 1.39, 1.4, 2.0]], dtype=np.float32)
    out = correct_self_absorption(norm, norm, alpha)
    assert out.dtype == np.float32
    assert np.isfinite(out[0, :3]).all()
    assert np.isnan(out[0, 3:]).all()  # no thick sample gives norm >= 1 + alpha
    assert correct_self_absorption(np.array([1, 2]), np.array([0.5, 0.5]), 1.0).dtype == float
