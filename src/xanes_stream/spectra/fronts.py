"""Reaction fronts (seed 001): masks of the pixels whose edge energy lies in given windows.

During a reaction the edge energy moves between those of the two phases; the pixels whose E0 is
in a window between them mark where the front is at that moment.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from pydantic import Field

from xanes_stream.errors import AnalysisError
from xanes_stream.pipeline.results import Maps, NormalizedStack, Product
from xanes_stream.pipeline.section import Window, _Section
from xanes_stream.spectra.references import Reference


class FrontSettings(_Section):
    """Edge-energy contour masks."""

    enabled: bool = False
    windows: tuple[Window, ...] = Field(
        (), description="absolute E0 windows (eV); empty: n_windows equal windows spanning E0"
    )
    n_windows: int = Field(3, ge=1, le=50, description="windows when none are given")
    percentiles: Window = Field(
        (5.0, 95.0), description="E0 span (percentiles in the mask) split into n_windows"
    )
    use_mask: bool = Field(True, description="only pixels in the quality mask")


def _check_windows(windows: Sequence[Sequence[float]]) -> np.ndarray:
    bounds = np.asarray(windows, dtype=np.float64).reshape(-1, 2) if len(windows) else None
    if bounds is None or not np.all(np.isfinite(bounds)):
        raise AnalysisError(f"edge-energy windows must be finite (low, high) pairs, got {windows}")
    if np.any(bounds[:, 0] >= bounds[:, 1]):
        raise AnalysisError(f"each edge-energy window needs low < high, got {bounds.tolist()}")
    return bounds


def edge_energy_contours(
    edge_energy: np.ndarray,
    windows: Sequence[tuple[float, float]],
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """(k, ny, nx) bool: pixels whose E0 (eV) lies in window i, low <= E0 < high, inside
    ``mask`` when one is given. NaN edge energies are in no window."""
    bounds = _check_windows(windows)
    e0 = np.asarray(edge_energy)
    if mask is not None and np.shape(mask) != e0.shape:
        raise AnalysisError(f"mask {np.shape(mask)} and edge energy {e0.shape} differ")
    low = bounds[:, 0].reshape((-1,) + (1,) * e0.ndim)
    high = bounds[:, 1].reshape((-1,) + (1,) * e0.ndim)
    with np.errstate(invalid="ignore"):
        inside = (e0[None] >= low) & (e0[None] < high)
    if mask is not None:
        inside &= np.asarray(mask, dtype=bool)[None]
    return inside


def spanning_windows(
    edge_energy: np.ndarray,
    mask: np.ndarray | None,
    n_windows: int,
    percentiles: tuple[float, float] = (5.0, 95.0),
) -> list[tuple[float, float]]:
    """``n_windows`` equal, adjacent windows from the low to the high percentile of E0."""
    values = np.asarray(edge_energy)
    values = values[mask.astype(bool)] if mask is not None else values.ravel()
    values = values[np.isfinite(values)]
    if values.size < 2:
        raise AnalysisError("no finite edge energies to place the front windows on")
    lo, hi = np.percentile(values, percentiles)
    if not hi > lo:
        raise AnalysisError(f"edge energies span no range ({lo:.2f} eV); give the windows")
    edges = np.linspace(lo, hi, n_windows + 1)
    return [(float(a), float(b)) for a, b in itertools.pairwise(edges)]


def run(
    normalized: NormalizedStack,
    maps: Maps,
    settings: FrontSettings,
    library: Sequence[Reference],
) -> Product:
    """Edge-energy contour masks of a scan: ``fronts/contours`` (k, ny, nx)."""
    mask = maps.mask.astype(bool) if settings.use_mask else None
    windows = list(settings.windows) or spanning_windows(
        maps.edge_energy, mask, settings.n_windows, settings.percentiles
    )
    contours = edge_energy_contours(maps.edge_energy, windows, mask)
    return Product(
        images={"fronts/contours": contours},
        metadata={
            "windows": [list(w) for w in windows],
            "pixels": contours.sum(axis=(1, 2)).tolist(),
            "settings": settings.model_dump(mode="json"),
        },
    )
