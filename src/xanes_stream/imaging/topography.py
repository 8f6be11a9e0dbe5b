"""Valence-state topography (seed 001): the curvature of the level sets of an edge-energy map.

A level set of E0 at energy ``level`` is where the reaction front stood when that valence was
reached: in 3-D an isosurface (marching cubes), in 2-D level lines (marching squares). Its local
curvature tells where the new phase bulges into the parent one and where it is pinched.

Sign convention (both dimensions): the normal points towards higher E0, and the curvature is
positive where the region *below* the level is convex, like a ball of lower E0 in a higher-E0
matrix (``E0 = distance from a centre``: mean curvature ``+1/R``, in 2-D ``+1/R``); a pocket of
higher E0 gives negative curvature. The Gaussian curvature needs no sign convention (a saddle is
negative).

Voxels outside the mask, or NaN, draw no surface: marching cubes (squares) skip every cube that
has such a corner, so a level set ends, open, one voxel inside the mask's edge rather than
wrapping around it; the rim of such an open surface has no curvature (NaN).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy.ndimage import gaussian_filter1d
from skimage.measure import find_contours, marching_cubes

from xanes_stream.errors import AnalysisError
from xanes_stream.imaging.mesh_curvature import mesh_curvatures, vertex_neighbours_mean


class Isosurface(NamedTuple):
    """A triangulated level surface and its curvatures at each vertex."""

    vertices: np.ndarray  # (n, 3) (z, y, x) in the units of the spacing
    faces: np.ndarray  # (m, 3) int vertex indices
    mean_curvature: np.ndarray  # (n,) H, NaN on the rim
    gaussian_curvature: np.ndarray  # (n,) K, NaN on the rim
    area: np.ndarray  # (n,) each vertex's share of the surface area


def _valid(values: np.ndarray, mask: np.ndarray | None, ndim: int) -> np.ndarray:
    if values.ndim != ndim:
        raise AnalysisError(f"expected a {ndim}-D edge-energy map, got shape {values.shape}")
    valid = np.isfinite(values)
    if mask is not None:
        if np.shape(mask) != values.shape:
            raise AnalysisError(f"mask {np.shape(mask)} and edge energy {values.shape} differ")
        valid &= np.asarray(mask, dtype=bool)
    return valid


def _whole_cubes(valid: np.ndarray) -> np.ndarray:
    """The ``mask`` of ``marching_cubes`` that skips every cube with an invalid corner:
    scikit-image reads a cube's flag at its last corner (the cube from ``i - 1`` to ``i``)."""
    nz, ny, nx = valid.shape
    cubes = np.ones((nz - 1, ny - 1, nx - 1), dtype=bool)
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                cubes &= valid[dz : nz - 1 + dz, dy : ny - 1 + dy, dx : nx - 1 + dx]
    out = np.zeros_like(valid)
    out[1:, 1:, 1:] = cubes
    return out


def isosurface_curvatures(
    volume: np.ndarray,
    level: float,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    *,
    mask: np.ndarray | None = None,
    smooth: int = 0,
) -> Isosurface:
    """The isosurface of ``volume`` at ``level`` and its mean and Gaussian curvature.

    Parameters
    ----------
    volume : numpy.ndarray
        (nz, ny, nx) edge-energy volume (eV); NaN where unknown.
    level : float
        The energy of the surface (eV).
    spacing : sequence of float
        Voxel size along (z, y, x); vertices and curvatures are in these units (and inverse).
    mask : numpy.ndarray, optional
        (nz, ny, nx) bool: the voxels that count; cubes with a corner outside draw nothing.
    smooth : int
        Passes of one-ring averaging of the curvatures (the marching-cubes mesh is irregular
        at the voxel scale; each pass averages over about one voxel more).

    Returns
    -------
    Isosurface
        ``(vertices, faces, mean_curvature, gaussian_curvature, area)``: an empty surface
        (no vertices) when ``level`` is not crossed inside the mask.
    """
    values = np.asarray(volume, dtype=np.float64)
    valid = _valid(values, mask, 3)
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise AnalysisError(f"voxel spacing must be three positive numbers, got {spacing}")
    empty = Isosurface(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), *(np.zeros(0),) * 3)
    if min(values.shape) < 2:
        return empty
    cubes = _whole_cubes(valid)
    inside = values[valid]
    if not cubes.any() or not (inside.min() < level < inside.max()):
        return empty
    filled = np.where(valid, values, inside.mean())  # never read: its cubes are skipped
    try:
        vertices, faces, _normals, _ = marching_cubes(
            filled, level, spacing=spacing, mask=cubes, allow_degenerate=False
        )
    except (ValueError, RuntimeError):  # no cube of the mask crosses the level
        return empty
    if len(faces) == 0:
        return empty
    # the winding of marching cubes (gradient descent) puts the normals towards higher E0
    mean, gaussian, area = mesh_curvatures(vertices, faces)
    mean = vertex_neighbours_mean(mean, faces, smooth, weights=area)
    gaussian = vertex_neighbours_mean(gaussian, faces, smooth, weights=area)
    return Isosurface(vertices, faces.astype(np.int64), mean, gaussian, area)


