"""The background projection and the fraction errors, on plain arrays: the projected problem
gives the joint least squares, and the propagated errors match the scatter of fits of many
noisy copies of one spectrum."""

import numpy as np

from xanes_stream.io.references import bundled_reference
from xanes_stream.spectra.background import background_design, projected_problem
from xanes_stream.spectra.fit import solve
from xanes_stream.spectra.references import reference_matrix
from xanes_stream.spectra.uncertainty import fraction_errors

ENERGIES = np.arange(8250.0, 8360.0, 1.0)
E0 = 8333.0


def _basis():
    refs = [bundled_reference("NiO"), bundled_reference("LiNiO2")]
    return reference_matrix(refs, ENERGIES, (ENERGIES[0], ENERGIES[-1]))


def test_projected_problem_is_the_joint_least_squares():
    R = _basis()
    B = background_design(ENERGIES, E0, ("constant", "linear", "e-3"))
    rng = np.random.default_rng(0)
    y = rng.normal(size=(ENERGIES.size, 5))
    projected, pseudo_inverse, _ = projected_problem(R, B)
    t = solve(projected.T @ projected, projected.T @ y, "lstsq")
    b = pseudo_inverse @ (y - R @ t)
    joint = np.linalg.lstsq(np.hstack([R, B]), y, rcond=None)[0]
    np.testing.assert_allclose(np.vstack([t, b]), joint, rtol=1e-6, atol=1e-8)


def test_errors_match_the_scatter_of_noisy_fits():
    """20000 noisy copies of one mixture, noise growing 3x along the scan: the residual's
    (sandwich) estimate and the measured-noise one both give the scatter of the fractions
    within 5 %."""
    R = _basis()
    truth = np.array([0.3, 0.5])
    rng = np.random.default_rng(1)
    sigma = np.linspace(0.005, 0.015, ENERGIES.size)
    n = 20_000
    y = R @ truth[:, None] + rng.normal(size=(ENERGIES.size, n)) * sigma[:, None]
    G = R.T @ R
    c = solve(G, R.T @ y, "lstsq")
    f = c / c.sum(axis=0)
    spread = f.std(axis=1)
    residual = y - R @ c
    leverage = np.einsum("ek,kl,el->e", R, np.linalg.inv(G), R)
    sandwich = fraction_errors(
        c, R, G, residual_variance=residual**2 / (1 - leverage)[:, None], normalize=True
    )
    measured = fraction_errors(c, R, G, variance=sigma**2, normalize=True)
    np.testing.assert_allclose(np.median(sandwich, axis=1), spread, rtol=0.05)
    np.testing.assert_allclose(np.median(measured, axis=1), spread, rtol=0.05)
    raw = fraction_errors(c, R, G, variance=sigma**2)
    np.testing.assert_allclose(raw[:, 0], c.std(axis=1), rtol=0.05)
