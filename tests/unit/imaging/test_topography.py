"""Curvatures of level sets against analytic surfaces: spheres, saddles and circles."""

import numpy as np
import pytest

from xanes_stream.errors import AnalysisError
from xanes_stream.imaging.mesh_curvature import boundary_vertices, mesh_curvatures
from xanes_stream.imaging.topography import (
    contour_curvatures,
    curvature_histogram,
    isosurface_curvatures,
    spread_levels,
)

N = 64
CENTRE = np.array([31.7, 32.2, 31.9])  # off the voxel grid


def _grid(n=N):
    return np.mgrid[:n, :n, :n].astype(float)


def _distance(centre=CENTRE, n=N):
    z, y, x = _grid(n)
    return np.sqrt((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2)


@pytest.mark.parametrize("radius", [12.0, 20.0])
def test_sphere_has_mean_curvature_one_over_r_and_gaussian_one_over_r_squared(radius):
    surface = isosurface_curvatures(_distance(), radius, smooth=2)
    h, k = surface.mean_curvature * radius, surface.gaussian_curvature * radius**2
    assert np.isfinite(h).all()  # a closed surface has no rim
    assert np.median(h) == pytest.approx(1.0, abs=0.02)
    assert np.median(k) == pytest.approx(1.0, abs=0.03)
    assert np.percentile(np.abs(h - 1), 75) < 0.06  # most vertices, not only the median
    # the area-weighted mean is the integral: H * 4 pi R^2 / (4 pi R^2), and Gauss-Bonnet
    area = surface.area
    assert np.sum(surface.mean_curvature * area) / area.sum() * radius == pytest.approx(1, 0.01)
    assert np.sum(surface.gaussian_curvature * area) == pytest.approx(4 * np.pi, 0.01)
    assert area.sum() == pytest.approx(4 * np.pi * radius**2, 0.01)


def test_spacing_scales_curvature():
    surface = isosurface_curvatures(_distance(), 16.0, spacing=(0.5, 0.5, 0.5), smooth=2)
    assert np.median(surface.mean_curvature) == pytest.approx(1 / 8.0, rel=0.02)


def test_pocket_of_higher_e0_has_negative_mean_curvature():
    surface = isosurface_curvatures(-_distance(), -16.0, smooth=2)
    assert np.median(surface.mean_curvature) * 16 == pytest.approx(-1.0, abs=0.02)
    assert np.median(surface.gaussian_curvature) * 256 == pytest.approx(1.0, abs=0.03)


@pytest.mark.parametrize("a", [15.0, 25.0])
def test_saddle_has_the_analytic_negative_gaussian_curvature(a):
    z, y, x = _grid()
    dx, dy = x - CENTRE[2], y - CENTRE[1]
    field = (z - CENTRE[0]) - (dx**2 - dy**2) / (2 * a)  # the level 0: z = (x^2 - y^2) / 2a
    surface = isosurface_curvatures(field, 0.0, smooth=2)
    vx, vy = surface.vertices[:, 2] - CENTRE[2], surface.vertices[:, 1] - CENTRE[1]
    truth = -1 / a**2 / (1 + (vx**2 + vy**2) / a**2) ** 2  # K of the graph z = f(x, y)
    near = np.hypot(vx, vy) < 8
    assert near.sum() > 100
    ratio = surface.gaussian_curvature[near] / truth[near]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.03)
    assert np.all(surface.gaussian_curvature[near] < 0)
    # a minimal surface at the centre: H = 0 (compared with the principal curvatures 1/a)
    assert abs(np.median(surface.mean_curvature[near])) * a < 0.02


def test_masked_voxels_draw_no_surface_and_the_rim_has_no_curvature():
    x = _grid()[2]
    mask = x < 40
    surface = isosurface_curvatures(_distance(), 20.0, mask=mask, smooth=2)
    assert surface.vertices[:, 2].max() <= 39  # stops one voxel inside the mask, no wall
    rim = boundary_vertices(surface.faces, len(surface.vertices))
    assert rim.any()
    assert np.isnan(surface.mean_curvature[rim]).all()
    inside = ~rim
    assert np.nanmedian(surface.mean_curvature[inside]) * 20 == pytest.approx(1.0, abs=0.02)
    # on the low side too, and with the unknown voxels' E0 on the level itself
    low = isosurface_curvatures(np.where(x >= 20, _distance(), 20.0), 20.0, mask=x >= 20)
    assert low.vertices[:, 2].min() >= 20
    assert np.nanmedian(low.mean_curvature) * 20 == pytest.approx(1.0, abs=0.05)
    # NaN voxels are the same as masked ones
    with_nan = np.where(mask, _distance(), np.nan)
    again = isosurface_curvatures(with_nan, 20.0, smooth=2)
    np.testing.assert_array_equal(again.faces, surface.faces)


