"""The optical-density model (``fit.model: optical_density``): on a scan that ends 20 eV above
the edge, too narrow for a post-edge, each pixel is thickness x (mix of the bundled
references) plus a known smooth background (constant + E^-3). The normalized model's edge
step from the white line biases its thickness by about +28 %; the optical-density model
recovers thickness and fractions."""

import numpy as np
import pytest
from helpers.od_phantom import od_phantom

from xanes_stream import analyze
from xanes_stream.errors import SettingsError
from xanes_stream.pipeline.settings import load_settings

BASE = {"registration": {"method": "none"}, "mask": {"n_clusters": 0}}


def _maps(p, **fit):
    settings = {**BASE, "fit": fit}
    return analyze(p.od, p.energies, p.references, mode="absorbance", settings=settings)


@pytest.fixture(scope="module")
def noisy():
    return od_phantom(counts=20_000, seed=3)


def test_noiseless_background_is_fitted_exactly():
    p = od_phantom(counts=None)
    m = _maps(p, model="optical_density")
    np.testing.assert_allclose(m.fractions, p.fractions, atol=1e-3)
    np.testing.assert_allclose(m.thickness, p.thickness, rtol=1e-3)
    assert np.nanmedian(m.r_factor) < 1e-6


def test_optical_density_recovers_what_the_normalized_model_biases(noisy):
    """Poisson noise of 20000 counts: fractions within 0.01 on average (0.04 rms per pixel),
    thickness within 0.5 % on average (2 % rms); the normalized model's thickness is 20-40 %
    too high (the step is read off the white line)."""
    p = noisy
    od, normalized = _maps(p, model="optical_density"), _maps(p)
    error = od.fractions - p.fractions
    assert abs(np.mean(error)) < 0.01 and np.sqrt(np.mean(error**2)) < 0.04
    ratio = od.thickness / p.thickness
    assert abs(np.mean(ratio) - 1) < 0.005 and np.std(ratio) < 0.02
    bias = np.mean(normalized.thickness / p.thickness) - 1
    assert 0.2 < bias < 0.4
    assert np.isfinite(od.chi2_red).all() and np.isfinite(od.edge_energy).all()
    # unchanged (to float precision: the optical-density model takes the numpy block pass,
    # the normalized one the fused pass)
    np.testing.assert_allclose(od.edge_energy, normalized.edge_energy, rtol=0, atol=0.01)
    np.testing.assert_allclose(od.peak_energy, normalized.peak_energy, rtol=0, atol=0.01)


def test_without_normalizing_fractions_are_the_edge_steps(noisy):
    p = noisy
    m = _maps(p, model="optical_density", sum_to_one="none")
    np.testing.assert_allclose(m.fractions.sum(axis=0), m.thickness, rtol=1e-5)
    error = m.fractions - p.fractions * p.thickness
    assert abs(np.mean(error)) < 0.01


def test_settings_are_checked():
    with pytest.raises(SettingsError, match="cannot be constrained"):
        load_settings({"fit": {"model": "optical_density", "sum_to_one": "constrain"}})
    with pytest.raises(SettingsError):
        load_settings({"fit": {"background": ["constant", "e-5"]}})
    with pytest.raises(SettingsError, match="repeat"):
        load_settings({"fit": {"background": ["constant", "constant"]}})
    assert load_settings({}).fit.model == "auto"


def test_chi2_is_one_with_the_measured_noise_and_blocks_elsewhere_agree():
    """Gaussian noise of a known sigma per energy: the optical-density chi2_red (its own
    degrees of freedom) averages 1; a block runner (as Dask's) gives the same maps."""
    from xanes_stream.sim.phantom import ni_edge_energies

    energies = ni_edge_energies()
    p = od_phantom(counts=None, energies=energies, constant=0.1, victoreen=0.3)
    rng = np.random.default_rng(4)
    sigma = rng.uniform(0.005, 0.02, size=energies.size)
    od = p.od + (rng.normal(size=p.od.shape) * sigma[:, None, None]).astype(np.float32)
    settings = {**BASE, "fit": {"model": "optical_density", "errors": True}}
    maps = analyze(od, energies, p.references, mode="absorbance", noise=sigma, settings=settings)
    assert 0.95 < np.mean(maps.chi2_red) < 1.05

    def runner(task, frames, row_blocks):
        for rows in row_blocks:
            yield rows, task(np.asarray(frames[:, rows]), rows)

    settings["block_pixels"] = 256
    here = analyze(od, energies, p.references, mode="absorbance", settings=settings)
    there = analyze(od, energies, p.references, mode="absorbance", settings=settings, blocks=runner)
    for name in ("fractions", "fraction_errors", "thickness", "chi2_red", "r_factor"):
        np.testing.assert_array_equal(getattr(here, name), getattr(there, name))


def test_mean_spectrum_is_the_mean_optical_density_and_its_fit():
    """With the optical-density model the mean spectrum shown is the mean optical density in
    the mask (not an edge-normalized one), fitted as the pixels are: the fit's fractions are
    the pixels' truth and its components add up to the fit."""
    p = od_phantom(counts=None)
    m = _maps(p, model="optical_density")
    assert m.mean_spectrum_kind == "optical density"
    fit = np.isin(p.energies, m.fit_energies)
    np.testing.assert_allclose(m.mean_spectrum, p.od[fit][:, m.mask].mean(axis=1), rtol=1e-4)
    np.testing.assert_allclose(m.mean_fit, m.mean_spectrum, atol=1e-4 * m.mean_spectrum.max())
    own = m.metadata["mean_components"]
    background = np.asarray(own["components"]["background"])
    parts = sum(np.asarray(own["components"][n]) - background for n in m.reference_names)
    np.testing.assert_allclose(parts + background, m.mean_fit, atol=1e-5)
    truth = (p.fractions * p.thickness)[:, m.mask].sum(axis=1)
    for name, share in zip(m.reference_names, truth / truth.sum(), strict=True):
        assert own["fractions"][name] == pytest.approx(share, abs=2e-3)
    assert _maps(p).mean_spectrum_kind == "normalized spectrum"
    assert "mean_components" not in _maps(p).metadata
