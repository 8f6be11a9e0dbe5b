"""analyze with references whose energy scale is 2 eV off, and with a foil's energy offset."""

import numpy as np
import pytest

from xanes_stream.errors import AnalysisError
from xanes_stream.pipeline.analyze import analyze
from xanes_stream.sim.phantom import make_phantom
from xanes_stream.spectra.calibration import foil_energy_offset
from xanes_stream.spectra.references import Reference

OFF = 2.0  # the references' energy scale reads this much high
NO_REGISTRATION = {"registration": {"method": "none"}}


@pytest.fixture(scope="module")
def phantom():
    # three phases from the measured references, Poisson noise
    return make_phantom(
        (48, 48), references=("NiO", "LiNiO2", "Ni"), n_particles=4, drift=0, seed=3
    )


def _moved(refs, by):
    return [Reference(r.name, r.energy + by, r.mu, r.normalized, r.source) for r in refs]


def _run(p, refs, energy_shift="none", energies=None, **kwargs):
    settings = {**NO_REGISTRATION, "fit": {"energy_shift": energy_shift, **kwargs}}
    energies = p.energies if energies is None else energies
    return analyze(p.frames, energies, refs, dark=p.dark, flat=p.flat, settings=settings)


def _median_error(maps, p):
    inside = p.particles & maps.mask
    return float(np.nanmedian(np.abs(maps.fractions[:, inside] - p.fractions[:, inside])))


@pytest.fixture(scope="module")
def unshifted(phantom):
    return _run(phantom, phantom.references)


@pytest.mark.parametrize("mode", ["data", "references"])
def test_references_2ev_off_are_calibrated(phantom, unshifted, mode):
    off = _moved(phantom.references, OFF)
    biased = _run(phantom, off)
    maps = _run(phantom, off, mode)
    shifts = maps.metadata["energy_shifts"]
    names = ["data"] if mode == "data" else [r.name for r in phantom.references]
    assert list(shifts) == names
    np.testing.assert_allclose(list(shifts.values()), -OFF, atol=0.2)
    assert any("energy calibration" in n for n in maps.metadata["notes"])
    # the fractions are those of the fit with the true references, and the bias is gone:
    # median |error| 0.025 unshifted, 0.093 with the 2 eV offset, 0.025-0.026 calibrated
    e_true, e_biased, e_cal = (_median_error(m, phantom) for m in (unshifted, biased, maps))
    assert e_biased > 3 * e_true
    assert e_cal < 1.15 * e_true
    both = maps.mask & unshifted.mask
    diff = np.abs(maps.fractions[:, both] - unshifted.fractions[:, both])
    assert np.median(diff) < 0.01


def test_none_changes_nothing(phantom, unshifted):
    maps = _run(phantom, phantom.references, "none", max_energy_shift=1.0)
    assert "energy_shifts" not in maps.metadata
    for name in ("fractions", "thickness", "r_factor", "edge_energy", "mask", "clusters"):
        np.testing.assert_array_equal(getattr(maps, name), getattr(unshifted, name))


def test_offset_beyond_the_limit_is_an_error(phantom):
    with pytest.raises(AnalysisError, match="max_energy_shift = 1 eV"):
        _run(phantom, _moved(phantom.references, OFF), "data", max_energy_shift=1.0)


def test_foil_offset_puts_the_scan_back_on_the_references_scale(phantom, unshifted):
    """The monochromator reads 1.5 eV high; a foil (an edge at 8333 eV) read in the same run
    gives the correction analyze applies."""
    read = phantom.energies + 1.5
    mu = 0.5 + np.arctan(phantom.energies - 8333.0) / np.pi  # the foil at the true energies
    offset, _ = foil_energy_offset(read, mu, 8333.0)
    maps = analyze(
        phantom.frames,
        read,
        phantom.references,
        dark=phantom.dark,
        flat=phantom.flat,
        settings=NO_REGISTRATION,
        energy_offset=offset,
    )
    assert maps.metadata["energy_shifts"]["foil"] == pytest.approx(-1.5, abs=0.2)
    np.testing.assert_allclose(maps.energies, np.unique(read) + offset)
    both = maps.mask & unshifted.mask
    diff = np.abs(maps.fractions[:, both] - unshifted.fractions[:, both])
    assert np.median(diff) < 0.01


def test_few_energy_scan_takes_the_foil_offset_and_says_energy_shift_is_not_applied():
    energies = np.array([8290.0, 8344.0, 8351.0])
    p = make_phantom((32, 32), energies=energies, n_particles=2, drift=0, seed=4)
    maps = analyze(
        p.frames,
        energies + 0.5,
        p.references,
        dark=p.dark,
        flat=p.flat,
        settings={**NO_REGISTRATION, "fit": {"energy_shift": "data"}},
        energy_offset=-0.5,
    )
    assert maps.metadata["energy_shifts"] == {"foil": -0.5}
    np.testing.assert_allclose(maps.energies, energies)
    assert any("energy_shift needs 5 or more energies" in n for n in maps.metadata["notes"])