def _polyline_curvature(
    points: np.ndarray, closed: bool, sigma: float, step: float
) -> tuple[np.ndarray, np.ndarray]:
    """Signed curvature of a (row, col) polyline resampled every ``step`` px of arc length and
    smoothed by a Gaussian of ``sigma`` px along it."""
    if closed:
        points = np.concatenate([points[:-1], points[:1]])
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    length = arc[-1]
    if length <= 0:
        return points[:1], np.full(1, np.nan)
    n = max(int(np.ceil(length / step)), 4)
    s = np.linspace(0.0, length, n + 1)
    if closed:
        s = s[:-1]
    ds = length / n
    xy = np.stack([np.interp(s, arc, points[:, 0]), np.interp(s, arc, points[:, 1])], axis=1)
    mode = "wrap" if closed else "nearest"
    if sigma > 0:
        xy = gaussian_filter1d(xy, sigma / ds, axis=0, mode=mode)
    if closed:
        d1 = (np.roll(xy, -1, axis=0) - np.roll(xy, 1, axis=0)) / (2 * ds)
        d2 = (np.roll(xy, -1, axis=0) - 2 * xy + np.roll(xy, 1, axis=0)) / ds**2
    else:
        d1 = np.gradient(xy, ds, axis=0)
        d2 = np.gradient(d1, ds, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        k = (d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]) / np.hypot(d1[:, 0], d1[:, 1]) ** 3
    if not closed:  # the ends, where the smoothing runs off the line, have no curvature
        end = max(2.0 * sigma, 2.0 * ds)
        k[(s < end) | (s > length - end)] = np.nan
    return xy, k


