"""The region of a ``/api/scans/<uid>/region`` request, read strictly from its query string.

Only numbers are accepted, in bounded sizes: a rectangle's four integer bounds, a polygon of at
most :data:`~xanes_stream.imaging.regions.MAX_VERTICES` vertices ``row,col;row,col;...``, a
cluster's or particle's label. Anything else is a :class:`BadRegion` whose message says what to
send; the app answers it with HTTP 400.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from xanes_stream.errors import XanesStreamError
from xanes_stream.imaging.regions import MAX_VERTICES
from xanes_stream.pipeline.regions import REGION_KINDS, Region

__all__ = ["BadRegion", "parse_pixel", "parse_region"]

_INTEGER = re.compile(r"-?\d{1,7}")
_NUMBER = re.compile(r"-?\d{1,7}(\.\d{1,6})?")
_MAX_POINTS_TEXT = MAX_VERTICES * 32
_USAGE = {
    "rect": "kind=rect&y0=ROW&y1=ROW&x0=COLUMN&x1=COLUMN (rows y0..y1-1, columns x0..x1-1)",
    "polygon": "kind=polygon&points=ROW,COLUMN;ROW,COLUMN;... (3 or more vertices)",
    "cluster": "kind=cluster&label=N (a k-means cluster, from 1)",
    "particle": "kind=particle&label=N (a particle of the particles product, from 1)",
    "mask": "kind=mask (the pixels analysed)",
}


class BadRegion(XanesStreamError):
    """A region request that is not one of the forms :data:`_USAGE` lists."""


def _integer(params: Mapping[str, str], name: str, usage: str) -> int:
    text = params.get(name)
    if text is None or not _INTEGER.fullmatch(text.strip()):
        shown = "missing" if text is None else f"{text[:20]!r}"
        raise BadRegion(f"{name} must be an integer ({shown}); give the region as {usage}")
    return int(text)


def parse_region(params: Mapping[str, str]) -> Region:
    """The :class:`~xanes_stream.pipeline.regions.Region` a query string asks for.

    Parameters
    ----------
    params : mapping of str to str
        The request's query parameters.

    Returns
    -------
    Region

    Raises
    ------
    BadRegion
        For an unknown kind, a missing or non-numeric value, or too many vertices.
    """
    kind = params.get("kind", "")
    if kind not in REGION_KINDS:
        forms = "; ".join(_USAGE.values())
        raise BadRegion(
            f"kind must be one of {', '.join(REGION_KINDS)}, not {kind[:20]!r}: {forms}"
        )
    usage = _USAGE[kind]
    if kind == "rect":
        bounds = tuple(_integer(params, name, usage) for name in ("y0", "y1", "x0", "x1"))
        return Region("rect", bounds=bounds)
    if kind in ("cluster", "particle"):
        return Region(kind, label=_integer(params, "label", usage))
    if kind == "mask":
        return Region("mask")
    text = params.get("points", "")
    if len(text) > _MAX_POINTS_TEXT:
        raise BadRegion(f"a polygon has at most {MAX_VERTICES} vertices; give it as {usage}")
    points = []
    for pair in filter(None, text.strip().strip(";").split(";")):
        values = pair.split(",")
        if len(values) != 2 or not all(_NUMBER.fullmatch(v.strip()) for v in values):
            raise BadRegion(f"a vertex must be two numbers ROW,COLUMN, not {pair[:30]!r}: {usage}")
        point = tuple(float(v) for v in values)
        if not all(math.isfinite(v) for v in point):
            raise BadRegion(f"a vertex must be finite numbers: {usage}")
        points.append(point)
    if not 3 <= len(points) <= MAX_VERTICES:
        raise BadRegion(f"a polygon needs 3 to {MAX_VERTICES} vertices, got {len(points)}: {usage}")
    return Region("polygon", points=tuple(points))


def parse_pixel(params: Mapping[str, str]) -> tuple[int, int]:
    """The pixel (y, x) of a ``?y=ROW&x=COLUMN`` query.

    Parameters
    ----------
    params : mapping of str to str
        The request's query parameters.

    Returns
    -------
    (int, int)

    Raises
    ------
    BadRegion
        For a missing or non-integer row or column.
    """
    usage = "?y=ROW&x=COLUMN (integers)"
    return _integer(params, "y", usage), _integer(params, "x", usage)
