"""Several exposures combined into one image (imaging/exposures.py), against Poisson counts of
a known mean: the image is the mean (or median), the standard error the true one."""

import numpy as np
import pytest

from xanes_stream.errors import AnalysisError
from xanes_stream.imaging.exposures import combine_exposures

N, SHAPE, COUNTS = 5, (200, 250), 4000.0


@pytest.fixture(scope="module")
def exposures():
    rng = np.random.default_rng(11)
    return rng.poisson(COUNTS, size=(N, *SHAPE)).astype(np.uint16)


def test_mean_and_its_standard_error(exposures):
    image, se = combine_exposures(exposures, "mean")
    assert image.shape == se.shape == SHAPE
    assert image.dtype == se.dtype == np.float32
    np.testing.assert_allclose(image, exposures.astype(np.float64).mean(axis=0), rtol=1e-6)
    truth = np.sqrt(COUNTS / N)  # Poisson: variance = mean, of a mean of N
    assert abs(np.median(se) / truth - 1) < 0.1
    # what the per-pixel estimate says is what the pixels scatter by
    assert abs(np.std(image) / truth - 1) < 0.02


def test_median_standard_error_is_the_medians_scatter(exposures):
    image, se = combine_exposures(exposures, "median")
    np.testing.assert_array_equal(image, np.median(exposures, axis=0))
    # every pixel has the same mean: the medians' scatter over pixels is their standard error
    assert abs(np.median(se) / np.std(image) - 1) < 0.15
    _, se_mean = combine_exposures(exposures, "mean")
    np.testing.assert_allclose(se, se_mean * np.sqrt(np.pi / 2), rtol=1e-5)


def test_median_is_robust_to_a_zinger(exposures):
    hit = exposures.copy()
    hit[2, 10:20, 30:40] = 60_000  # a cosmic ray in one exposure
    mean, _ = combine_exposures(hit, "mean")
    median, _ = combine_exposures(hit, "median")
    zinger = (slice(10, 20), slice(30, 40))
    assert np.all(mean[zinger] > COUNTS + 10_000)
    assert np.all(np.abs(median[zinger] - COUNTS) < 5 * np.sqrt(COUNTS))


def test_one_exposure_has_no_standard_error(exposures):
    image, se = combine_exposures(exposures[:1], "mean")
    np.testing.assert_array_equal(image, exposures[0])
    assert np.isnan(se).all()


def test_bad_input_is_a_clear_error(exposures):
    with pytest.raises(AnalysisError, match="mean or median"):
        combine_exposures(exposures, "max")
    with pytest.raises(AnalysisError, match="no exposures"):
        combine_exposures(exposures[:0], "mean")
    with pytest.raises(AnalysisError, match="numbers"):
        combine_exposures(np.array([["a"]]), "mean")
