"""The quality mask on a known thickness / R-factor map: sample pixels that are thick enough and
well fitted, thresholds from Otsu unless given."""

import numpy as np
import pytest

from xanes_stream.spectra.masks import (
    kmeans_clusters,
    otsu_threshold,
    quality_mask,
    snr_mask,
    well_measured,
)

NY, NX = 40, 50


@pytest.fixture(scope="module")
def scene():
    """Thickness 0.8-1.2 on particles and 0-0.1 off them; R-factor ~1e-3 where the fit is good
    and ~0.3 where it is not. A thick badly fitted patch and a thin well fitted one are not sample;
    a NaN pixel is not either."""
    rng = np.random.default_rng(4)
    y, x = np.mgrid[:NY, :NX]
    particles = (np.hypot(y - 20, x - 15) < 10) | (np.hypot(y - 20, x - 38) < 8)
    thick = particles.copy()
    thick[2:6, 2:8] = False  # the thin, well fitted patch (off the particles)
    good_fit = particles.copy()
    good_fit[2:6, 2:8] = True
    good_fit[18:22, 13:17] = False  # the thick, badly fitted patch (in a particle)
    thickness = np.where(thick, rng.uniform(0.8, 1.2, (NY, NX)), rng.uniform(0, 0.1, (NY, NX)))
    r_factor = np.where(good_fit, 1e-3, 0.3) * rng.uniform(0.5, 2.0, (NY, NX))
    thickness[30, 45] = np.nan
    expected = thick & good_fit
    expected[30, 45] = False
    return thickness, r_factor, expected, thick, good_fit


def _bin(values):
    """Otsu's resolution: skimage's threshold is the centre of one of 256 histogram bins."""
    return np.ptp(values[np.isfinite(values)]) / 256


def test_otsu_mask_is_the_sample(scene):
    thickness, r_factor, expected, thick, good_fit = scene
    mask, t_threshold, r_threshold = quality_mask(thickness, r_factor)
    log_r, log_threshold = np.log10(r_factor), np.log10(r_threshold)
    t_bin, log_bin = _bin(thickness), _bin(log_r)
    # each threshold lies between its two classes, to within one histogram bin
    assert np.nanmax(thickness[~thick]) - t_bin < t_threshold < np.nanmin(thickness[thick])
    assert log_r[good_fit].max() - log_bin < log_threshold < log_r[~good_fit].min()
    assert t_threshold == pytest.approx(otsu_threshold(thickness))
    assert log_threshold == pytest.approx(otsu_threshold(log_r))
    # so the mask is the sample but for pixels within a bin of a threshold
    wrong = mask != expected
    with np.errstate(invalid="ignore"):
        near = (np.abs(thickness - t_threshold) < t_bin) | (np.abs(log_r - log_threshold) < log_bin)
    assert wrong.sum() < 0.02 * expected.sum() and not (wrong & ~near).any()
    assert not mask[2:6, 2:8].any() and not mask[18:22, 13:17].any() and not mask[30, 45]


def test_given_thresholds_are_used(scene):
    thickness, r_factor, *_ = scene
    mask, t_threshold, r_threshold = quality_mask(
        thickness, r_factor, thickness_threshold=1.0, r_factor_threshold=1e-3
    )
    assert (t_threshold, r_threshold) == (1.0, 1e-3)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(mask, (thickness > 1.0) & (r_factor < 1e-3))
    assert 0 < mask.sum() < (thickness > 1.0).sum()  # both thresholds cut


def test_uniform_r_factor_leaves_thickness_alone(scene):
    """No R-factor contrast (every fit alike, or a zero R-factor): Otsu has nothing to split, so
    the threshold is infinite and the mask is the thickness's."""
    thickness, *_ = scene
    for r_factor in (np.full((NY, NX), 0.01), np.zeros((NY, NX))):
        mask, t_threshold, r_threshold = quality_mask(thickness, r_factor)
        assert r_threshold == np.inf
        with np.errstate(invalid="ignore"):
            np.testing.assert_array_equal(mask, thickness > t_threshold)


def test_otsu_of_fewer_than_two_values_is_nan():
    assert np.isnan(otsu_threshold(np.full(10, 3.0)))
    assert np.isnan(otsu_threshold(np.array([np.nan, 1.0])))
    assert 1.0 < otsu_threshold(np.array([1.0, 1.0, 5.0, 5.0])) < 5.0


