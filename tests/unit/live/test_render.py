"""Map PNGs of the live page: every listed map renders, and the image box the page is told
maps a click to the right pixel."""

import io

import matplotlib.image
import numpy as np
import pytest

from xanes_stream.live.web.render import UnknownMap, layout, map_names, render_map


def test_map_png_box_maps_clicks_to_pixels(od_scan):
    """A hot pixel in a non-square map lands where the layout's box says it is."""
    _, _, maps = od_scan
    from dataclasses import replace

    ny, nx = 40, 100
    hot = (13, 71)
    thickness = np.zeros((ny, nx), dtype=np.float32)
    thickness[hot] = 1.0
    small = replace(
        maps,
        thickness=thickness,
        fractions=maps.fractions[:, :ny, :nx],
        mask=np.ones((ny, nx), bool),
    )
    png = render_map(small, "thickness")
    image = matplotlib.image.imread(io.BytesIO(png))
    (width, height), (left, top, w, h) = layout((ny, nx))
    assert image.shape[:2] == (height, width)
    brightness = image[..., :3].mean(axis=2)
    region = brightness[
        round(top * height) : round((top + h) * height),
        round(left * width) : round((left + w) * width),
    ]
    rows, cols = np.nonzero(region > 0.9)
    y = int(np.median(rows) / region.shape[0] * ny)
    x = int(np.median(cols) / region.shape[1] * nx)
    assert (y, x) == hot


def test_every_listed_map_renders_and_unknown_ones_are_refused(od_scan):
    _, _, maps = od_scan
    for name in map_names(maps):
        assert render_map(maps, name).startswith(b"\x89PNG")
    with pytest.raises(UnknownMap, match="no map 'nonsense'"):
        render_map(maps, "nonsense")
