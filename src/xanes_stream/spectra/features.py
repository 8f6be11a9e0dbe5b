"""Spectral features per pixel: edge energy (E0) and white-line peak energy."""

from __future__ import annotations

from typing import Literal

import numpy as np

EdgeMethod = Literal["derivative", "half_height"]


def argmax_rows(values: np.ndarray) -> np.ndarray:
    """``np.argmax(values, axis=0)`` for (rows, P): a running maximum down the rows, which is
    several times faster than numpy's reduction across the strided axis (first maximum wins).

    Parameters
    ----------
    values : numpy.ndarray
        (rows, P) values.

    Returns
    -------
    numpy.ndarray
        (P,) row index of each column's maximum.
    """
    best = np.array(values[0], dtype=np.float32)
    index = np.zeros(values.shape[1], dtype=np.intp)
    larger = np.empty(values.shape[1], dtype=bool)
    for row in range(1, values.shape[0]):
        np.greater(values[row], best, out=larger)
        np.maximum(best, values[row], out=best)
        np.copyto(index, row, where=larger)
    return index


def _vertex(energy: np.ndarray, values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Sub-grid position of a maximum at row ``index`` (P,), from a parabola through 3 points.

    ``values`` has one extra row before and after the rows ``index`` can point at.
    """
    i = index[None, :]
    y0 = np.take_along_axis(values, i, axis=0)[0]
    y1 = np.take_along_axis(values, i + 1, axis=0)[0]
    y2 = np.take_along_axis(values, i + 2, axis=0)[0]
    x0, x1, x2 = energy[index], energy[index + 1], energy[index + 2]
    u0, u2 = (x0 - x1).astype(np.float32), (x2 - x1).astype(np.float32)
    v0, v2 = y0 - y1, y2 - y1
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (v0 / u0 - v2 / u2) / (u0 - u2)
        offset = -(v0 / u0 - a * u0) / (2 * a)
    offset = np.where(a < 0, offset, 0.0)
    offset = np.clip(np.nan_to_num(offset), u0, u2)
    return (x1 + offset).astype(np.float32)


def _padded_window(energy: np.ndarray, window: tuple[float, float], n_rows: int):
    """Rows inside ``window`` and the slice that adds one neighbour on each side."""
    inside = np.flatnonzero((energy >= window[0]) & (energy <= window[1]))
    inside = inside[(inside >= 1) & (inside <= n_rows - 2)]
    if inside.size == 0:
        return None
    return slice(int(inside[0]) - 1, int(inside[-1]) + 2)


def derivative_operator(energy: np.ndarray, window: tuple[float, float]):
    """The smoothed derivative inside ``window`` as a banded matrix on a slice of the spectra.

    Returns ``(matrix, rows, centres)``: ``matrix @ spectra[rows]`` is the central-difference
    derivative smoothed by [1, 2, 1], at the energies ``centres`` (the window's points plus one
    neighbour on each side, for the sub-grid refinement). None when the window is too narrow.
    """
    energy = np.asarray(energy, dtype=np.float64)
    n = energy.size
    inside = np.flatnonzero((energy >= window[0]) & (energy <= window[1]))
    inside = inside[(inside >= 3) & (inside <= n - 4)]
    if inside.size == 0:
        return None
    centres = np.arange(inside[0] - 1, inside[-1] + 2)  # smoothed derivative at these rows
    rows = slice(int(centres[0]) - 2, int(centres[-1]) + 3)
    matrix = np.zeros((centres.size, rows.stop - rows.start))
    for r, i in enumerate(centres):
        for weight, j in ((0.25, i - 1), (0.5, i), (0.25, i + 1)):
            inverse = 1.0 / (energy[j + 1] - energy[j - 1])  # central difference at j
            matrix[r, j + 1 - rows.start] += weight * inverse
            matrix[r, j - 1 - rows.start] -= weight * inverse
    return matrix.astype(np.float32), rows, energy[centres]


def edge_energy(
    spectra: np.ndarray,
    energy: np.ndarray,
    window: tuple[float, float],
    method: EdgeMethod = "derivative",
    *,
    operator=None,
) -> np.ndarray:
    """E0 per pixel (eV) of spectra (n_energy, P) within an absolute ``window``.

    ``derivative``: the maximum of the lightly smoothed derivative, refined between points;
    it does not change when a line is subtracted or the spectrum scaled, so the spectra need
    not be normalized. ``half_height``: where normalized spectra first rise through 0.5,
    interpolated. Pixels without an edge in the window get NaN. ``operator``, from
    :func:`derivative_operator` on the same arguments, saves building it again.

    Parameters
    ----------
    spectra : numpy.ndarray
        (n_energy, P) spectra.
    energy : numpy.ndarray
        (n_energy,) eV.
    window : (float, float)
        Absolute window (eV) the edge is looked for in.
    method : {"derivative", "half_height"}
        How E0 is defined.
    operator : tuple, optional
        From :func:`derivative_operator`.

    Returns
    -------
    numpy.ndarray
        (P,) E0 in eV, NaN where there is no edge in the window.
    """
    n_pixels = spectra.shape[1]
    if method == "half_height":
        return _half_height(spectra, np.asarray(energy, dtype=np.float64), window)
    operator = operator or derivative_operator(energy, window)
    if operator is None:
        return np.full(n_pixels, np.nan, dtype=np.float32)
    matrix, rows, centres = operator
    smooth = matrix @ np.asarray(spectra[rows], dtype=np.float32)
    index = argmax_rows(smooth[1:-1])
    e0 = _vertex(centres, smooth, index)
    peak = np.take_along_axis(smooth, index[None, :] + 1, axis=0)[0]
    return np.where(peak > 0, e0, np.nan).astype(np.float32)


def _half_height(spectra: np.ndarray, energy: np.ndarray, window) -> np.ndarray:
    rows = np.flatnonzero((energy >= window[0]) & (energy <= window[1]))
    if rows.size < 2:
        return np.full(spectra.shape[1], np.nan, dtype=np.float32)
    y = spectra[rows[0] : rows[-1] + 1]
    e = energy[rows[0] : rows[-1] + 1]
    above = y >= 0.5
    rising = above[1:] & ~above[:-1]
    has = rising.any(axis=0)
    j = np.argmax(rising, axis=0)[None, :]
    y0 = np.take_along_axis(y, j, axis=0)[0]
    y1 = np.take_along_axis(y, j + 1, axis=0)[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.clip((0.5 - y0) / (y1 - y0), 0.0, 1.0)
    e0 = e[j[0]] + t * (e[j[0] + 1] - e[j[0]])
    return np.where(has, e0, np.nan).astype(np.float32)


def peak_energy(spectra: np.ndarray, energy: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """White-line peak energy per pixel (eV): the maximum in ``window``, refined between points.

    The spectra should be pre-edge subtracted (normalized or not: scale does not matter).

    Parameters
    ----------
    spectra : numpy.ndarray
        (n_energy, P) pre-edge-subtracted spectra.
    energy : numpy.ndarray
        (n_energy,) eV.
    window : (float, float)
        Absolute window (eV).

    Returns
    -------
    numpy.ndarray
        (P,) peak energy in eV, NaN where the window holds no energy.
    """
    energy = np.asarray(energy, dtype=np.float64)
    rows = _padded_window(energy, window, energy.size)
    if rows is None:
        return np.full(spectra.shape[1], np.nan, dtype=np.float32)
    local = spectra[rows]
    index = argmax_rows(local[1:-1])
    return _vertex(energy[rows], local, index)