@pytest.mark.xfail(
    strict=True,
    reason="Otsu's threshold is the centre of a histogram bin: a class narrower than one bin "
    "(1/256 of the range) is cut in two, so half of such empty pixels pass the thickness test",
)
def test_a_class_narrower_than_a_histogram_bin_stays_whole():
    rng = np.random.default_rng(0)
    empty, sample = rng.uniform(0.018, 0.022, 1500), rng.uniform(0.9, 1.1, 500)
    thickness = np.concatenate([empty, sample])
    mask, _, _ = quality_mask(thickness, np.full(thickness.size, 1e-3))
    np.testing.assert_array_equal(mask, thickness > 0.5)


def test_snr_mask_keeps_the_thin_particle_otsu_drops():
    """A thick and a thin particle (steps 1.0 and 0.2) on a background of step noise 0.02:
    the signal-to-noise mask keeps both and no background beyond what 5 sigma lets through;
    Otsu's threshold on the thickness drops the thin one."""
    rng = np.random.default_rng(8)
    y, x = np.mgrid[:NY, :NX]
    thick = np.hypot(y - 20, x - 15) < 10
    thin = np.hypot(y - 20, x - 38) < 8
    sigma = 0.02
    thickness = np.where(thick, 1.0, np.where(thin, 0.2, 0.0)) + rng.normal(0, sigma, (NY, NX))
    edge_snr = thickness / sigma
    mask = snr_mask(edge_snr, thickness, 5.0)
    assert mask[thick].mean() == 1.0 and mask[thin].mean() > 0.99
    assert mask[~(thick | thin)].mean() < 0.002  # 5 sigma: ~3e-7 of pure noise
    otsu, _, _ = quality_mask(thickness, np.full_like(thickness, 1e-3))
    assert otsu[thin].mean() < 0.01


def test_snr_mask_floor_and_thresholds():
    """An edge step below 1 % of the image's largest is never sample, however noise-free; the
    thickness and R-factor thresholds, when given, apply as well; NaN is never sample."""
    thickness = np.array([1.0, 0.5, 0.005, 0.3, 0.3, np.nan] * 20)
    edge_snr = np.array([100.0, 100.0, 1e6, 100.0, 2.0, 100.0] * 20)
    r_factor = np.array([1e-3, 0.5, 1e-3, 1e-3, 1e-3, 1e-3] * 20)
    mask = snr_mask(edge_snr, thickness, 5.0)
    np.testing.assert_array_equal(mask[:6], [True, True, False, True, False, False])
    mask = snr_mask(edge_snr, thickness, 5.0, r_factor=r_factor, r_factor_threshold=0.1)
    np.testing.assert_array_equal(mask[:6], [True, False, False, True, False, False])
    mask = snr_mask(edge_snr, thickness, 5.0, thickness_threshold=0.4)
    np.testing.assert_array_equal(mask[:6], [True, True, False, False, False, False])


def test_well_measured_is_the_better_half_of_the_mask():
    score = np.arange(10.0)
    mask = np.array([True] * 6 + [False] * 4)
    score[1] = np.nan
    np.testing.assert_array_equal(np.flatnonzero(well_measured(score, mask)), [3, 4, 5])
    assert well_measured(np.full(10, np.nan), mask).sum() == 6  # nothing known: all of it


def test_kmeans_centres_from_the_well_measured_pixels_label_every_masked_one():
    """Two kinds measured well, and as many noisy pixels of either kind: centres fitted on the
    well measured ones are the kinds, and the noisy pixels still get the nearest kind."""
    rng = np.random.default_rng(0)
    kinds = np.array([[0.0, 0.0], [4.0, 4.0]])
    truth = np.repeat([0, 1], 200)
    good = kinds[truth].T + rng.normal(0, 0.2, (2, 400))
    noisy = kinds[truth].T + rng.normal(0, 1.2, (2, 400))
    features = np.hstack([good, noisy]).astype(np.float32)
    mask = np.ones(800, dtype=bool)
    fit_on = np.repeat([True, False], 400)
    labels = kmeans_clusters(features, mask, 2, order_by=features[0], fit_on=fit_on)
    assert set(np.unique(labels)) == {1, 2}
    assert np.mean(labels[:400] == truth + 1) == 1.0
    assert np.mean(labels[400:] == truth + 1) > 0.95
