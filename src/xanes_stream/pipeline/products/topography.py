"""Valence-state topography (seed 001) as a pluggable analysis: the curvature of the E0 level
sets, isosurfaces of a volume's E0 or level lines of a 2-D E0 map, per chosen energy.

Tables (the same keys for 2-D maps and volumes):

- ``topography/levels``: a row per level: ``level`` (eV), ``n_points`` (vertices, or points of
  the level lines every half pixel), ``size`` (surface area in voxel units squared, or line
  length in pixels, times ``voxel_size`` to the power), ``mean_curvature`` (area- or
  length-weighted mean of the local mean curvature), ``p_positive`` / ``p_negative`` (its
  weighted probability above ``neutral`` / below ``-neutral``) and, for volumes,
  ``p_saddle`` (weighted probability of negative Gaussian curvature);
- ``topography/histogram``: a row per level and bin: ``level``, ``low``, ``high``, ``count``;
- volumes: ``topography/vertices`` (``level``, ``z``, ``y``, ``x``, ``mean_curvature``,
  ``gaussian_curvature``, ``area``) and ``topography/faces`` (``level``, ``a``, ``b``, ``c``:
  rows of the vertices table); 2-D maps: ``topography/lines`` (``level``, ``line``, ``y``,
  ``x``, ``curvature``). Left out with ``keep_surfaces`` off.

Curvatures are in 1 / ``voxel_size`` units; positive where the lower-E0 side is convex.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field

from xanes_stream.errors import AnalysisError
from xanes_stream.imaging.topography import (
    contour_curvatures,
    curvature_histogram,
    isosurface_curvatures,
    robust_span,
    spread_levels,
)
from xanes_stream.pipeline.products.registry import register
from xanes_stream.pipeline.results import Maps, NormalizedStack, Product
from xanes_stream.pipeline.section import Window, _Section
from xanes_stream.spectra.references import Reference

NAME = "topography"


class TopographySettings(_Section):
    """Curvature of the edge-energy level sets (isosurfaces of a volume, lines of a map)."""

    enabled: bool = False
    levels: tuple[float, ...] = Field(
        (), description="E0 levels (eV); empty: n_levels spread over the E0 in the mask"
    )
    n_levels: int = Field(3, ge=1, le=50, description="levels when none are given")
    percentiles: Window = Field(
        (10.0, 90.0), description="E0 span (percentiles in the mask) the levels spread over"
    )
    bins: int = Field(41, ge=1, le=1001, description="histogram bins of the local curvature")
    span: float | None = Field(
        None, gt=0, description="histogram half-width (1/voxel_size); None: 99th pct of |H|"
    )
    neutral: float = Field(0.0, ge=0, description="|curvature| up to this is neither sign")
    smooth: int = Field(2, ge=0, le=20, description="volumes: one-ring averaging passes")
    sigma: float = Field(1.0, ge=0, description="maps: smoothing along the lines (px)")
    voxel_size: float = Field(1.0, gt=0, description="voxel/pixel size; curvature in 1/it")
    use_mask: bool = Field(True, description="only pixels in the quality mask")
    keep_surfaces: bool = Field(True, description="write the vertices/faces or line points")


#: The settings section by its usual name.
Settings = TopographySettings


def _levels(e0: np.ndarray, mask: np.ndarray | None, settings: TopographySettings) -> list:
    if settings.levels:
        levels = [float(v) for v in settings.levels]
        if not all(np.isfinite(levels)):
            raise AnalysisError(f"topography levels must be finite energies, got {levels}")
        return levels
    return spread_levels(e0, mask, settings.n_levels, settings.percentiles)


def _volume(e0, mask, levels, settings) -> tuple[list, list, list, dict]:
    """Per level: the curvatures, their weights, the Gaussian ones; the surface tables."""
    spacing = (settings.voxel_size,) * 3
    values, weights, gaussians = [], [], []
    vertices, faces = [], []
    offset = 0
    for i, level in enumerate(levels):
        s = isosurface_curvatures(e0, level, spacing, mask=mask, smooth=settings.smooth)
        values.append(s.mean_curvature)
        weights.append(s.area)
        gaussians.append(s.gaussian_curvature)
        n = len(s.vertices)
        vertices.append(
            {
                "level": np.full(n, i, dtype=np.int32),
                "z": s.vertices[:, 0],
                "y": s.vertices[:, 1],
                "x": s.vertices[:, 2],
                "mean_curvature": s.mean_curvature,
                "gaussian_curvature": s.gaussian_curvature,
                "area": s.area,
            }
        )
        corners = s.faces + offset
        faces.append(
            {
                "level": np.full(len(corners), i, dtype=np.int32),
                **{key: corners[:, j] for j, key in enumerate("abc")},
            }
        )
        offset += n
    tables = {"topography/vertices": _stack(vertices), "topography/faces": _stack(faces)}
    return values, weights, gaussians, tables


def _map(e0, mask, levels, settings) -> tuple[list, list, list, dict]:
    """Per level: the line curvatures, their weights (equal: points are equally spaced)."""
    values, weights, rows = [], [], []
    for i, level in enumerate(levels):
        lines = contour_curvatures(
            e0, level, mask=mask, sigma=settings.sigma, pixel_size=settings.voxel_size
        )
        k = np.concatenate([c for _, c in lines]) if lines else np.zeros(0)
        values.append(k)
        weights.append(np.full(k.size, 0.5 * settings.voxel_size))  # half a pixel each
        for j, (points, curvature) in enumerate(lines):
            rows.append(
                {
                    "level": np.full(len(points), i, dtype=np.int32),
                    "line": np.full(len(points), j, dtype=np.int32),
                    "y": points[:, 0],
                    "x": points[:, 1],
                    "curvature": curvature,
                }
            )
    if not rows:
        rows = [{n: np.zeros(0) for n in ("level", "line", "y", "x", "curvature")}]
    return values, weights, [None] * len(levels), {"topography/lines": _stack(rows)}


def _stack(rows: list[dict]) -> dict:
    return {key: np.concatenate([r[key] for r in rows]) for key in rows[0]}


@register(NAME, TopographySettings, maps_only=True, volumes=True)
def run(
    normalized: NormalizedStack | None,
    maps: Maps,
    settings: TopographySettings,
    library: Sequence[Reference],
) -> Product:
    """Valence-state topography of a scan's E0 map or volume.

    Parameters
    ----------
    normalized : NormalizedStack or None
        Unused (the topography reads the maps only).
    maps : Maps
        The scan's maps: ``edge_energy`` (ny, nx), or (nz, ny, nx) for a volume.
    settings : TopographySettings
        This section.
    library : sequence of Reference
        Unused.

    Returns
    -------
    Product
        The tables the module describes; metadata: the levels, the histogram span, the
        dimension.
    """
    e0 = np.asarray(maps.edge_energy, dtype=np.float64)
    if e0.ndim not in (2, 3):
        raise AnalysisError(f"the edge-energy map must be 2-D or 3-D, got shape {e0.shape}")
    mask = None
    if settings.use_mask and maps.mask is not None:
        mask = np.asarray(maps.mask, dtype=bool)
    levels = _levels(e0, mask, settings)
    surfaces = _volume if e0.ndim == 3 else _map
    values, weights, gaussians, tables = surfaces(e0, mask, levels, settings)
    every = np.concatenate(values) if values else np.zeros(0)
    span = settings.span if settings.span is not None else robust_span(every)
    summary = {n: [] for n in ("level", "n_points", "size", "mean_curvature")}
    summary.update(p_positive=[], p_negative=[])
    if e0.ndim == 3:
        summary["p_saddle"] = []
    histogram = {n: [] for n in ("level", "low", "high", "count")}
    for level, h, w, k in zip(levels, values, weights, gaussians, strict=True):
        counts, edges, p_pos, p_neg = curvature_histogram(
            h, settings.bins, weights=w, neutral=settings.neutral, span=span
        )
        finite = np.isfinite(h)
        size = float(w.sum())
        summary["level"].append(level)
        summary["n_points"].append(int(h.size))
        summary["size"].append(size)
        wf = w[finite]
        mean = float(np.sum(h[finite] * wf) / wf.sum()) if wf.sum() > 0 else float("nan")
        summary["mean_curvature"].append(mean)
        summary["p_positive"].append(p_pos)
        summary["p_negative"].append(p_neg)
        if k is not None:
            *_, p_saddle = curvature_histogram(k, 1, weights=w, span=1.0)
            summary["p_saddle"].append(p_saddle)
        histogram["level"].extend([level] * len(counts))
        histogram["low"].extend(edges[:-1])
        histogram["high"].extend(edges[1:])
        histogram["count"].extend(counts)
    out = {
        "topography/levels": {
            n: np.asarray(v, dtype=np.int64 if n == "n_points" else np.float64)
            for n, v in summary.items()
        },
        "topography/histogram": {
            n: np.asarray(v, dtype=np.int64 if n == "count" else np.float64)
            for n, v in histogram.items()
        },
    }
    if settings.keep_surfaces:
        out.update(tables)
    return Product(
        tables=out,
        metadata={
            "dimensions": int(e0.ndim),
            "levels": levels,
            "span": span,
            "p_positive": summary["p_positive"],
            "p_negative": summary["p_negative"],
            "settings": settings.model_dump(mode="json"),
        },
    )
