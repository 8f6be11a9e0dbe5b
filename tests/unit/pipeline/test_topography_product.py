"""The topography product on a volume whose reaction front is a sphere: a ball of NiO (Ni2+)
that turns into LiNiO2 (Ni3+) across a spherical shell, so E0 rises through the shell; the E0
isosurface in the shell is a sphere of the front's radius and its curvature is 1/R."""

import numpy as np
import pytest
from helpers.front_ball import BALL, CENTRE, FRONT, WIDTH, front_volume

from xanes_stream.io.maps_file import read_maps, write_maps
from xanes_stream.pipeline.products.registry import analysis
from xanes_stream.pipeline.products.topography import TopographySettings, run
from xanes_stream.pipeline.scan import VOLUME_PRODUCTS_NOTE, analyze_scan
from xanes_stream.pipeline.volume import analyze_volume


@pytest.fixture(scope="module")
def front():
    od, energies, refs, r, ball = front_volume()
    # the ball is mostly oxidized rim, whose E0 is a plateau (noise only): the levels spread
    # over the percentiles of E0 that the front's shell holds
    topography = {"enabled": True, "n_levels": 3, "percentiles": (8.0, 18.0)}
    settings = {"products": {"topography": topography}}
    maps = analyze_volume(od, energies, refs, mode="absorbance", settings=settings, progress=0)
    return maps, r, ball


def _middle_level(maps, r):
    """The E0 halfway between the reduced core's and the oxidized rim's (fitted) E0."""
    core = np.nanmedian(maps.edge_energy[(r < FRONT - 4 * WIDTH) & maps.mask])
    rim = np.nanmedian(maps.edge_energy[(r > FRONT + 4 * WIDTH) & (r < BALL - 2) & maps.mask])
    assert rim - core > 1.0  # the front is there to be found
    return float((core + rim) / 2)


def test_topography_runs_through_analyze_volume_and_is_in_products(front):
    maps, _, _ = front
    product = maps.products["topography"]
    assert "error" not in product.metadata
    assert product.metadata["dimensions"] == 3 and len(product.metadata["levels"]) == 3
    levels = product.tables["topography/levels"]
    assert len(levels["level"]) == 3
    assert (levels["n_points"] > 0).all()
    histogram = product.tables["topography/histogram"]
    assert len(histogram["count"]) == 3 * 41
    vertices, faces = product.tables["topography/vertices"], product.tables["topography/faces"]
    assert len(vertices["z"]) == levels["n_points"].sum()
    corners = np.stack([faces[c] for c in "abc"])  # each face's corners: of its own level
    assert (vertices["level"][corners] == faces["level"]).all()
    # the levels in the shell: nested spheres of growing radius
    centre = np.stack([vertices[a] for a in "zyx"], axis=1) - CENTRE
    radii = [np.median(np.linalg.norm(centre[vertices["level"] == i], axis=1)) for i in range(3)]
    assert radii[0] < radii[1] < radii[2]
    assert FRONT - 3 * WIDTH < radii[0] and radii[2] < FRONT + 3 * WIDTH
    assert (levels["p_positive"] > 0.9).all()  # a ball of lower E0: convex everywhere


def test_the_spherical_front_has_curvature_one_over_its_radius(front):
    maps, r, _ = front
    level = _middle_level(maps, r)
    settings = TopographySettings(enabled=True, levels=(level,))
    product = run(None, maps, settings, [])
    vertices = product.tables["topography/vertices"]
    radius = np.linalg.norm(np.stack([vertices[a] for a in "zyx"], axis=1) - CENTRE, axis=1)
    assert np.median(radius) == pytest.approx(FRONT, abs=1.0)  # the front's sphere
    h = vertices["mean_curvature"] * np.median(radius)
    k = vertices["gaussian_curvature"] * np.median(radius) ** 2
    # the front is 1.2 voxels wide and its fitted E0 noisy, so the surface is rougher than an
    # analytic sphere's (test_topography.py: 2%): H within 5%; K, a product of two noisy
    # principal curvatures whose spread skews its median low, within 15%
    assert np.nanmedian(h) == pytest.approx(1.0, abs=0.05)
    assert np.nanmedian(k) == pytest.approx(1.0, abs=0.15)
    row = product.tables["topography/levels"]
    assert row["mean_curvature"][0] * np.median(radius) == pytest.approx(1.0, abs=0.05)
    assert row["size"][0] == pytest.approx(4 * np.pi * np.median(radius) ** 2, rel=0.05)
    assert row["p_positive"][0] > 0.95 and row["p_negative"][0] < 0.05
    assert row["p_saddle"][0] < 0.1
    # the voxel size scales the curvature; the histogram counts every vertex with a curvature
    coarse = run(None, maps, settings.model_copy(update={"voxel_size": 0.03}), [])
    ratio = coarse.tables["topography/levels"]["mean_curvature"][0] / row["mean_curvature"][0]
    assert ratio == pytest.approx(1 / 0.03)
    counts = product.tables["topography/histogram"]["count"]
    assert counts.sum() == np.isfinite(vertices["mean_curvature"]).sum()


