"""region_spectrum on a phantom of pure-phase particles: the fractions of a rectangle, a
cluster and the mask against the truth's thickness-weighted fractions."""

import numpy as np
import pytest
from helpers.phantoms import kinds_phantom

from xanes_stream import analyze
from xanes_stream.errors import AnalysisError
from xanes_stream.pipeline.regions import Region, region_spectrum, select_region

NAMES = ("NiO", "LiNiO2")
TOLERANCE = 0.05  # fraction: photon noise over tens of pixels, and the references' interpolation


@pytest.fixture(scope="module")
def scan():
    p, kind = kinds_phantom(NAMES, shape=(64, 64), n_particles=5, seed=7)
    settings = {"mask": {"n_clusters": 2}, "registration": {"method": "none"}}
    maps = analyze(p.frames, p.energies, p.references, dark=p.dark, flat=p.flat, settings=settings)
    od = -np.log(p.transmission)
    return p, kind, maps, od


def fit(scan, region, described=None):
    p, _, maps, od = scan
    return region_spectrum(
        od,
        p.energies,
        region,
        p.references,
        maps.metadata["normalization"],
        energies_used=maps.energies,
        settings=maps.metadata["settings"],
        described=described,
    )


def truth_fractions(p, region):
    """The truth's amounts of each phase in the region: fractions weighted by thickness."""
    weights = p.thickness[region]
    return (p.fractions[:, region] * weights).sum(axis=1) / weights.sum()


def test_rectangle_inside_a_pure_particle(scan):
    p, kind, maps, _ = scan
    for label in np.unique(p.labels[p.labels > 0])[:3]:
        y, x = np.unravel_index(np.argmax(p.thickness * (p.labels == label)), p.thickness.shape)
        region = select_region(Region("rect", bounds=(y - 2, y + 3, x - 2, x + 3)), maps.mask.shape)
        got = fit(scan, region)
        assert got.n_pixels == 25
        np.testing.assert_allclose(got.fit.coefficients, truth_fractions(p, region), atol=TOLERANCE)
        assert got.fit.coefficients[kind[y, x]] > 0.9  # a pure phase
        parts = got.fit.components.sum(axis=0)
        np.testing.assert_allclose(parts, got.fit.fit, atol=1e-9)
        assert got.fit.r_factor < 1e-2


def test_clusters_and_mask_fit_to_the_truth(scan):
    p, _, maps, _ = scan
    shape = maps.mask.shape
    for label in (1, 2):
        region = select_region(Region("cluster", label=label), shape, clusters=maps.clusters)
        got = fit(scan, region, Region("cluster", label=label))
        np.testing.assert_allclose(got.fit.coefficients, truth_fractions(p, region), atol=TOLERANCE)
        assert got.as_dict()["region"] == f"cluster {label}"
    region = select_region(Region("mask"), shape, mask=maps.mask)
    got = fit(scan, region)
    assert got.n_pixels == int(maps.mask.sum())
    np.testing.assert_allclose(got.fit.coefficients, truth_fractions(p, region), atol=TOLERANCE)
    # the mean absorption is on the energies analyze used, sorted
    assert got.energies.size == maps.energies.size and np.all(np.diff(got.energies) > 0)
    assert got.absorption.shape == got.energies.shape


def test_polygon_region_is_fitted_like_its_rectangle(scan):
    _, _, maps, _ = scan
    shape = maps.mask.shape
    box = select_region(Region("rect", bounds=(10, 30, 12, 40)), shape)
    polygon = select_region(
        Region("polygon", points=((9.5, 11.5), (9.5, 39.5), (29.5, 39.5), (29.5, 11.5))), shape
    )
    np.testing.assert_array_equal(box, polygon)
    np.testing.assert_allclose(fit(scan, box).fit.coefficients, fit(scan, polygon).fit.coefficients)


def test_bad_regions_raise(scan):
    _, _, maps, _ = scan
    shape = maps.mask.shape
    with pytest.raises(AnalysisError, match="inside the 64 x 64 image"):
        select_region(Region("rect", bounds=(0, 70, 0, 4)), shape)
    with pytest.raises(AnalysisError, match="no cluster 9"):
        select_region(Region("cluster", label=9), shape, clusters=maps.clusters)
    with pytest.raises(AnalysisError, match="no particle map"):
        select_region(Region("particle", label=1), shape)
    with pytest.raises(AnalysisError, match="region is"):
        fit(scan, np.ones((3, 3), bool))
    p, _, _, od = scan
    holey = od.copy()
    holey[:, :4, :4] = np.nan
    with pytest.raises(AnalysisError, match="finite value"):
        region_spectrum(
            holey,
            p.energies,
            select_region(Region("rect", bounds=(0, 4, 0, 4)), shape),
            p.references,
            maps.metadata["normalization"],
        )
