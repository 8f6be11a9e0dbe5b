"""Discrete curvatures of a triangulated surface (Meyer, Desbrun, Schröder & Barr 2003,
"Discrete differential-geometry operators for triangulated 2-manifolds").

At each vertex: the mean-curvature normal from the cotangent Laplacian and the Gaussian
curvature from the angle deficit, both divided by the vertex's mixed Voronoi area. Everything is
vectorised over the triangles (``np.bincount`` gathers them onto the vertices).
Vertices on the boundary of an open surface (an edge with one triangle) have no curvature: NaN.
"""

from __future__ import annotations

import numpy as np

from xanes_stream.errors import AnalysisError

_TINY = 1e-12


def _unique_counts(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``keys`` and how often each occurs, by one sort (numpy 2's ``np.unique``
    hashes int64 keys, several times slower on the million edges of a large surface)."""
    keys = np.sort(keys)
    if keys.size == 0:
        return keys, np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return keys[starts], np.diff(np.r_[starts, keys.size])


def _gather(index: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """(n, 3) sums of the (k, 3) ``values`` by row ``index`` (``np.add.at``, by bincount)."""
    return np.stack([np.bincount(index, weights=values[:, j], minlength=n) for j in range(3)], 1)


def boundary_vertices(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """Vertices on an edge that only one triangle has (the rim of an open surface).

    Parameters
    ----------
    faces : numpy.ndarray
        (m, 3) vertex indices of the triangles.
    n_vertices : int
        How many vertices the surface has.

    Returns
    -------
    numpy.ndarray
        (n_vertices,) bool.
    """
    faces = np.asarray(faces, dtype=np.int64)
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges.sort(axis=1)
    keys = edges[:, 0] * np.int64(n_vertices) + edges[:, 1]
    unique, counts = _unique_counts(keys)
    single = unique[counts == 1]
    rim = np.zeros(n_vertices, dtype=bool)
    rim[single // n_vertices] = True
    rim[single % n_vertices] = True
    return rim


def vertex_neighbours_mean(
    values: np.ndarray,
    faces: np.ndarray,
    passes: int = 1,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """``values`` averaged over each vertex and its one-ring neighbours, ``passes`` times
    (NaN values, e.g. at the rim, are left out of every average they would enter).

    With the vertices' areas as ``weights`` the average of a curvature is the integral of the
    curvature over the patch divided by the patch's area, which is what the discrete operators
    estimate (an unweighted average over an irregular marching-cubes mesh is biased).

    Parameters
    ----------
    values : numpy.ndarray
        (n,) one value per vertex.
    faces : numpy.ndarray
        (m, 3) triangles.
    passes : int
        How many times to average (0: ``values`` unchanged).
    weights : numpy.ndarray, optional
        (n,) each vertex's weight (its area); None: equal.

    Returns
    -------
    numpy.ndarray
        (n,) float.
    """
    out = np.asarray(values, dtype=np.float64).copy()
    if passes <= 0 or out.size == 0:
        return out
    faces = np.asarray(faces, dtype=np.int64)
    pairs = [(0, 1), (1, 0), (1, 2), (2, 1), (2, 0), (0, 2)]
    n = np.int64(out.size)
    keys, _ = _unique_counts(np.concatenate([faces[:, a] * n + faces[:, b] for a, b in pairs]))
    edges = np.stack([keys // n, keys % n], axis=1)  # each directed edge once
    nan = np.isnan(out)
    base = np.ones(out.size) if weights is None else np.asarray(weights, dtype=np.float64)
    weight = np.where(nan, 0.0, base)
    for _ in range(passes):
        known = np.where(nan, 0.0, out * weight)
        sums = known + np.bincount(edges[:, 0], weights=known[edges[:, 1]], minlength=out.size)
        counts = weight + np.bincount(edges[:, 0], weights=weight[edges[:, 1]], minlength=out.size)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(nan, np.nan, sums / counts)
    return out


def mesh_curvatures(
    vertices: np.ndarray,
    faces: np.ndarray,
    normals: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and Gaussian curvature at each vertex of a triangulated surface.

    Parameters
    ----------
    vertices : numpy.ndarray
        (n, 3) vertex positions (any length unit; curvatures are in its inverse).
    faces : numpy.ndarray
        (m, 3) vertex indices of the triangles.
    normals : numpy.ndarray, optional
        (n, 3) a normal per vertex that fixes the sign of the mean curvature: positive
        where the surface curves away from the side its normal points to (a sphere with
        outward normals has ``H = +1/R``). None: the area-weighted normals of the triangles
        as they are wound.

    Returns
    -------
    mean : numpy.ndarray
        (n,) mean curvature ``H = (k1 + k2) / 2``, the mean-curvature normal (cotangent
        Laplacian over the mixed Voronoi area) projected on the vertex normal, halved.
    gaussian : numpy.ndarray
        (n,) Gaussian curvature ``K = k1 k2``: the angle deficit ``2 pi - sum(angles)`` over the
        mixed area.
    area : numpy.ndarray
        (n,) the mixed Voronoi area of each vertex.

    Notes
    -----
    Rim vertices of an open surface (see :func:`boundary_vertices`) and vertices with no area
    get NaN.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
        raise AnalysisError(
            f"a surface needs (n, 3) vertices and (m, 3) faces, got {v.shape} and {f.shape}"
        )
    n = len(v)
    if f.size and (f.min() < 0 or f.max() >= n):
        raise AnalysisError("the surface's faces name vertices it does not have")
    p = v[f]  # (m, 3 corners, 3 xyz)
    # edge opposite corner c: from corner c+1 to corner c+2
    e = np.stack([p[:, 2] - p[:, 1], p[:, 0] - p[:, 2], p[:, 1] - p[:, 0]], axis=1)
    cross = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    double_area = np.linalg.norm(cross, axis=1)
    good = double_area > _TINY
    # at corner c: the edges to the next and the previous corner
    to_next = np.stack([p[:, 1] - p[:, 0], p[:, 2] - p[:, 1], p[:, 0] - p[:, 2]], axis=1)
    to_prev = np.stack([p[:, 2] - p[:, 0], p[:, 0] - p[:, 1], p[:, 1] - p[:, 2]], axis=1)
    dots = np.einsum("mcx,mcx->mc", to_next, to_prev)
    safe_area = np.where(good, double_area, 1.0)[:, None]
    cot = np.where(good[:, None], dots / safe_area, 0.0)
    angles = np.arctan2(double_area[:, None], dots)
    # mixed Voronoi area (Meyer et al., fig. 4)
    sq = np.einsum("mcx,mcx->mc", e, e)  # |edge opposite corner c|^2
    # corner c's Voronoi part: its two edges, each weighted by the cot of the angle facing it
    voronoi = (np.roll(sq * cot, -1, axis=1) + np.roll(sq * cot, -2, axis=1)) / 8.0
    area_t = double_area / 2.0
    obtuse = dots < 0  # (m, 3) the angle at that corner is obtuse
    any_obtuse = obtuse.any(axis=1)
    mixed = np.where(
        any_obtuse[:, None],
        np.where(obtuse, area_t[:, None] / 2.0, area_t[:, None] / 4.0),
        voronoi,
    )
    mixed = np.where(good[:, None], mixed, 0.0)
    area = np.bincount(f.ravel(), weights=mixed.ravel(), minlength=n)
    angles = np.where(good[:, None], angles, 0.0)
    angle_sum = np.bincount(f.ravel(), weights=angles.ravel(), minlength=n)
    # cotangent Laplacian: the edge opposite corner c joins corners c+1 and c+2 with weight
    # cot(c); it adds cot(c) (x_{c+1} - x_{c+2}) to corner c+1 and the opposite to c+2
    one, two = np.roll(np.arange(3), -1), np.roll(np.arange(3), -2)
    terms = cot[:, :, None] * (p[:, one] - p[:, two])  # (m, 3 edges, xyz)
    targets = np.concatenate([f[:, one].ravel(), f[:, two].ravel()])
    values = np.concatenate([terms.reshape(-1, 3), -terms.reshape(-1, 3)])
    laplace = _gather(targets, values, n)
    if normals is None:
        weighted = np.where(good[:, None], cross, 0.0)
        normals = _gather(f.ravel(), np.repeat(weighted, 3, axis=0), n)
    normals = np.asarray(normals, dtype=np.float64)
    length = np.linalg.norm(normals, axis=1)
    unit = normals / np.where(length > 0, length, 1.0)[:, None]
    invalid = (area <= _TINY) | (length <= 0) | boundary_vertices(f, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.einsum("nx,nx->n", laplace, unit) / (4.0 * area)
        gaussian = (2.0 * np.pi - angle_sum) / area
    mean[invalid] = np.nan
    gaussian[invalid] = np.nan
    return mean, gaussian, area
