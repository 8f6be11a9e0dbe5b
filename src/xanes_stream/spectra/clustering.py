"""K-means clusters of normalized spectra, with the elbow method to choose k."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from xanes_stream.errors import AnalysisError
from xanes_stream.spectra.decomposition import SpectraStack, _as_matrix
from xanes_stream.spectra.masks import nearest_centre

_BLOCK = 262_144  # pixels assigned at a time
_COMPONENTS = 12  # principal components k-means works in
_ELBOW_PIXELS = 5_000  # pixels of the sample the inertia curve is measured on


@dataclass
class Clusters:
    """K-means clusters of normalized spectra found by :func:`cluster_spectra`.

    ``labels`` (ny, nx) int16: 1..k, 0 outside the mask; ``spectra`` (k, n) float32: the mean
    normalized spectrum of every cluster on ``energies``; ``elbow`` a table (k, inertia);
    ``metadata`` JSON-able facts (k, how it was chosen, pixels per cluster).
    """

    labels: np.ndarray
    spectra: np.ndarray
    elbow: dict[str, np.ndarray]
    energies: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)


def elbow(inertia: np.ndarray) -> int:
    """The k at the elbow of an inertia curve: the point farthest below the chord from the
    first to the last point, both axes scaled to [0, 1] (Kneedle, Satopaa et al. 2011).

    Parameters
    ----------
    inertia : numpy.ndarray
        Inertia for k = 1, 2, ...

    Returns
    -------
    int
        The chosen k (1-based); 1 when the curve does not bend.
    """
    y = np.asarray(inertia, dtype=np.float64)
    if y.size < 3 or y[0] <= y[-1]:
        return 1
    x = np.linspace(0.0, 1.0, y.size)
    scaled = (y - y[-1]) / (y[0] - y[-1])
    below = (1.0 - x) - scaled  # the chord runs from (0, 1) to (1, 0)
    return int(np.argmax(below)) + 1 if below.max() > 0 else 1


def cluster_spectra(
    stack: SpectraStack | np.ndarray,
    k: int | None = None,
    k_max: int = 8,
    mask: np.ndarray | None = None,
    *,
    energies: np.ndarray | None = None,
    fit_on: np.ndarray | None = None,
    max_pixels: int = 20_000,
    seed: int = 0,
) -> Clusters:
    """K-means clusters of normalized spectra.

    K-means (scikit-learn) is fitted, in the space of the 12 leading principal components of
    the spectra, on a random sample of at most ``max_pixels`` masked pixels (of those in
    ``fit_on`` when given: e.g. the better-measured ones); with ``k=None``
    it is fitted for every k in 1..``k_max`` (on 5,000 of them) and k is chosen at the elbow
    of the inertia curve (:func:`elbow`). Every masked pixel is then given its nearest
    centre. Labels are 1..k ordered by the edge position of the cluster's mean spectrum (where
    it first reaches 0.5), 0 outside the mask.

    Parameters
    ----------
    stack : SpectraStack or numpy.ndarray
        Normalized spectra (n, ny, nx), or a stack holding them (its mask is the default).
    k : int, optional
        Number of clusters; None: the elbow of 1..``k_max``.
    k_max : int
        Largest k the elbow tries.
    mask : numpy.ndarray, optional
        (ny, nx) bool: the pixels to cluster.
    energies : numpy.ndarray, optional
        (n,) eV, when ``stack`` is an array.
    fit_on : numpy.ndarray, optional
        (ny, nx) bool: the masked pixels k-means is fitted on (None: all of them); every
        masked pixel is labelled.
    max_pixels : int
        Pixels k-means is fitted on at most.
    seed : int
        Seed of the sample and of k-means.

    Returns
    -------
    Clusters
        Use ``labels == j`` (or :func:`cluster_mask`) as a mask.
    """
    from sklearn.cluster import KMeans  # slow to import: only when clustering

    spectra, (ny, nx), stack_energies, usable = _as_matrix(stack, mask)
    energies = stack_energies if energies is None else energies
    n = spectra.shape[0]
    inside = np.flatnonzero(usable)
    if k is not None and not 1 <= k <= inside.size:
        raise AnalysisError(f"k must be 1..{inside.size} (masked pixels), got {k}")
    fitted = inside
    if fit_on is not None:
        chosen = np.flatnonzero(usable & np.asarray(fit_on, dtype=bool).ravel())
        fitted = chosen if chosen.size >= (k or k_max) else inside
    rng = np.random.default_rng(seed)
    sample = rng.choice(fitted, min(fitted.size, max_pixels), replace=False)  # random order
    x = spectra[:, sample].astype(np.float64)
    # K-means in the space of the leading principal components: distances keep the signal
    # and lose most of the noise, and every step is n / q times cheaper.
    mean = x.mean(axis=1, keepdims=True)
    centred = x - mean
    vectors = np.linalg.eigh(centred @ centred.T)[1]  # n x n: cheap
    basis = vectors[:, ::-1][:, : min(_COMPONENTS, n)]
    features = basis.T @ (x - mean)

    candidates = [k] if k is not None else list(range(1, min(k_max, x.shape[1]) + 1))
    # the elbow's curve needs no more than a few thousand pixels
    few = features[:, : min(_ELBOW_PIXELS, features.shape[1])].T  # the sample is random
    inertia = np.array(
        [KMeans(c, n_init=2, random_state=seed).fit(few).inertia_ for c in candidates]
    ) * (features.shape[1] / few.shape[0])
    chosen = k if k is not None else elbow(inertia)
    centres = KMeans(chosen, n_init=4, random_state=seed).fit(features.T).cluster_centers_
    order = np.argsort(np.argmax(basis @ centres.T + mean >= 0.5, axis=0), kind="stable")
    centres = centres[order].astype(np.float32)

    project = basis.T.astype(np.float32)
    offset = (basis.T @ mean).astype(np.float32)
    labels = np.zeros(ny * nx, dtype=np.int16)
    sums = np.zeros((chosen + 1, n))
    for start in range(0, ny * nx, _BLOCK):  # column slices: no gathering copies
        pixels = slice(start, start + _BLOCK)
        block = spectra[:, pixels]
        inside_block = usable[pixels]
        block = np.where(inside_block, block, 0.0).astype(np.float32)
        found = np.where(inside_block, nearest_centre(project @ block - offset, centres) + 1, 0)
        labels[pixels] = found
        onehot = np.zeros((chosen + 1, found.size), dtype=np.float32)
        onehot[found, np.arange(found.size)] = 1.0
        sums += onehot @ block.T
    counts = np.bincount(labels, minlength=chosen + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums[1:] / counts[1:, None]
    return Clusters(
        labels=labels.reshape(ny, nx),
        spectra=means.astype(np.float32),
        elbow={"k": np.array(candidates), "inertia": inertia},
        energies=None if energies is None else np.asarray(energies),
        metadata={
            "k": int(chosen),
            "k_chosen_by": "explicit" if k is not None else "elbow",
            "pixels_per_cluster": counts[1:].tolist(),
            "fitted_pixels": int(sample.size),
        },
    )


def cluster_mask(clusters: Clusters, label: int) -> np.ndarray:
    """The pixels of one cluster, as a mask.

    Parameters
    ----------
    clusters : Clusters
        From :func:`cluster_spectra`.
    label : int
        1..k.

    Returns
    -------
    numpy.ndarray
        (ny, nx) bool.
    """
    labels = clusters.labels
    k = clusters.metadata["k"]
    if not 1 <= label <= k:
        raise AnalysisError(f"cluster label must be 1..{k}, got {label}")
    return labels == label
