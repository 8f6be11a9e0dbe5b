"""fit_energy_shift and foil_energy_offset against spectra moved by a known offset."""

import numpy as np
import pytest

from xanes_stream.io.references import bundled_reference
from xanes_stream.sim.phantom import ni_edge_energies
from xanes_stream.spectra.calibration import (
    fit_energy_shift,
    foil_energy_offset,
    shifted_references,
)
from xanes_stream.spectra.references import unit_step

NAMES = ("NiO", "LiNiO2", "Ni")
TRUE_FRACTIONS = np.array([0.5, 0.3, 0.2])


@pytest.fixture(scope="module")
def refs():
    return [unit_step(bundled_reference(n)) for n in NAMES]


def _mix(refs, noise=0.003, seed=0):
    """A noisy normalized mix of the references on a TXM scan's energies."""
    energy = ni_edge_energies()
    basis = shifted_references(energy, [r.energy for r in refs], [r.mu for r in refs], [0.0])
    rng = np.random.default_rng(seed)
    return energy, basis @ TRUE_FRACTIONS + rng.normal(0, noise, energy.size)


@pytest.mark.parametrize("mode", ["data", "references"])
def test_references_measured_2ev_high_are_moved_back(refs, mode):
    energy, spectrum = _mix(refs)
    # the references' energy scale reads 2 eV high: they must be used at E_ref - 2
    found = fit_energy_shift(
        energy, spectrum, [r.energy + 2.0 for r in refs], [r.mu for r in refs], mode, 5.0
    )
    assert found.shifts.shape == ((1,) if mode == "data" else (3,))
    np.testing.assert_allclose(found.shifts, -2.0, atol=0.2)
    np.testing.assert_allclose(found.fractions, TRUE_FRACTIONS, atol=0.03)
    assert not found.at_bound.any()


def test_shift_beyond_the_bound_is_flagged(refs):
    energy, spectrum = _mix(refs)
    found = fit_energy_shift(
        energy, spectrum, [r.energy + 7.0 for r in refs], [r.mu for r in refs], "data", 5.0
    )
    assert found.at_bound.all()
    assert abs(found.shifts[0]) == pytest.approx(5.0, abs=0.05)


def test_a_reference_the_spectrum_lacks_takes_the_others_shift(refs):
    energy = ni_edge_energies()
    basis = shifted_references(energy, [r.energy for r in refs], [r.mu for r in refs], [0.0])
    spectrum = basis @ np.array([0.6, 0.4, 0.0])
    found = fit_energy_shift(
        energy, spectrum, [r.energy + 1.5 for r in refs], [r.mu for r in refs], "references", 5.0
    )
    assert found.determined.tolist() == [True, True, False]
    np.testing.assert_allclose(found.shifts, -1.5, atol=0.2)


@pytest.mark.parametrize("offset", [1.5, -0.7])
def test_foil_edge_read_off_gives_the_correction(offset):
    """A simulated foil: an edge of 1 eV half width whose inflection is at 8333 eV exactly,
    read in transmission with Poisson noise on a TXM scan's 1 eV steps."""
    known = 8333.0
    read = ni_edge_energies()  # what the monochromator says
    true = read - offset  # it reads ``offset`` eV high
    mu = 0.8 + 1.2 * (0.5 + np.arctan(true - known) / np.pi) - 2e-5 * (true - known)
    rng = np.random.default_rng(3)
    i1 = rng.poisson(2e5, read.size).astype(float)
    transmission = rng.poisson(i1 * np.exp(-mu)) / i1
    correction, measured = foil_energy_offset(read, transmission, known, kind="transmission")
    assert correction == pytest.approx(-offset, abs=0.2)
    assert measured == pytest.approx(known + offset, abs=0.2)


def test_measured_ni_foil_edge_on_half_ev_steps():
    foil = bundled_reference("Ni")  # a measured Ni foil (absorption)
    fine = np.arange(8250.0, 8450.0, 0.05)
    _, known = foil_energy_offset(fine, np.interp(fine, foil.energy, foil.mu), 0.0)
    read = ni_edge_energies(0.5)
    correction, _ = foil_energy_offset(read, np.interp(read - 1.5, foil.energy, foil.mu), known)
    # the shouldered metal edge, itself measured on 0.5 eV steps: the documented 0.3 eV
    assert correction == pytest.approx(-1.5, abs=0.3)


def test_foil_needs_five_energies():
    with pytest.raises(ValueError, match="at least 5"):
        foil_energy_offset(np.arange(4.0), np.arange(4.0), 2.0)
