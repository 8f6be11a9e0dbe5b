"""Region masks: rectangles, polygons (as skimage draws them), labels, the mask; bad regions."""

import numpy as np
import pytest
from skimage.draw import polygon as draw_polygon

from xanes_stream.errors import AnalysisError
from xanes_stream.imaging.regions import (
    label_region,
    mask_region,
    polygon_region,
    rectangle_region,
)

SHAPE = (40, 52)


def test_rectangle_is_the_slice():
    region = rectangle_region(SHAPE, 3, 9, 10, 30)
    expected = np.zeros(SHAPE, bool)
    expected[3:9, 10:30] = True
    np.testing.assert_array_equal(region, expected)
    assert region.sum() == 6 * 20


@pytest.mark.parametrize(
    "bounds", [(5, 5, 0, 3), (9, 3, 0, 3), (-1, 4, 0, 3), (0, 41, 0, 3), (0, 4, 10, 53)]
)
def test_bad_rectangles_raise(bounds):
    with pytest.raises(AnalysisError, match="inside"):
        rectangle_region(SHAPE, *bounds)


def test_polygon_equals_skimage_polygon():
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = rng.integers(3, 12)
        rows = rng.uniform(-0.5, SHAPE[0] - 0.5, n)
        cols = rng.uniform(-0.5, SHAPE[1] - 0.5, n)
        expected = np.zeros(SHAPE, bool)
        rr, cc = draw_polygon(rows, cols, shape=SHAPE)
        expected[rr, cc] = True
        if not expected.any():
            continue
        np.testing.assert_array_equal(polygon_region(SHAPE, rows, cols), expected)


def test_polygon_of_a_box_is_the_box_and_a_triangle_has_its_area():
    box = polygon_region(SHAPE, [2.5, 2.5, 8.5, 8.5], [9.5, 29.5, 29.5, 9.5])
    np.testing.assert_array_equal(box, rectangle_region(SHAPE, 3, 9, 10, 30))
    triangle = polygon_region(SHAPE, [0, 0, 39], [0, 51, 0])
    assert abs(triangle.sum() - 0.5 * 39 * 51) < 0.05 * 0.5 * 39 * 51


@pytest.mark.parametrize(
    ("rows", "cols", "reason"),
    [
        ([1, 2], [1, 2], "3 to"),
        ([1, 2, 50], [1, 2, 3], "outside"),
        ([1, 2, np.nan], [1, 2, 3], "finite"),
        ([1.1, 1.2, 1.3], [1.1, 1.3, 1.2], "no pixel"),
    ],
)
def test_bad_polygons_raise(rows, cols, reason):
    with pytest.raises(AnalysisError, match=reason):
        polygon_region(SHAPE, rows, cols)


def test_labels_and_mask():
    labels = np.zeros(SHAPE, int)
    labels[:10] = 1
    labels[10:15, :5] = 2
    assert label_region(labels, 2, what="cluster").sum() == 25
    with pytest.raises(AnalysisError, match="no cluster 3: this scan's clusters are 1..2"):
        label_region(labels, 3, what="cluster")
    with pytest.raises(AnalysisError, match="numbered from 1"):
        label_region(labels, 0, what="particle")
    np.testing.assert_array_equal(mask_region(labels > 0), labels > 0)
    with pytest.raises(AnalysisError, match="the mask holds no pixel"):
        mask_region(np.zeros(SHAPE))
