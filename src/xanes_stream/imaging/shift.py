"""Moving a frame by a sub-pixel (dy, dx) with bilinear interpolation, and what that does to
its noise.

Convention: the shift of a frame is the (dy, dx) that, applied to the frame, registers it on the
reference (see :mod:`xanes_stream.imaging.registration`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def bilinear_noise(shifts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How :func:`shift_frame` changes white noise, per (dy, dx) row of ``shifts``.

    Returns ``(gain, seen)``: the factor on each pixel's noise std, and the factor on what
    horizontal-neighbour differences see (they see less, since interpolation correlates the
    neighbours); ``gain / seen`` corrects a noise estimate made on shifted frames.
    """
    fy, fx = np.moveaxis(np.mod(np.asarray(shifts, dtype=np.float64).reshape(-1, 2), 1.0), 1, 0)
    spread_y, spread_x = (1 - fy) ** 2 + fy**2, (1 - fx) ** 2 + fx**2
    # out[x+1] - out[x] = a n[x+1] + (b - a) n[x] - b n[x-1], a = 1 - fx, b = fx
    differences = spread_x + (1 - 2 * fx) ** 2
    return np.sqrt(spread_y * spread_x), np.sqrt(spread_y * differences / 2)


def shift_frame(
    frame: np.ndarray, shift: Iterable[float], *, fill: float | None = None
) -> np.ndarray:
    """Frame moved by (dy, dx) pixels with bilinear interpolation; borders repeat the edge.

    With ``fill``, pixels that came from outside the frame get that value instead (e.g. NaN).

    Parameters
    ----------
    frame : numpy.ndarray
        (ny, nx) image.
    shift : (float, float)
        (dy, dx) pixels.
    fill : float, optional
        Value for pixels from outside the frame.

    Returns
    -------
    numpy.ndarray
        (ny, nx) float32.
    """
    dy, dx = (float(s) for s in shift)
    frame = np.asarray(frame, dtype=np.float32)
    if dy == 0 and dx == 0:
        return frame.copy()
    ny, nx = frame.shape
    iy, ix = int(np.floor(dy)), int(np.floor(dx))
    fy, fx = np.float32(dy - iy), np.float32(dx - ix)
    pad_y, pad_x = abs(iy) + 1, abs(ix) + 1
    padded = np.pad(frame, ((pad_y, pad_y), (pad_x, pad_x)), mode="edge")
    # out[y] = (1 - fy) * in[y - iy] + fy * in[y - iy - 1]
    top = padded[pad_y - iy : pad_y - iy + ny]
    above = padded[pad_y - iy - 1 : pad_y - iy - 1 + ny]
    with np.errstate(invalid="ignore"):  # inf pixels (bad frames) interpolate to NaN
        rows = top + fy * (above - top) if fy else top
        left = rows[:, pad_x - ix : pad_x - ix + nx]
        before = rows[:, pad_x - ix - 1 : pad_x - ix - 1 + nx]
        out = left + fx * (before - left) if fx else np.array(left)
    if fill is not None:
        lo_y, hi_y = int(np.ceil(dy)), int(np.floor(dy))
        lo_x, hi_x = int(np.ceil(dx)), int(np.floor(dx))
        if lo_y > 0:
            out[:lo_y] = fill
        if hi_y < 0:
            out[ny + hi_y :] = fill
        if lo_x > 0:
            out[:, :lo_x] = fill
        if hi_x < 0:
            out[:, nx + hi_x :] = fill
    return out


def unseen_fraction(shifts: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """The share of the frames moved by ``shifts`` (:func:`shift_frame`) in which each pixel
    came in from outside the field (and repeats the edge there): what no frame measured.

    Parameters
    ----------
    shifts : numpy.ndarray or None
        (n, 2) the frames' (dy, dx); None: no frame moved.
    shape : (int, int)
        (ny, nx) of the frames.

    Returns
    -------
    numpy.ndarray
        (ny, nx) float64 in [0, 1]; 0 where every frame saw the pixel (where
        :func:`shift_frame` with ``fill`` fills it in none of them).
    """
    ny, nx = shape
    if shifts is None:
        return np.zeros(shape)
    shifts = np.asarray(shifts, dtype=np.float64).reshape(-1, 2)
    shifts = shifts[np.all(np.isfinite(shifts), axis=1)]
    if shifts.size == 0:
        return np.zeros(shape)
    # a frame moved by d > 0 lost its first ceil(d) rows (columns); by d < 0, its last -floor(d)
    first = np.maximum(np.ceil(shifts), 0)  # (n, 2)
    last = np.maximum(-np.floor(shifts), 0)
    y, x = np.arange(ny), np.arange(nx)
    rows = (y[None, :] < first[:, :1]) | (y[None, :] >= ny - last[:, :1])  # (n, ny)
    cols = (x[None, :] < first[:, 1:]) | (x[None, :] >= nx - last[:, 1:])  # (n, nx)
    rows, cols = rows.astype(np.float64), cols.astype(np.float64)
    # frames that lost the pixel's row or its column: |A or B| = |A| + |B| - |A and B|
    lost = rows.sum(axis=0)[:, None] + cols.sum(axis=0)[None, :] - rows.T @ cols
    return lost / shifts.shape[0]
