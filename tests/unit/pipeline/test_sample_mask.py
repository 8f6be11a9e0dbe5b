"""The analysis' sample mask from the edge step's signal-to-noise: thin particles kept,
background left out, every fitted map NaN outside it; Otsu's mask on request."""

import numpy as np
import pytest
from helpers import core
from scipy import ndimage

from xanes_stream import analyze
from xanes_stream.sim.phantom import make_phantom, ni_edge_energies

NO_REGISTRATION = {"registration": {"method": "none"}}


@pytest.fixture(scope="module")
def phantom():
    """Six particles, the thickest up to 1 (edge step ~0.8), on a matrix whose absorption
    falls with energy, 20,000 counts, drift-free."""
    return make_phantom((96, 96), drift=0.0, seed=11)


def _maps(p, **mask):
    settings = {**NO_REGISTRATION, "mask": {"method": "snr", "outside": "nan", **mask}}
    return analyze(p.frames, p.energies, p.references, dark=p.dark, flat=p.flat, settings=settings)


def test_the_mask_keeps_the_thin_rims_otsu_drops(phantom):
    snr, otsu = _maps(phantom), _maps(phantom, method="otsu")
    particles, rims = phantom.particles, phantom.particles & ~core(phantom)
    assert snr.metadata["thresholds"]["method"] == "snr"
    assert snr.mask[particles].mean() > 0.97 and snr.mask[rims].mean() > 0.75
    assert otsu.mask[rims].mean() < 0.2  # what the signal-to-noise mask is for
    # no background: what it adds beyond the particles touches them (pixels partly covered)
    beyond = ~ndimage.binary_dilation(particles)
    assert (snr.mask & beyond).sum() <= 0.001 * beyond.sum()
    # the rims it adds are fitted as the truth, if less precisely than the cores
    f = snr.fraction("NiO")
    kept = snr.mask & rims
    assert np.median(np.abs(f - phantom.fractions[0])[kept]) < 0.1


def test_the_signal_to_noise_mask_and_nan_outside_are_the_default(phantom):
    settings = {**NO_REGISTRATION}
    p = phantom
    maps = analyze(p.frames, p.energies, p.references, dark=p.dark, flat=p.flat, settings=settings)
    assert maps.metadata["thresholds"]["method"] == "snr"
    assert np.isnan(maps.fractions[:, ~maps.mask]).all()
    assert np.isfinite(maps.thickness[~maps.mask]).mean() > 0.9  # it shows what was judged


def test_every_fitted_map_is_nan_outside_the_mask(phantom):
    maps = _maps(phantom, outside="nan")
    outside = ~maps.mask
    for name in ("error", "r_factor", "chi2_red", "edge_energy", "peak_energy"):
        values = getattr(maps, name)
        assert np.isnan(values[outside]).all(), name
        assert np.isfinite(values[maps.mask]).mean() > 0.99, name
    assert np.isnan(maps.fractions[:, outside]).all()
    # the thickness is kept: it shows what the mask judged
    assert np.isfinite(maps.thickness[outside]).mean() > 0.99
    kept = _maps(phantom, outside="keep")
    assert np.isfinite(kept.fractions[:, outside]).mean() > 0.9
    np.testing.assert_array_equal(kept.mask, maps.mask)
    np.testing.assert_allclose(kept.fractions[:, maps.mask], maps.fractions[:, maps.mask])


def test_without_a_pre_edge_the_noise_is_the_fits_residual():
    """Three pre-edge points leave no scatter to measure: the fit's residual gives the noise
    (an upper bound: misfit included), and the particles are still the mask."""
    energies = ni_edge_energies()
    energies = np.concatenate([[8290.0, 8305.0, 8320.0], energies[energies >= 8330.0]])
    p = make_phantom((48, 48), energies=energies, drift=0.0, n_particles=3, seed=3)
    settings = {
        **NO_REGISTRATION,
        "normalization": {"pre_edge": (-60.0, -20.0)},
        "mask": {"method": "snr"},
    }
    maps = analyze(p.frames, p.energies, p.references, dark=p.dark, flat=p.flat,
                   settings=settings)  # fmt: skip
    assert maps.metadata["thresholds"]["method"] == "snr"
    assert maps.mask[core(p)].mean() > 0.95
    beyond = ~ndimage.binary_dilation(p.particles)
    assert (maps.mask & beyond).sum() <= 0.002 * beyond.sum()


def test_blocks_run_elsewhere_draw_the_same_mask(phantom):
    """The edge signal-to-noise travels with a block's maps (as from a Dask worker)."""

    def runner(task, frames, row_blocks):
        for rows in row_blocks:
            yield rows, task(np.asarray(frames[:, rows]), rows)

    p = phantom
    settings = {**NO_REGISTRATION, "block_pixels": 1024, "mask": {"method": "snr"}}
    here = analyze(p.frames, p.energies, p.references, dark=p.dark, flat=p.flat, settings=settings)
    there = analyze(p.frames, p.energies, p.references, dark=p.dark, flat=p.flat,
                    settings=settings, blocks=runner)  # fmt: skip
    assert here.metadata["thresholds"]["method"] == "snr"
    np.testing.assert_array_equal(here.mask, there.mask)


def test_border_pixels_that_registration_moved_in_and_do_not_fit_are_not_sample():
    """A drifting scan: where registration moved a pixel in from outside the field, the edge
    repeats in those frames, and a border pixel can look like a thick particle. Such a pixel
    stays sample only if it still fits (R-factor under Otsu's threshold); a note says how many
    were left out."""
    from xanes_stream.imaging.shift import unseen_fraction
    from xanes_stream.spectra.masks import otsu_r_factor

    p = make_phantom((48, 48), drift=1.0, n_particles=6, seed=5)
    kept = analyze(p.frames, p.energies, p.references, dark=p.dark, flat=p.flat,
                   settings={"mask": {"outside": "keep"}})  # fmt: skip
    maps = analyze(p.frames, p.energies, p.references, dark=p.dark, flat=p.flat)
    unseen = unseen_fraction(maps.shifts, maps.mask.shape) > 0
    threshold = otsu_r_factor(kept.r_factor)
    assert (unseen & ~(kept.r_factor < threshold) & (kept.thickness > 0.2)).any()
    assert not (maps.mask & unseen & ~(kept.r_factor < threshold)).any()
    assert (maps.mask & unseen).any()  # those that fit stay
    assert maps.mask[core(p) & ~unseen].mean() > 0.95
    assert any("at the border left out" in note for note in maps.metadata["notes"])
