"""The reduced chi-square with the measured per-energy noise: on an optical-density stack of
the bundled references with Gaussian noise of known sigma per energy, chi2_red is 1 when that
sigma is given, 4 when half of it is, and the fit itself is the same either way."""

import numpy as np
import pytest

from xanes_stream import AnalysisError, analyze
from xanes_stream.sim.phantom import make_phantom

NO_REGISTRATION = {"registration": {"method": "none"}}


@pytest.fixture(scope="module")
def noisy():
    p = make_phantom(
        (64, 64), references=("NiO", "LiNiO2"), n_particles=3, drift=0, seed=7, noise=False
    )
    rng = np.random.default_rng(21)
    n = p.energies.size
    sigma = rng.uniform(0.003, 0.012, size=n)  # a different noise at every energy
    od = -np.log(p.transmission) + rng.normal(size=p.transmission.shape) * sigma[:, None, None]
    return p, od.astype(np.float32), sigma


def _maps(noisy, noise=None):
    p, od, _ = noisy
    return analyze(
        od, p.energies, p.references, mode="absorbance", settings=NO_REGISTRATION, noise=noise
    )


def test_chi2_is_one_with_the_true_noise_and_four_with_half(noisy):
    """The residual is dominated by a few modes (the pre-edge line's noise, extrapolated over
    the fit energies), so chi2_red scatters like a chi-square of few degrees of freedom (here
    about 4): its mean is 1, its median below (0.84 for a chi-square of 4)."""
    _, _, sigma = noisy
    plain, true, half = _maps(noisy), _maps(noisy, sigma), _maps(noisy, sigma / 2)
    inside = true.mask
    assert inside.sum() > 200
    assert 0.9 < np.mean(true.chi2_red[inside]) < 1.1
    assert 0.5 < np.median(true.chi2_red[inside]) < 1.0
    assert 3.6 < np.mean(half.chi2_red[inside]) < 4.4
    np.testing.assert_allclose(half.chi2_red[inside], 4 * true.chi2_red[inside], rtol=1e-4)
    for maps in (true, half):  # only the chi-square changes
        np.testing.assert_array_equal(maps.fractions, plain.fractions)
        np.testing.assert_array_equal(maps.r_factor, plain.r_factor)
    assert any("measured per-energy noise" in n for n in true.metadata["notes"])


def test_unknown_noise_falls_back_to_the_pre_edge_estimate(noisy):
    _, _, sigma = noisy
    plain = _maps(noisy)
    partly = sigma.copy()
    partly[3] = np.nan  # one energy of one exposure: not known
    fallback = _maps(noisy, partly)
    np.testing.assert_array_equal(fallback.chi2_red, plain.chi2_red)
    assert any("not known at every energy" in n for n in fallback.metadata["notes"])
    with pytest.raises(AnalysisError, match="one per frame"):
        _maps(noisy, sigma[:-1])