def test_a_level_not_crossed_gives_an_empty_surface():
    surface = isosurface_curvatures(_distance(), 500.0)
    assert surface.vertices.shape == (0, 3) and surface.mean_curvature.size == 0
    assert isosurface_curvatures(np.full((4, 4, 4), np.nan), 1.0).faces.shape == (0, 3)


def test_bad_input_is_an_analysis_error():
    with pytest.raises(AnalysisError, match="3-D"):
        isosurface_curvatures(np.zeros((4, 4)), 1.0)
    with pytest.raises(AnalysisError, match="spacing"):
        isosurface_curvatures(_distance(n=8), 2.0, spacing=(1, 0, 1))
    with pytest.raises(AnalysisError, match="faces"):
        mesh_curvatures(np.zeros((3, 3)), np.array([[0, 1, 5]]))


@pytest.mark.parametrize("radius", [8.0, 20.0])
def test_circle_has_signed_curvature_one_over_r(radius):
    yy, xx = np.mgrid[:N, :N].astype(float)
    image = np.hypot(yy - CENTRE[1], xx - CENTRE[2])
    (points, curvature), *rest = contour_curvatures(image, radius)
    assert not rest and np.isfinite(curvature).all()
    assert np.median(curvature) * radius == pytest.approx(1.0, abs=0.02)  # smoothing: +1/2(s/R)^2
    assert np.abs(curvature * radius - 1).max() < 0.05
    assert np.hypot(*(points - CENTRE[1:]).T) == pytest.approx(radius, abs=0.1)
    (_, pocket), *_ = contour_curvatures(-image, -radius, pixel_size=2.0)
    assert np.median(pocket) * radius * 2 == pytest.approx(-1.0, abs=0.02)


def test_open_level_line_has_no_curvature_at_its_ends():
    yy, xx = np.mgrid[:N, :N].astype(float)
    image = np.hypot(yy - CENTRE[1], xx - CENTRE[2])
    lines = contour_curvatures(np.where(xx < 40, image, np.nan), 20.0)
    assert len(lines) == 1
    points, curvature = lines[0]
    assert points[:, 1].max() <= 40
    assert np.isnan(curvature[[0, -1]]).all()
    assert np.nanmedian(curvature) * 20 == pytest.approx(1.0, abs=0.01)


def test_histogram_and_probabilities():
    values = np.array([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0, np.nan])
    counts, edges, p_pos, p_neg = curvature_histogram(values, 4, span=2.0)
    np.testing.assert_allclose(edges, [-2, -1, 0, 1, 2])
    np.testing.assert_array_equal(counts, [1, 1, 2, 2])  # 3.0 in the last bin
    assert (p_pos, p_neg) == (pytest.approx(3 / 6), pytest.approx(2 / 6))
    weights = np.array([1, 1, 1, 1, 1, 5, 1.0])
    *_, p_pos, p_neg = curvature_histogram(values, 4, weights=weights, neutral=0.75)
    assert (p_pos, p_neg) == (pytest.approx(6 / 10), pytest.approx(2 / 10))
    counts, *_, p_pos, _ = curvature_histogram(np.array([np.nan]), 3)
    assert counts.sum() == 0 and np.isnan(p_pos)
    with pytest.raises(AnalysisError):
        curvature_histogram(values, np.array([1.0, 0.0]))


def test_spread_levels_span_the_masked_percentiles():
    values = np.arange(101.0).reshape(1, 101)
    mask = values < 51
    assert spread_levels(values, mask, 3, (0, 100)) == [0.0, 25.0, 50.0]
    assert spread_levels(values, None, 1, (10, 90)) == [50.0]
    with pytest.raises(AnalysisError, match="no pixel"):
        spread_levels(values, np.zeros_like(mask), 3)