def test_a_slice_through_the_front_has_level_lines_of_curvature_one_over_r(front):
    maps, r, _ = front
    level = _middle_level(maps, r)
    middle = maps.middle_slice()  # z = 18, 0.4 voxels from the centre: a circle of ~FRONT
    product = run(None, middle, TopographySettings(enabled=True, levels=(level,)), [])
    assert product.metadata["dimensions"] == 2
    lines = product.tables["topography/lines"]
    radius = np.hypot(lines["y"] - CENTRE[1], lines["x"] - CENTRE[2])
    assert np.median(radius) == pytest.approx(FRONT, abs=1.0)
    curvature = lines["curvature"] * np.median(radius)
    assert np.nanmedian(curvature) == pytest.approx(1.0, abs=0.05)
    row = product.tables["topography/levels"]
    assert row["size"][0] == pytest.approx(2 * np.pi * np.median(radius), rel=0.05)
    assert row["p_positive"][0] > 0.95
    assert "p_saddle" not in row


def test_the_product_survives_the_maps_file(front, tmp_path):
    maps, _, _ = front
    back = read_maps(write_maps(maps, tmp_path / "maps.h5"))
    mine, theirs = maps.products["topography"], back.products["topography"]
    for key, table in mine.tables.items():
        for column, values in table.items():
            np.testing.assert_array_equal(theirs.tables[key][column], values)
    assert theirs.metadata["levels"] == pytest.approx(mine.metadata["levels"])


def test_off_by_default_and_volumes_with_it_off_have_no_products():
    assert analysis("topography").volumes and not TopographySettings().enabled
    od, energies, refs, _, _ = front_volume()
    small = od[:, 14:18]
    plain = analyze_volume(small, energies, refs, mode="absorbance", progress=0)
    assert plain.products == {}
    # a 2-D-only product asked for a volume still leaves the note; topography alone does not
    maps = analyze_scan(
        small,
        energies,
        refs,
        mode="absorbance",
        settings={"products": {"topography": {"enabled": True}, "fronts": {"enabled": True}}},
    )
    assert "topography" in maps.products and VOLUME_PRODUCTS_NOTE in maps.metadata["notes"]
    np.testing.assert_array_equal(maps.edge_energy, plain.edge_energy)


def test_bad_levels_are_a_clear_error_in_the_product(front):
    maps, _, _ = front
    with pytest.raises(Exception, match="finite"):
        run(None, maps, TopographySettings(enabled=True, levels=(float("nan"),)), [])


def test_a_2d_scan_gets_its_topography_through_analyze_scan():
    from xanes_stream.sim.phantom import make_phantom

    p = make_phantom((64, 64), n_particles=3, drift=0, seed=4)
    settings = {"products": {"topography": {"enabled": True, "n_levels": 2}}}
    maps = analyze_scan(
        p.frames, p.energies, p.references, dark=p.dark, flat=p.flat, settings=settings
    )
    product = maps.products["topography"]
    assert "error" not in product.metadata and product.metadata["dimensions"] == 2
    levels = product.tables["topography/levels"]
    lines = product.tables["topography/lines"]
    assert (levels["n_points"] > 0).all() and len(lines["y"]) == levels["n_points"].sum()
    inside = maps.mask[np.round(lines["y"]).astype(int), np.round(lines["x"]).astype(int)]
    assert inside.mean() > 0.95  # lines are drawn in the quality mask only