def contour_curvatures(
    image: np.ndarray,
    level: float,
    *,
    mask: np.ndarray | None = None,
    sigma: float = 1.0,
    pixel_size: float = 1.0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The level lines of a 2-D E0 map at ``level`` and their signed curvature.

    Parameters
    ----------
    image : numpy.ndarray
        (ny, nx) edge-energy map (eV); NaN where unknown.
    level : float
        The energy of the lines (eV).
    mask : numpy.ndarray, optional
        (ny, nx) bool: the pixels that count (squares with a corner outside draw nothing).
    sigma : float
        Gaussian smoothing along each line, in pixels of arc length (marching squares lines
        are jagged at the pixel scale).
    pixel_size : float
        Pixel size; curvatures are in its inverse, points stay in pixels.

    Returns
    -------
    list of (numpy.ndarray, numpy.ndarray)
        Per line: (n, 2) (row, col) points every half pixel of arc length (smoothed) and
        (n,) signed curvature (see the module's sign convention); NaN within ``2 sigma`` of the
        ends of a line that stops at the mask or the image edge.
    """
    values = np.asarray(image, dtype=np.float64)
    valid = _valid(values, mask, 2)
    if not np.isfinite(level):
        raise AnalysisError(f"a contour level must be a finite energy, got {level}")
    if sigma < 0 or not pixel_size > 0:
        raise AnalysisError(f"need sigma >= 0 and pixel size > 0, got {sigma}, {pixel_size}")
    values = np.where(valid, values, np.nan)
    if not valid.any():
        return []
    # positive_orientation="low": lower E0 on a fixed side, so the sign follows the convention
    lines = find_contours(values, level, positive_orientation="low")
    out = []
    for line in lines:
        if len(line) < 3:
            continue
        closed = bool(np.allclose(line[0], line[-1]))
        points, k = _polyline_curvature(line, closed, sigma, 0.5)
        out.append((points, k / pixel_size))
    return out


def curvature_histogram(
    values: np.ndarray,
    bins: int | np.ndarray = 41,
    *,
    weights: np.ndarray | None = None,
    neutral: float = 0.0,
    span: float | None = None,
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Histogram of local curvatures and the probability of positive and negative ones.

    Parameters
    ----------
    values : numpy.ndarray
        Curvatures (NaN ignored).
    bins : int or numpy.ndarray
        Bin edges, or how many equal bins spanning ``[-span, span]``; values beyond the edges
        are counted in the end bins (a few rim-near vertices of a marching-cubes mesh have
        extreme curvatures that would otherwise squeeze the rest into one bin).
    weights : numpy.ndarray, optional
        Each value's weight in the probabilities (a vertex's area); None: equal.
    neutral : float
        ``|value| <= neutral`` counts as neither positive nor negative.
    span : float, optional
        Half-width of the bins when ``bins`` is a number; None: the 99th percentile of
        ``|values|``.

    Returns
    -------
    counts : numpy.ndarray
        (n_bins,) int, values per bin.
    edges : numpy.ndarray
        (n_bins + 1,) bin edges.
    p_positive, p_negative : float
        Weighted share of values above ``neutral`` and below ``-neutral`` (NaN without values).
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    w = np.ones_like(values) if weights is None else np.asarray(weights, np.float64).ravel()
    if w.shape != values.shape:
        raise AnalysisError(f"{w.size} weights for {values.size} curvatures: they must match")
    keep = np.isfinite(values) & np.isfinite(w)
    values, w = values[keep], w[keep]
    if np.ndim(bins) == 0:
        if int(bins) < 1:
            raise AnalysisError(f"a histogram needs at least one bin, got {bins}")
        top = span if span is not None else robust_span(values)
        edges = np.linspace(-top, top, int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise AnalysisError("histogram bin edges must be an increasing list of 2 or more")
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), edges)
    total = w.sum()
    if total <= 0:
        return counts, edges, float("nan"), float("nan")
    return (
        counts,
        edges,
        float(w[values > neutral].sum() / total),
        float(w[values < -neutral].sum() / total),
    )


def robust_span(values: np.ndarray) -> float:
    """The 99th percentile of ``|values|`` (finite ones; 1 when there are none or it is 0).

    Parameters
    ----------
    values : numpy.ndarray
        Curvatures.

    Returns
    -------
    float
    """
    values = np.abs(np.asarray(values, dtype=np.float64).ravel())
    values = values[np.isfinite(values)]
    top = float(np.percentile(values, 99)) if values.size else 0.0
    return top if top > 0 else 1.0


def spread_levels(
    edge_energy: np.ndarray,
    mask: np.ndarray | None,
    n_levels: int,
    percentiles: tuple[float, float] = (10.0, 90.0),
) -> list[float]:
    """``n_levels`` energies evenly spread between two percentiles of E0 in the mask.

    Parameters
    ----------
    edge_energy : numpy.ndarray
        E0 map or volume (eV).
    mask : numpy.ndarray or None
        Bool, same shape: the pixels whose E0 counts.
    n_levels : int
        How many levels (one: the middle of the span).
    percentiles : (float, float)
        The span of E0.

    Returns
    -------
    list of float
    """
    e0 = np.asarray(edge_energy, dtype=np.float64)
    valid = _valid(e0, mask, e0.ndim)
    if not valid.any():
        raise AnalysisError("no pixel in the mask has an edge energy: no levels to draw")
    low, high = np.percentile(e0[valid], percentiles)
    if n_levels == 1:
        return [float((low + high) / 2)]
    return [float(v) for v in np.linspace(low, high, n_levels)]
