"""Reaction fronts (seed 001): masks of the pixels whose edge energy lies in given windows.

During a reaction the edge energy moves between those of the two phases; the pixels whose E0 is
in a window between them mark where the front is at that moment.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from xanes_stream.errors import AnalysisError


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
    """Masks of the pixels whose E0 lies in each window, ``low <= E0 < high``.

    Parameters
    ----------
    edge_energy : numpy.ndarray
        (ny, nx) E0 map (eV); NaN is in no window.
    windows : sequence of (float, float)
        Absolute E0 windows (eV).
    mask : numpy.ndarray, optional
        (ny, nx) bool: only these pixels.

    Returns
    -------
    numpy.ndarray
        (k, ny, nx) bool, one mask per window.
    """
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
    """Equal, adjacent windows from the low to the high percentile of E0.

    Parameters
    ----------
    edge_energy : numpy.ndarray
        (ny, nx) E0 map (eV).
    mask : numpy.ndarray or None
        (ny, nx) bool: the pixels whose E0 counts.
    n_windows : int
        How many windows.
    percentiles : (float, float)
        The span of E0 to split.

    Returns
    -------
    list of (float, float)
        The windows (eV).
    """
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
