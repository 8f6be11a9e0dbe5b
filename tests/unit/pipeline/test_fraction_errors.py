"""``fraction_errors`` calibrated on phantoms of the bundled references with Poisson noise: the
share of pixels whose fitted fraction is within 1 and 2 sigma of the truth is that of a
normal error (68 % and 95 %; bands 60-76 % and 90-98 %), for both fit models, from the
residual and from the measured noise; 4x the counts halves the error."""

import numpy as np
import pytest
from helpers.od_phantom import od_phantom

from xanes_stream import analyze
from xanes_stream.io.maps_file import read_maps, write_maps
from xanes_stream.sim.phantom import ni_edge_energies

BASE = {"registration": {"method": "none"}, "mask": {"n_clusters": 0}}
FULL = ni_edge_energies()


def _maps(od, p, noise=None, kernel="fused", **fit):
    settings = {**BASE, "fit": {"errors": True, **fit}, "compute": {"kernel": kernel}}
    return analyze(od, p.energies, p.references, mode="absorbance", settings=settings, noise=noise)


def _coverage(maps, truth):
    z = np.abs(maps.fractions - truth) / maps.fraction_errors
    assert np.isfinite(z).all()
    return np.mean(z < 1), np.mean(z < 2)


def _in_bands(maps, truth):
    within1, within2 = _coverage(maps, truth)
    assert 0.60 <= within1 <= 0.76, within1
    assert 0.90 <= within2 <= 0.98, within2


@pytest.fixture(scope="module")
def full_scan():
    """A whole Ni K-edge scan, 20000 counts, a thin background."""
    return od_phantom(counts=20_000, seed=11, energies=FULL, constant=0.1, victoreen=0.3)


def test_normalized_model_errors_are_calibrated(full_scan):
    _in_bands(_maps(full_scan.od, full_scan), full_scan.fractions)


def test_optical_density_errors_are_calibrated_without_a_post_edge():
    p = od_phantom(counts=20_000, seed=12)
    maps = _maps(p.od, p, model="optical_density")
    _in_bands(maps, p.fractions)
    assert maps.fraction_errors.shape == p.fractions.shape


def test_four_times_the_counts_halves_the_error():
    low = od_phantom(counts=20_000, seed=13, energies=FULL, constant=0.1, victoreen=0.3)
    high = od_phantom(counts=80_000, seed=14, energies=FULL, constant=0.1, victoreen=0.3)
    for model in ("normalized", "optical_density"):
        ratio = np.median(_maps(high.od, high, model=model).fraction_errors) / np.median(
            _maps(low.od, low, model=model).fraction_errors
        )
        assert 0.45 < ratio < 0.55, (model, ratio)


def test_measured_noise_gives_calibrated_errors():
    """Gaussian noise of a known sigma at each energy, given to analyze."""
    p = od_phantom(counts=None, energies=FULL, constant=0.1, victoreen=0.3)
    rng = np.random.default_rng(15)
    sigma = rng.uniform(0.005, 0.02, size=FULL.size)
    od = p.od + (rng.normal(size=p.od.shape) * sigma[:, None, None]).astype(np.float32)
    for model in ("normalized", "optical_density"):
        maps = _maps(od, p, noise=sigma, model=model)
        _in_bands(maps, p.fractions)


def test_errors_can_be_off_and_change_nothing_else(full_scan, tmp_path):
    p = full_scan
    # the errors take the numpy block pass: off, the same pass gives the same maps exactly
    on, off = _maps(p.od, p), _maps(p.od, p, errors=False, kernel="numpy")
    assert off.fraction_errors is None
    default = analyze(p.od, p.energies, p.references, mode="absorbance", settings=BASE)
    assert default.fraction_errors is None  # off by default
    names = ("fractions", "thickness", "error", "r_factor", "chi2_red", "mask", "clusters")
    for name in names:
        np.testing.assert_array_equal(getattr(on, name), getattr(off, name))
    # and the default, fused pass, the same to float precision
    assert on.metadata["kernel"] == "numpy" and default.metadata["kernel"] == "fused"
    np.testing.assert_allclose(default.fractions, on.fractions, atol=1e-4)
    for name in ("thickness", "error", "r_factor", "chi2_red"):
        np.testing.assert_allclose(getattr(default, name), getattr(on, name), rtol=1e-4)
    for name in ("mask", "clusters"):
        np.testing.assert_array_equal(getattr(default, name), getattr(on, name))
    back = read_maps(write_maps(on, tmp_path / "maps.h5"))
    np.testing.assert_array_equal(back.fraction_errors, on.fraction_errors)
    assert read_maps(write_maps(off, tmp_path / "off.h5")).fraction_errors is None


def test_a_volume_carries_its_slices_errors():
    from helpers.phantoms import volume_od

    from xanes_stream.pipeline.volume import analyze_volume

    od, phantoms = volume_od(2)
    p = phantoms[0]
    settings = {"fit": {"errors": True}}
    volume = analyze_volume(od, p.energies, p.references, settings=settings, progress=False)
    assert volume.fraction_errors.shape == volume.fractions.shape
    one = analyze(od[:, 1], p.energies, p.references, mode="absorbance", settings=settings)
    inside = volume.mask[1] & one.mask  # the volume's slices use the volume's E0
    assert inside.sum() > 100 and np.isfinite(volume.fraction_errors[:, 1][:, inside]).all()
    ratio = np.median(volume.fraction_errors[:, 1][:, inside]) / np.median(
        one.fraction_errors[:, inside]
    )
    assert 0.9 < ratio < 1.1
