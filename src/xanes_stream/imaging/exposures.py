"""Several exposures of one energy combined into one image, with the standard error of it.

A camera that takes ``n`` frames per trigger (FXI's ``chunk_size``) gives ``n`` exposures of
the same energy; their mean (or median, robust to zingers) is the frame the analysis uses,
and their spread says how noisy it is.
"""

from __future__ import annotations

import numpy as np

from xanes_stream.errors import AnalysisError

__all__ = ["COMBINE_METHODS", "MEDIAN_EFFICIENCY", "combine_exposures"]

COMBINE_METHODS = ("mean", "median")

#: The standard error of the median of n Gaussian values over that of their mean,
#: sqrt(pi / 2) for large n.
MEDIAN_EFFICIENCY = float(np.sqrt(np.pi / 2))


def combine_exposures(frames: np.ndarray, method: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """One image of ``n`` exposures (axis 0) and the per-pixel standard error of it.

    Parameters
    ----------
    frames : numpy.ndarray
        (n, ...) exposures of the same thing, any real dtype.
    method : str
        ``mean`` or ``median`` (robust to a zinger in one exposure).

    Returns
    -------
    image : numpy.ndarray
        (...) float32, the mean or median over axis 0.
    standard_error : numpy.ndarray
        (...) float32, the standard error of ``image`` from the exposures' spread:
        ``std / sqrt(n)`` (sample std, ``ddof=1``) for the mean, ``sqrt(pi/2)`` times that
        for the median; NaN everywhere when ``n`` is 1 (one exposure has no spread).
    """
    if method not in COMBINE_METHODS:
        raise AnalysisError(f"exposures are combined by mean or median, not {method!r}")
    frames = np.asarray(frames)
    if frames.ndim < 1 or frames.shape[0] < 1:
        raise AnalysisError(f"no exposures to combine (shape {frames.shape})")
    if frames.dtype.kind not in "uif":
        raise AnalysisError(f"exposures must be numbers, not {frames.dtype}")
    n = frames.shape[0]
    values = frames.astype(np.float32, copy=False)
    mean = values.mean(axis=0, dtype=np.float32)
    if n == 1:
        return mean.copy(), np.full(mean.shape, np.nan, dtype=np.float32)
    spread = np.zeros(mean.shape, dtype=np.float32)
    for exposure in values:  # two passes, one exposure at a time: no (n, ...) temporary
        deviation = exposure - mean
        spread += deviation * deviation
    spread /= np.float32(n - 1)
    np.sqrt(spread, out=spread)
    spread /= np.float32(np.sqrt(n))
    if method == "median":
        image = np.median(values, axis=0).astype(np.float32, copy=False)
        spread *= np.float32(MEDIAN_EFFICIENCY)
    else:
        image = mean
    return image, spread
