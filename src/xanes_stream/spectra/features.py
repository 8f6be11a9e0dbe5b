"""Spectral features per pixel: edge energy (E0) and white-line peak energy."""

from __future__ import annotations

from typing import Literal

import numpy as np

EdgeMethod = Literal["derivative", "half_height"]


def _window_rows(energy: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    rows = np.flatnonzero((energy >= window[0]) & (energy <= window[1]))
    return rows


def _parabola_vertex(energy: np.ndarray, values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Sub-grid position of the maximum at ``index`` (P,) from a parabola through 3 points."""
    n = energy.size
    i = np.clip(index, 1, n - 2)
    cols = np.arange(values.shape[1])
    x0, x1, x2 = energy[i - 1], energy[i], energy[i + 1]
    y0, y1, y2 = values[i - 1, cols], values[i, cols], values[i + 1, cols]
    u0, u2 = x0 - x1, x2 - x1
    v0, v2 = (y0 - y1).astype(np.float64), (y2 - y1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (v0 / u0 - v2 / u2) / (u0 - u2)
        b = v0 / u0 - a * u0
        vertex = np.where(a < 0, -b / (2 * a), 0.0)
    vertex = np.clip(np.nan_to_num(vertex), u0, u2)
    at_edge = (index <= 0) | (index >= n - 1)
    return np.where(at_edge, energy[index], x1 + vertex)


def edge_energy(
    spectra: np.ndarray,
    energy: np.ndarray,
    window: tuple[float, float],
    method: EdgeMethod = "derivative",
) -> np.ndarray:
    """E0 per pixel (eV) of normalized spectra (n_energy, P) within an absolute ``window``.

    ``derivative``: the maximum of the lightly smoothed derivative, refined between points.
    ``half_height``: where the normalized spectrum first rises through 0.5, interpolated.
    Pixels without an edge in the window get NaN.
    """
    energy = np.asarray(energy, dtype=np.float64)
    rows = _window_rows(energy, window)
    n_pixels = spectra.shape[1]
    if rows.size < 3:
        return np.full(n_pixels, np.nan, dtype=np.float32)
    lo, hi = max(rows[0] - 1, 0), min(rows[-1] + 2, energy.size)
    e = energy[lo:hi]
    y = spectra[lo:hi]
    if method == "half_height":
        above = y >= 0.5
        rising = above[1:] & ~above[:-1]
        has = rising.any(axis=0)
        j = np.argmax(rising, axis=0)
        cols = np.arange(n_pixels)
        y0, y1 = y[j, cols], y[j + 1, cols]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.clip((0.5 - y0) / (y1 - y0), 0.0, 1.0)
        e0 = e[j] + t * (e[j + 1] - e[j])
        return np.where(has, e0, np.nan).astype(np.float32)
    dy = np.gradient(y, e, axis=0)
    if dy.shape[0] >= 3:
        dy[1:-1] = 0.25 * dy[:-2] + 0.5 * dy[1:-1] + 0.25 * dy[2:]
    inner = (e >= window[0]) & (e <= window[1])
    dy[~inner] = -np.inf
    index = np.argmax(dy, axis=0)
    e0 = _parabola_vertex(e, np.where(np.isfinite(dy), dy, np.nanmin(dy[inner])), index)
    valid = np.isfinite(dy).any(axis=0) & (np.max(dy, axis=0) > 0)
    return np.where(valid, e0, np.nan).astype(np.float32)


def peak_energy(spectra: np.ndarray, energy: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """White-line peak energy per pixel (eV): the maximum in ``window``, refined between points."""
    energy = np.asarray(energy, dtype=np.float64)
    rows = _window_rows(energy, window)
    if rows.size < 1:
        return np.full(spectra.shape[1], np.nan, dtype=np.float32)
    lo, hi = max(rows[0] - 1, 0), min(rows[-1] + 2, energy.size)
    e = energy[lo:hi]
    y = np.array(spectra[lo:hi], dtype=np.float32)
    outside = (e < window[0]) | (e > window[1])
    masked = np.where(outside[:, None], -np.inf, y)
    index = np.argmax(masked, axis=0)
    return _parabola_vertex(e, y, index).astype(np.float32)
