"""Regions of an image as boolean masks: a rectangle, a polygon, or one label of a label map.

Pure numpy (and :func:`skimage.draw.polygon`): shapes and numbers in, a (ny, nx) bool array
out. A region that leaves the image, or selects no pixel, raises
:class:`~xanes_stream.errors.AnalysisError` with the reason, so a person's mistake (a box drawn
off the map, a cluster that does not exist) reads as such.
"""

from __future__ import annotations

import numpy as np
from skimage.draw import polygon as draw_polygon

from xanes_stream.errors import AnalysisError

__all__ = ["label_region", "mask_region", "polygon_region", "rectangle_region"]

#: The most vertices a polygon may have.
MAX_VERTICES = 500


def _shape(shape) -> tuple[int, int]:
    ny, nx = (int(v) for v in shape)
    if ny <= 0 or nx <= 0:
        raise AnalysisError(f"an image of {ny} x {nx} pixels has no region")
    return ny, nx


def _nonempty(region: np.ndarray, what: str) -> np.ndarray:
    if not region.any():
        raise AnalysisError(f"{what} holds no pixel")
    return region


def rectangle_region(shape, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """The pixels of rows ``y0 .. y1-1`` and columns ``x0 .. x1-1`` (Python's slice rule).

    Parameters
    ----------
    shape : (int, int)
        The image's (ny, nx).
    y0, y1, x0, x1 : int
        The rectangle; ``0 <= y0 < y1 <= ny`` and ``0 <= x0 < x1 <= nx``.

    Returns
    -------
    numpy.ndarray
        (ny, nx) bool.

    Raises
    ------
    AnalysisError
        For a rectangle that is empty or not inside the image.
    """
    ny, nx = _shape(shape)
    if not (0 <= y0 < y1 <= ny and 0 <= x0 < x1 <= nx):
        raise AnalysisError(
            f"the rectangle rows {y0}..{y1}, columns {x0}..{x1} is not a non-empty box inside "
            f"the {ny} x {nx} image (need 0 <= y0 < y1 <= {ny} and 0 <= x0 < x1 <= {nx})"
        )
    region = np.zeros((ny, nx), dtype=bool)
    region[y0:y1, x0:x1] = True
    return region


def polygon_region(shape, rows, columns) -> np.ndarray:
    """The pixels whose centres lie inside the polygon of vertices (``rows[i]``, ``columns[i]``).

    Pixel (y, x) has its centre at (y, x), as :func:`skimage.draw.polygon` counts it.

    Parameters
    ----------
    shape : (int, int)
        The image's (ny, nx).
    rows, columns : sequence of float
        The vertices, 3 to :data:`MAX_VERTICES` of them, each inside the image
        (``-0.5 <= row <= ny - 0.5``, the same for columns).

    Returns
    -------
    numpy.ndarray
        (ny, nx) bool.

    Raises
    ------
    AnalysisError
        Too few or too many vertices, a vertex off the image, or a polygon holding no pixel.
    """
    ny, nx = _shape(shape)
    r = np.asarray(rows, dtype=np.float64).ravel()
    c = np.asarray(columns, dtype=np.float64).ravel()
    if r.size != c.size or not 3 <= r.size <= MAX_VERTICES:
        raise AnalysisError(
            f"a polygon needs 3 to {MAX_VERTICES} vertices, each a row and a column; got "
            f"{r.size} rows and {c.size} columns"
        )
    if not (np.isfinite(r).all() and np.isfinite(c).all()):
        raise AnalysisError("a polygon's vertices must be finite numbers")
    if r.min() < -0.5 or r.max() > ny - 0.5 or c.min() < -0.5 or c.max() > nx - 0.5:
        raise AnalysisError(f"a vertex of the polygon lies outside the {ny} x {nx} image")
    region = np.zeros((ny, nx), dtype=bool)
    rr, cc = draw_polygon(r, c, shape=(ny, nx))
    region[rr, cc] = True
    return _nonempty(region, "the polygon (no pixel centre lies inside it)")


def label_region(labels: np.ndarray, label: int, *, what: str = "label") -> np.ndarray:
    """The pixels of a label map equal to ``label`` (e.g. one k-means cluster, one particle).

    Parameters
    ----------
    labels : numpy.ndarray
        (ny, nx) integer labels (NaN allowed: never selected).
    label : int
        The label; 0 (background, outside the mask) is not a region.
    what : str
        What the labels are, for the error message ("cluster", "particle").

    Returns
    -------
    numpy.ndarray
        (ny, nx) bool.

    Raises
    ------
    AnalysisError
        For label 0 or below, or a label no pixel has.
    """
    values = np.asarray(labels)
    if values.ndim != 2:
        raise AnalysisError(f"a {what} map must be 2-D, not {values.ndim}-D")
    if label < 1:
        raise AnalysisError(f"{what} {label} is not a region: {what}s are numbered from 1")
    region = values == label
    if not region.any():
        finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
        top = int(np.max(finite, initial=0))
        raise AnalysisError(f"there is no {what} {label}: this scan's {what}s are 1..{top}")
    return region


def mask_region(mask: np.ndarray) -> np.ndarray:
    """The pixels of the analysis mask, as a region.

    Parameters
    ----------
    mask : numpy.ndarray
        (ny, nx), true (non-zero) for the pixels analysed.

    Returns
    -------
    numpy.ndarray
        (ny, nx) bool.

    Raises
    ------
    AnalysisError
        For an empty mask.
    """
    values = np.asarray(mask)
    if values.ndim != 2:
        raise AnalysisError(f"the mask must be 2-D, not {values.ndim}-D")
    return _nonempty(np.nan_to_num(values.astype(float)) != 0, "the mask")
