"""PCA denoising's numbers: the components of a low-rank matrix with noise, the rank the
Marchenko-Pastur edge gives, and the projector."""

import numpy as np
import pytest

from xanes_stream.errors import AnalysisError
from xanes_stream.io.references import bundled_reference
from xanes_stream.sim.phantom import ni_edge_energies, unit_step_spectrum
from xanes_stream.spectra.denoise import (
    marchenko_pastur_median,
    noise_rank,
    pca_projection,
    principal_components,
)


def _spectra(n_pixels=8000, sigma=0.02, seed=0):
    """Mixtures of the three bundled Ni references at varying thickness, with white noise:
    centred, their rank is 3 (thickness and two independent fractions)."""
    rng = np.random.default_rng(seed)
    energies = ni_edge_energies()
    refs = np.stack(
        [unit_step_spectrum(bundled_reference(n), energies) for n in ("NiO", "LiNiO2", "Ni")]
    )
    fractions = rng.dirichlet(np.ones(3), size=n_pixels).T
    thickness = rng.uniform(0.3, 1.0, size=n_pixels)
    clean = (refs.T @ fractions) * thickness
    return clean, clean + rng.normal(scale=sigma, size=clean.shape)


def test_marchenko_pastur_median_matches_white_noise():
    rng = np.random.default_rng(1)
    for n, p in ((400, 1600), (1000, 1000)):  # big enough for the limit law
        x = rng.standard_normal((n, p))
        simulated = np.median(np.linalg.eigvalsh(x @ x.T / p))
        assert marchenko_pastur_median(n / p) == pytest.approx(simulated, rel=0.01)


def test_noise_rank_finds_the_mixtures_rank():
    _, noisy = _spectra()
    _, _, s = principal_components(noisy)
    assert noise_rank(s, noisy.shape) == 3
    # noise alone: nothing rises above the edge (the rank is never below 1)
    noise = np.random.default_rng(2).normal(size=noisy.shape)
    assert noise_rank(principal_components(noise)[2], noise.shape) == 1


def test_projection_lowers_the_noise_and_keeps_the_signal():
    clean, noisy = _spectra()
    projection = pca_projection(noisy, "auto")
    assert projection.k == 3
    assert 0.5 < projection.explained <= 1.0
    denoised = projection.apply(noisy.astype(np.float32))
    assert denoised.dtype == np.float32
    before = np.sqrt(np.mean((noisy - clean) ** 2))
    after = np.sqrt(np.mean((denoised - clean) ** 2))
    # noise kept: 3 of 81 dimensions, plus the sample mean's: about sqrt(4 / 81) of it
    assert after < 0.3 * before
    # spectra in the subspace are left as they are
    exact = pca_projection(clean, 3)
    assert np.allclose(exact.apply(clean), clean, atol=1e-10)


def test_bad_requests_are_refused_with_reasons():
    _, noisy = _spectra(n_pixels=50)
    with pytest.raises(AnalysisError, match="only"):
        pca_projection(noisy, noisy.shape[0] + 1)
    with pytest.raises(AnalysisError, match="at least one"):
        pca_projection(noisy, 0)
    with pytest.raises(AnalysisError, match="number or 'auto'"):
        pca_projection(noisy, "many")
    bad = noisy.copy()
    bad[3, 4] = np.nan
    with pytest.raises(AnalysisError, match="finite"):
        pca_projection(bad, 2)
    with pytest.raises(AnalysisError, match="two pixels"):
        pca_projection(noisy[:, :1], 1)
