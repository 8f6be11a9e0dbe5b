"""Spikes against their 3x3 median: planted hot pixels are all found, noise alone is left."""

import numpy as np
from scipy.ndimage import gaussian_filter

from xanes_stream.imaging.spikes import find_spikes, remove_spikes


def _frame(counts=2000.0, seed=0, shape=(256, 256)):
    """Poisson counts of a beam through a smooth absorber (transmission 0.3 to 1)."""
    rng = np.random.default_rng(seed)
    absorber = gaussian_filter(rng.standard_normal(shape), 12)
    absorber = 0.3 + 0.7 * (absorber - absorber.min()) / np.ptp(absorber)
    expected = counts * absorber
    return rng.poisson(expected).astype(np.float32), expected


def _plant(frame, expected, n=40, seed=1):
    rng = np.random.default_rng(seed)
    flat = rng.choice(frame.size, n, replace=False)
    ys, xs = np.unravel_index(flat, frame.shape)
    spiked = frame.copy()
    spiked[ys, xs] = 50 * expected[ys, xs]  # hot pixels: 50 times the signal
    truth = np.zeros(frame.shape, dtype=bool)
    truth[ys, xs] = True
    return spiked, truth


def test_planted_hot_pixels_are_all_found():
    frame, expected = _frame()
    spiked, truth = _plant(frame, expected)
    found, median = find_spikes(spiked)
    assert found[truth].all()
    assert (found & ~truth).sum() <= 3
    # the replacement is the neighbourhood's level, within a few noise sigmas of the signal
    assert np.all(np.abs(median[truth] - expected[truth]) < 4 * np.sqrt(expected[truth]))


def test_noise_alone_has_next_to_no_spikes():
    for counts in (2000.0, 20.0):
        rng = np.random.default_rng(3)
        noise = rng.poisson(counts, size=(256, 256)).astype(np.float32)
        assert find_spikes(noise)[0].sum() <= 3


def test_non_finite_pixels_are_no_spikes_and_stay():
    frame, expected = _frame(seed=4)
    spiked, truth = _plant(frame, expected, n=10, seed=5)
    spiked[10, 10:20] = np.nan
    found, _ = find_spikes(spiked)
    assert found[truth].all() and not found[10, 10:20].any()
    cleaned, counts = remove_spikes(spiked[None])
    assert np.isnan(cleaned[0, 10, 10:20]).all()
    assert counts[0] == found.sum()


def test_remove_spikes_counts_and_replaces_per_frame():
    frames, truths = [], []
    for i in range(3):
        frame, expected = _frame(seed=10 + i, shape=(128, 128))
        spiked, truth = _plant(frame, expected, n=5 * i, seed=20 + i)
        frames.append(spiked)
        truths.append(truth)
    stack = np.stack(frames)
    cleaned, counts = remove_spikes(stack)
    assert cleaned.dtype == np.float32 and cleaned is not stack
    truth = np.stack(truths)
    assert np.all(counts >= truth.sum(axis=(1, 2)))
    assert np.all(counts - truth.sum(axis=(1, 2)) <= 3)
    assert cleaned[truth].max() < 0.2 * stack[truth].min()
    np.testing.assert_array_equal(stack, np.stack(frames))  # the input is not modified


def test_median3x3_is_scipys_median_filter():
    from scipy.ndimage import median_filter

    from xanes_stream.imaging.spikes import median3x3

    rng = np.random.default_rng(7)
    for shape in ((1, 9), (5, 7), (64, 33)):
        x = rng.poisson(20, size=shape).astype(np.float32)  # ties, as counts have
        x[0, 0] += 0.5
        np.testing.assert_array_equal(median3x3(x), median_filter(x, size=3, mode="nearest"))
