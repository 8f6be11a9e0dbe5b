"""One pixel's spectrum and fit (the live page's pixel click) against analyze and the truth."""

import numpy as np
import pytest
from helpers import core

from xanes_stream import AnalysisError
from xanes_stream.spectra.pixel import fit_normalized, pixel_spectrum


@pytest.fixture(scope="module")
def scan(od_scan):
    """A drift-free optical-density stack (as the service keeps it) and its maps."""
    return od_scan


def _pixels(maps, phantom, n=15):
    ys, xs = np.nonzero(core(phantom) & maps.mask)
    pick = np.linspace(0, ys.size - 1, n).astype(int)
    return list(zip(ys[pick], xs[pick], strict=True))


def _fit(p, od, maps, y, x, frames=None, energies=None):
    fit = maps.metadata["settings"]["fit"]
    return pixel_spectrum(
        od if frames is None else frames,
        p.energies if energies is None else energies,
        y,
        x,
        p.references,
        maps.metadata["normalization"],
        energies_used=maps.energies,
        method=fit["method"],
        sum_to_one=fit["sum_to_one"],
    )


def test_pixel_fit_is_the_maps_fit(scan):
    p, od, maps = scan
    for y, x in _pixels(maps, p):
        result = _fit(p, od, maps, y, x)
        np.testing.assert_allclose(result.coefficients, maps.fractions[:, y, x], atol=2e-3)
        assert result.r_factor == pytest.approx(float(maps.r_factor[y, x]), rel=0.02)
        assert result.edge_step == pytest.approx(float(maps.thickness[y, x]), rel=1e-3)
        np.testing.assert_allclose(result.components.sum(axis=0), result.fit, atol=1e-9)
        np.testing.assert_array_equal(result.energies, maps.fit_energies)


def test_pixel_fractions_match_the_truth(scan):
    p, od, maps = scan
    errors = [
        np.abs(_fit(p, od, maps, y, x).coefficients - p.fractions[:, y, x]).max()
        for y, x in _pixels(maps, p)
    ]
    assert np.median(errors) < 0.06


def test_frame_order_and_repeats_do_not_matter(scan):
    p, od, maps = scan
    (y, x), *_ = _pixels(maps, p)
    order = np.random.default_rng(0).permutation(p.energies.size)
    frames = np.concatenate([od[order], od])  # shuffled, and every energy twice
    energies = np.concatenate([p.energies[order], p.energies])
    again = _fit(p, od, maps, y, x, frames=frames, energies=energies)
    np.testing.assert_allclose(again.normalized, _fit(p, od, maps, y, x).normalized, atol=1e-9)


def test_mean_spectrum_components_sum_to_the_maps_mean_fit(scan):
    p, _, maps = scan
    fit = maps.metadata["settings"]["fit"]
    mean = fit_normalized(
        maps.mean_spectrum,
        maps.fit_energies,
        p.references,
        method=fit["method"],
        sum_to_one=fit["sum_to_one"],
    )
    np.testing.assert_allclose(mean.fit, maps.mean_fit, atol=2e-3)
    # the mean spectrum is the mean of mu over the mask: fractions weighted by thickness
    weight = np.where(maps.mask, p.thickness, 0.0)
    truth = (p.fractions * weight).sum(axis=(1, 2)) / weight.sum()
    assert np.abs(mean.coefficients - truth).max() < 0.05
    assert set(mean.as_dict()["components"]) == {"NiO", "LiNiO2", "Ni"}


def test_pixel_outside_the_image_is_refused(scan):
    p, od, maps = scan
    with pytest.raises(AnalysisError, match="outside the 64 x 64 image"):
        _fit(p, od, maps, 64, 3)
