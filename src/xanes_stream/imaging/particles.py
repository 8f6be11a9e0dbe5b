"""Particles: threshold, distance transform and watershed into labels, and a table per particle.

Touching particles are split where the distance to the background has a saddle (one marker per
local maximum of the distance transform at least ``min_distance`` apart), as in scikit-image's
watershed example; the per-particle table is a handful of ``bincount`` calls over all pixels.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from scipy import ndimage as ndi

from xanes_stream.errors import AnalysisError
from xanes_stream.spectra.masks import otsu_threshold


class MapsLike(Protocol):
    """What :func:`particle_table` reads of the chemical maps (the pipeline's ``Maps``)."""

    reference_names: list[str]
    fractions: np.ndarray  # (k, ny, nx)
    thickness: np.ndarray  # (ny, nx)
    edge_energy: np.ndarray  # (ny, nx)
    mask: np.ndarray  # (ny, nx)


def _drop_small(labels: np.ndarray, min_area: int) -> np.ndarray:
    """Zero the labels with fewer than ``min_area`` pixels and number the rest 1..n."""
    areas = np.bincount(labels.ravel())
    keep = areas >= min_area
    keep[0] = False
    relabel = np.zeros(areas.size, dtype=np.int32)
    relabel[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return relabel[labels]


def label_particles(
    image: np.ndarray,
    *,
    threshold: float | None = None,
    min_distance: int = 5,
    min_area: int = 10,
    smooth: float = 1.0,
) -> np.ndarray:
    """Labelled particles of a mask or a thickness map.

    ``image`` is a boolean mask or a thickness map (NaN counts as background), thresholded at
    ``threshold`` (Otsu's when None). Holes are filled, the distance transform of the mask is
    smoothed by ``smooth`` px, and its local maxima at least ``min_distance`` px apart seed a
    watershed that splits touching particles. Particles under ``min_area`` px are dropped.

    Parameters
    ----------
    image : numpy.ndarray
        (ny, nx) bool mask or thickness map.
    threshold : float, optional
        Thickness threshold; None: Otsu's.
    min_distance : int
        Pixels between particle centres.
    min_area : int
        Smallest particle kept (pixels).
    smooth : float
        Gaussian sigma (pixels) on the distance map.

    Returns
    -------
    numpy.ndarray
        (ny, nx) int32: 0 background, 1..n particles.
    """
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    image = np.asarray(image)
    if image.ndim != 2:
        raise AnalysisError(f"particles need a 2-D image, got shape {image.shape}")
    if image.dtype == bool:
        mask = image
    else:
        values = np.nan_to_num(image.astype(np.float32), nan=-np.inf)
        if threshold is None:
            threshold = otsu_threshold(image)
        if not np.isfinite(threshold):
            return np.zeros(image.shape, dtype=np.int32)
        mask = values > threshold
    mask = ndi.binary_fill_holes(mask)
    components = ndi.label(mask)[0]
    components = _drop_small(components, min_area)
    mask = components > 0
    if not mask.any():
        return np.zeros(image.shape, dtype=np.int32)
    distance = ndi.distance_transform_edt(mask).astype(np.float32)
    if smooth > 0:
        distance = ndi.gaussian_filter(distance, smooth) * mask
    peaks = peak_local_max(
        distance, min_distance=min_distance, labels=components, exclude_border=False
    )
    markers = np.zeros(image.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
    # a component without a peak (flat distance) still gets one marker, at its maximum
    n_components = int(components.max())
    seeded = np.zeros(n_components + 1, dtype=bool)
    seeded[components[tuple(peaks.T)]] = True
    missing = np.flatnonzero(~seeded[1:]) + 1
    if missing.size:
        positions = ndi.maximum_position(distance, components, missing)
        for offset, (y, x) in enumerate(positions):
            markers[y, x] = len(peaks) + 1 + offset
    labels = watershed(-distance, markers, mask=mask)
    return _drop_small(labels.astype(np.int32), min_area)


def _label_means(labels: np.ndarray, values: np.ndarray, weights: np.ndarray, n: int):
    """Weighted mean of the finite ``values`` per label 1..n (NaN where a label has none)."""
    finite = np.isfinite(values) & (weights > 0)
    where = labels[finite]
    sums = np.bincount(where, weights=values[finite] * weights[finite], minlength=n + 1)[1:]
    totals = np.bincount(where, weights=weights[finite], minlength=n + 1)[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(totals > 0, sums / totals, np.nan)


def particle_table(
    labels: np.ndarray,
    maps: MapsLike,
    *,
    active_threshold: float = 0.5,
    active_reference: str | None = None,
) -> dict[str, np.ndarray]:
    """One row per particle: ``label``, ``area_px``, ``centroid_y``, ``centroid_x``,
    ``mean_<reference>`` for each reference, ``mean_edge_energy`` and ``active``.

    Means are weighted by thickness over the particle's pixels in the quality mask: the
    composition of the particle's material, which its thin, noisy rim and any background
    inside its outline barely move (a particle with no pixel in the mask is averaged over all
    its pixels, still by thickness). A particle is active when its
    mean fraction of ``active_reference`` (default: the last reference) exceeds
    ``active_threshold``.

    Parameters
    ----------
    labels : numpy.ndarray
        (ny, nx) int labels from :func:`label_particles`.
    maps : MapsLike
        The chemical maps (``Maps``): fractions, thickness, edge energy, mask.
    active_threshold : float
        Mean fraction above which a particle is active.
    active_reference : str, optional
        The reference whose fraction decides; None: the last.

    Returns
    -------
    dict of str to numpy.ndarray
        The table, one row per particle.
    """
    labels = np.asarray(labels)
    if labels.shape != maps.thickness.shape:
        raise AnalysisError(f"labels {labels.shape} and maps {maps.thickness.shape} differ")
    names = list(maps.reference_names)
    active_reference = names[-1] if active_reference is None else active_reference
    if active_reference not in names:
        raise AnalysisError(f"active_reference {active_reference!r} is not one of {names}")
    n = int(labels.max(initial=0))
    flat = labels.ravel().astype(np.intp)
    area = np.bincount(flat, minlength=n + 1)[1:]
    yy, xx = np.indices(labels.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        cy = np.bincount(flat, weights=yy.ravel(), minlength=n + 1)[1:] / area
        cx = np.bincount(flat, weights=xx.ravel(), minlength=n + 1)[1:] / area
    table: dict[str, np.ndarray] = {
        "label": np.arange(1, n + 1, dtype=np.int32),
        "area_px": area.astype(np.int64),
        "centroid_y": cy,
        "centroid_x": cx,
    }
    thickness = np.nan_to_num(maps.thickness.ravel().astype(np.float64), nan=0.0).clip(0)
    mask = maps.mask.ravel().astype(bool)
    in_mask = np.bincount(flat, weights=mask, minlength=n + 1) > 0
    weights = np.where(mask | ~in_mask[flat], thickness, 0.0)
    for i, name in enumerate(names):
        table[f"mean_{name}"] = _label_means(flat, maps.fractions[i].ravel(), weights, n)
    table["mean_edge_energy"] = _label_means(flat, maps.edge_energy.ravel(), weights, n)
    with np.errstate(invalid="ignore"):
        table["active"] = table[f"mean_{active_reference}"] > active_threshold
    return table
