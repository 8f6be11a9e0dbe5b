"""Masks of good pixels and k-means clusters of spectra."""

from __future__ import annotations

import numpy as np

from xanes_stream.spectra.features import argmax_rows


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of the finite values (NaN when there are fewer than two distinct).

    Parameters
    ----------
    values : numpy.ndarray
        Any shape; non-finite values are ignored.

    Returns
    -------
    float
        The threshold.
    """
    from skimage.filters import threshold_otsu

    values = _otsu_sample(values)
    finite = values[np.isfinite(values)]
    if finite.size < 2 or finite.min() == finite.max():
        return float("nan")
    return float(threshold_otsu(finite))


def _otsu_sample(values: np.ndarray) -> np.ndarray:
    """The values Otsu's histogram is made of: all, or a regular subsample of a million."""
    values = np.ravel(values)
    if values.size > 1_000_000:  # the histogram of a regular subsample is as good
        values = values[:: values.size // 1_000_000 + 1]
    return values


def otsu_r_factor(r_factor: np.ndarray) -> float:
    """Otsu's threshold on log10(R-factor), where empty and sample regions separate, as an
    R-factor (inf when it cannot be drawn).

    Parameters
    ----------
    r_factor : numpy.ndarray
        Any shape; non-finite and non-positive values are ignored.

    Returns
    -------
    float
        The threshold.
    """
    sample = _otsu_sample(r_factor)  # the logarithm of what the threshold reads, only
    with np.errstate(divide="ignore", invalid="ignore"):
        log_r = np.log10(np.where(sample > 0, sample, np.nan))
    log_threshold = otsu_threshold(log_r)
    return float(10**log_threshold) if np.isfinite(log_threshold) else float("inf")


def quality_mask(
    thickness: np.ndarray,
    r_factor: np.ndarray,
    *,
    thickness_threshold: float | None = None,
    r_factor_threshold: float | None = None,
) -> tuple[np.ndarray, float, float]:
    """Pixels thick enough and fitted well enough; thresholds default to Otsu's.

    The R-factor threshold is found on log10(R-factor), where empty and sample regions separate.
    Returns the mask and the two thresholds used.
    """
    if thickness_threshold is None:
        thickness_threshold = otsu_threshold(thickness)
    if r_factor_threshold is None:
        r_factor_threshold = otsu_r_factor(r_factor)
    with np.errstate(invalid="ignore"):
        mask = (thickness > thickness_threshold) & (r_factor < r_factor_threshold)
    return mask, float(thickness_threshold), float(r_factor_threshold)


def snr_mask(
    edge_snr: np.ndarray,
    thickness: np.ndarray,
    min_snr: float,
    *,
    r_factor: np.ndarray | None = None,
    thickness_threshold: float | None = None,
    r_factor_threshold: float | None = None,
    min_relative_step: float = 0.01,
) -> np.ndarray:
    """Pixels whose edge step stands ``min_snr`` times above their noise.

    Unlike Otsu's threshold on the thickness, which splits thick particles from the rest,
    this keeps every pixel where the edge is seen, thin particles included. An edge step
    below ``min_relative_step`` of the image's largest (its 99th percentile) is never sample,
    whatever its noise (a noise-free background would otherwise pass), and a thickness or
    R-factor threshold, when given, is applied as well.

    Parameters
    ----------
    edge_snr : numpy.ndarray
        Each pixel's edge step over its standard error (e.g. the scatter about the pre-edge
        line, carried through the step's estimator); NaN where unknown.
    thickness : numpy.ndarray
        The edge step (or thickness) of each pixel, same shape.
    min_snr : float
        The least signal-to-noise ratio of a sample pixel.
    r_factor : numpy.ndarray, optional
        Same shape; used only with ``r_factor_threshold``.
    thickness_threshold, r_factor_threshold : float, optional
        A thickness a sample pixel exceeds, an R-factor it stays below.
    min_relative_step : float
        The floor on the edge step, as a fraction of the image's largest.

    Returns
    -------
    numpy.ndarray
        bool, the shape of ``edge_snr``; False where it is NaN.
    """
    finite = np.isfinite(thickness)
    largest = float(np.percentile(thickness[finite], 99)) if finite.any() else np.nan
    with np.errstate(invalid="ignore"):
        mask = (edge_snr > min_snr) & (thickness > min_relative_step * largest)
        if thickness_threshold is not None:
            mask &= thickness > thickness_threshold
        if r_factor_threshold is not None and r_factor is not None:
            mask &= r_factor < r_factor_threshold
    return mask


def well_measured(score: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The better-measured half of ``mask``: its pixels whose ``score`` (the edge step's
    signal-to-noise, or the edge step) is at least the median over the mask.

    A model fitted on every pixel of a mask that keeps thin particles (the signal-to-noise
    mask) is pulled by their noise; fitted on these, it sees the spectra, and every masked
    pixel can then be assigned or projected.

    Parameters
    ----------
    score : numpy.ndarray
        Any shape; NaN where unknown.
    mask : numpy.ndarray
        bool, the shape of ``score``.

    Returns
    -------
    numpy.ndarray
        bool, a subset of ``mask``; ``mask`` itself where no masked score is finite.
    """
    mask = np.asarray(mask, dtype=bool)
    values = np.asarray(score)[mask]
    finite = np.isfinite(values)
    if not finite.any():
        return mask.copy()
    with np.errstate(invalid="ignore"):
        return mask & (np.asarray(score) >= np.median(values[finite]))


def nearest_centre(features: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre for every column of ``features`` (q, P).

    |x - c|^2 = |x|^2 - 2 x.c + |c|^2, so the nearest centre maximises x.c - |c|^2 / 2.

    Parameters
    ----------
    features : numpy.ndarray
        (q, P) points.
    centres : numpy.ndarray
        (k, q) centres.

    Returns
    -------
    numpy.ndarray
        (P,) index 0..k-1 of each point's nearest centre.
    """
    half_norms = 0.5 * np.einsum("kq,kq->k", centres, centres)
    scores = centres @ features - half_norms[:, None]  # (k, P)
    return argmax_rows(scores).astype(np.int16)


def kmeans_clusters(
    features: np.ndarray,
    mask: np.ndarray,
    n_clusters: int,
    *,
    order_by: np.ndarray | None = None,
    fit_on: np.ndarray | None = None,
    sample_size: int = 20_000,
    seed: int = 0,
) -> np.ndarray:
    """K-means labels per pixel: 0 outside ``mask``, 1..k inside.

    ``features`` is (q, P), e.g. normalized spectra projected on their principal components.
    K-means is fitted on a random sample of at most ``sample_size`` of the ``fit_on`` pixels
    (default: the masked ones; e.g. :func:`well_measured`), so its cost does not grow with the
    image; one compiled pass (:mod:`~xanes_stream.spectra.assign`) then gives every masked
    pixel its nearest centre. Labels are ordered by the mean of ``order_by`` (e.g. edge
    energy) in each cluster, so the same sample gives the same labels.

    Parameters
    ----------
    features : numpy.ndarray
        (q, P) features per pixel.
    mask : numpy.ndarray
        (P,) bool: the pixels to cluster.
    n_clusters : int
        k; 0 gives no clusters.
    order_by : numpy.ndarray, optional
        (P,) value whose cluster means order the labels.
    fit_on : numpy.ndarray, optional
        (P,) bool: the masked pixels k-means is fitted on (None: all of them).
    sample_size : int
        Pixels k-means is fitted on at most.
    seed : int
        Seed of the sample and of k-means.

    Returns
    -------
    numpy.ndarray
        (P,) int8 labels.
    """
    from sklearn.cluster import KMeans  # slow to import: only when clustering
    from threadpoolctl import threadpool_limits

    from xanes_stream.spectra.assign import nearest_centres  # numba: only when clustering

    labels = np.zeros(mask.shape, dtype=np.int16)
    usable = mask & np.isfinite(features.sum(axis=0))
    inside = np.flatnonzero(usable)
    if n_clusters < 1 or inside.size < n_clusters:
        return labels
    if fit_on is not None and np.count_nonzero(usable & fit_on) >= n_clusters:
        inside = np.flatnonzero(usable & fit_on)
    rng = np.random.default_rng(seed)
    sample = inside if inside.size <= sample_size else rng.choice(inside, sample_size, False)
    # one thread: on a sample this small, OpenMP's threads cost more than they give (and
    # spin for many milliseconds on a busy machine)
    with threadpool_limits(limits=1):
        model = KMeans(n_clusters=n_clusters, n_init=4, random_state=seed)
        model.fit(features[:, sample].T)
    # one pass over every pixel: its nearest centre, and each centre's mean of order_by
    assigned, means = nearest_centres(features, usable, model.cluster_centers_, order_by)
    relabel = np.arange(n_clusters, dtype=np.int16)
    if order_by is not None:
        rank = np.argsort(np.nan_to_num(means, nan=np.inf))  # empty clusters last
        relabel[rank] = np.arange(n_clusters, dtype=np.int16)
    lookup = np.concatenate([[0], relabel + 1]).astype(np.int16)  # not usable (-1): 0
    return lookup[assigned + 1]
