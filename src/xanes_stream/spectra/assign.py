"""Every pixel's nearest k-means centre in one compiled pass (no (k, P) score matrix), with
the sums that order the clusters: what :func:`~xanes_stream.spectra.masks.kmeans_clusters`
does after fitting k-means on a sample."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _assign(features, usable, centres, half_norms, order_by, labels, sums, counts):
    q, n_pixels = features.shape
    k = centres.shape[0]
    for p in range(n_pixels):
        if not usable[p]:
            labels[p] = -1
            continue
        best = -np.inf
        label = 0
        for c in range(k):
            score = np.float32(0.0)
            for i in range(q):
                score += centres[c, i] * features[i, p]
            score -= half_norms[c]
            if score > best:  # the first of equal scores, as features.argmax_rows
                best = score
                label = c
        labels[p] = label
        value = order_by[p]
        if np.isfinite(value):
            sums[label] += value
            counts[label] += 1


def nearest_centres(
    features: np.ndarray,
    usable: np.ndarray,
    centres: np.ndarray,
    order_by: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The nearest centre of every usable pixel, and the mean of ``order_by`` per centre.

    |x - c|^2 = |x|^2 - 2 x.c + |c|^2, so the nearest centre maximises x.c - |c|^2 / 2 (as
    :func:`~xanes_stream.spectra.masks.nearest_centre`, in float32).

    Parameters
    ----------
    features : numpy.ndarray
        (q, P) points (float32).
    usable : numpy.ndarray
        (P,) bool: the pixels to assign.
    centres : numpy.ndarray
        (k, q) centres.
    order_by : numpy.ndarray, optional
        (P,) a value averaged (over its finite values) per centre.

    Returns
    -------
    labels : numpy.ndarray
        (P,) int16: 0..k-1, -1 where not usable.
    means : numpy.ndarray
        (k,) float64 mean of ``order_by`` over each centre's pixels (NaN where none is
        finite, or ``order_by`` is None).
    """
    features = np.asarray(features, dtype=np.float32)
    centres = np.ascontiguousarray(centres, dtype=np.float32)
    half_norms = (0.5 * np.einsum("kq,kq->k", centres, centres)).astype(np.float32)
    n_pixels = features.shape[1]
    values = (
        np.full(n_pixels, np.nan, np.float32)
        if order_by is None
        else np.asarray(order_by, dtype=np.float32)
    )
    labels = np.empty(n_pixels, np.int16)
    sums = np.zeros(centres.shape[0])
    counts = np.zeros(centres.shape[0], np.int64)
    _assign(features, np.asarray(usable, bool), centres, half_norms, values, labels, sums, counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return labels, means
