"""Few-energy maps through analyze(): a synthetic 3-energy stack made from the bundled NiO and
LiNiO2 spectra with known fractions and thickness (not from the simulator)."""

from importlib import resources

import numpy as np
import pytest

from xanes_stream import analyze, read_reference

#: pre-edge, then E1 and E2 across the white line
ENERGIES = np.array([8290.0, 8344.0, 8351.0])
NY, NX = 60, 80
NO_REGISTRATION = {"registration": {"method": "none"}}


@pytest.fixture(scope="module")
def references():
    folder = resources.files("xanes_stream") / "data" / "references"
    refs = []
    for name, file in (("NiO", "ref_NiO.txt"), ("LiNiO2", "ref_LiNiO2.txt")):
        with resources.as_file(folder / file) as path:
            refs.append(read_reference(path, name))
    assert all(r.normalized for r in refs)  # edge steps of 1: the truth below needs no Larch
    return refs


@pytest.fixture(scope="module")
def truth():
    """A disc, thicker in its upper half, in four stripes of f(NiO) 0.1, 0.4, 0.7, 0.95.

    (Flat regions: the OD noise is estimated from neighbouring pixels.)"""
    y, x = np.mgrid[:NY, :NX]
    inside = np.hypot((y - NY / 2) / (NY / 2.2), (x - NX / 2) / (NX / 2.2)) < 1
    thickness = np.where(inside, np.where(y < NY / 2, 1.0, 0.6), 0.0)
    stripes = np.array([0.1, 0.4, 0.7, 0.95])[np.minimum(x // (NX // 4), 3)]
    fraction = np.where(inside, stripes, 0.0)
    return inside, thickness, fraction


def _od(references, truth, background=0.3):
    """OD = thickness x (f mu_NiO + (1 - f) mu_LiNiO2) + a non-resonant background."""
    _, thickness, fraction = truth
    nio, linio2 = (np.interp(ENERGIES, r.energy, r.mu) for r in references)
    mix = fraction[None] * nio[:, None, None] + (1 - fraction[None]) * linio2[:, None, None]
    return thickness[None] * mix + background


def test_noise_free_stack_gives_the_fractions(references, truth):
    inside, thickness, fraction = truth
    od = _od(references, truth)
    maps = analyze(od, ENERGIES, references, mode="absorbance", settings=NO_REGISTRATION)
    assert maps.metadata["method"] == "two_energy"
    assert maps.reference_names == ["NiO", "LiNiO2"]
    assert maps.products["two_energy"].metadata["pre_edge"] == [8290.0]
    # the references are ~0.002 (not 0) at the pre-edge: that is the only bias
    core = inside & (thickness > 0.3)
    np.testing.assert_allclose(maps.fraction("NiO")[core], fraction[core], atol=0.01)
    np.testing.assert_allclose(maps.fraction("LiNiO2")[core], 1 - fraction[core], atol=0.01)
    np.testing.assert_allclose(maps.thickness[core], thickness[core], rtol=0.01)
    assert np.abs(maps.thickness[~inside]).max() < 0.01  # the background is subtracted
    np.testing.assert_array_equal(maps.mask[core], True)
    assert not maps.mask[~inside].any()
    assert np.isnan(maps.r_factor).all() and np.isnan(maps.edge_energy).all()
    # A-rich (1) / mixed (2) / B-rich (3) at the paper's X = 30 %
    phases = {0.95: 1, 0.7: 2, 0.4: 2, 0.1: 3}
    for f, phase in phases.items():
        assert (maps.clusters[core & (fraction == f)] == phase).all(), f
    np.testing.assert_array_equal(maps.energies, ENERGIES)


def test_stated_error_matches_added_noise(references, truth):
    inside, thickness, fraction = truth
    sigma = 0.004
    rng = np.random.default_rng(8)
    od = _od(references, truth) + rng.normal(0, sigma, size=(ENERGIES.size, NY, NX))
    maps = analyze(od, ENERGIES, references, mode="absorbance", settings=NO_REGISTRATION)
    product = maps.products["two_energy"]
    np.testing.assert_allclose(product.metadata["od_noise"], sigma, rtol=0.15)
    core = inside & (thickness > 0.5)
    error = product.images["two_energy/fraction_error"][core]
    z = (maps.fraction("NiO")[core] - fraction[core]) / error
    assert 0.5 < np.median(np.abs(z)) < 0.9  # a unit normal's is 0.67
    assert np.mean(np.abs(z) < 3) > 0.98


def test_references_given_in_the_other_order_swap_the_maps(references, truth):
    inside, thickness, fraction = truth
    od = _od(references, truth)
    maps = analyze(od, ENERGIES, references[::-1], mode="absorbance", settings=NO_REGISTRATION)
    core = inside & (thickness > 0.3)
    assert maps.reference_names == ["LiNiO2", "NiO"]
    np.testing.assert_allclose(maps.fraction("NiO")[core], fraction[core], atol=0.01)
