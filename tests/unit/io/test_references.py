"""Reading reference spectra and putting them on a scan's energies."""

import numpy as np
import pytest

from xanes_stream.errors import ReferenceError
from xanes_stream.io.references import bundled_reference, read_reference
from xanes_stream.spectra.references import reference_matrix


def test_two_column_kev_file_detected_and_normalized(tmp_path):
    ref = bundled_reference("NiO")
    assert ref.normalized
    assert ref.energy[0] == pytest.approx(8200.0)  # keV in the file -> eV


def test_xdi_columns_and_raw_detection():
    cu = bundled_reference("Cu")  # columns: energy i0 itrans mutrans
    assert not cu.normalized
    assert cu.metadata["column"] == "mutrans"
    assert cu.mu[0] == pytest.approx(-1.3070486)


def test_unsorted_duplicated_text_file(tmp_path):
    path = tmp_path / "ref.txt"
    energy = np.linspace(8.2, 8.6, 50)
    mu = np.clip((energy - 8.33) * 40, 0, 1)
    rows = np.column_stack([energy, mu])[::-1]
    np.savetxt(path, np.vstack([rows, rows[:3]]), header="energy norm")
    ref = read_reference(path, "step")
    assert np.all(np.diff(ref.energy) > 0) and ref.energy.size == 50
    assert ref.normalized


def test_raw_reference_normalized_on_own_range():
    matrix = reference_matrix([bundled_reference("Ni")], np.linspace(8250, 8450, 60), (8250, 8450))
    assert abs(matrix[:5, 0].mean()) < 0.02  # pre-edge at 0
    assert 0.8 < matrix[-10:, 0].mean() < 1.2  # post-edge near 1


def test_reference_not_covering_fit_range_is_clear():
    with pytest.raises(ReferenceError, match="covers 8200.0-9000.0 eV but the fit needs"):
        reference_matrix([bundled_reference("NiO")], np.linspace(8100, 8450, 60), (8100, 8450))


def test_missing_file_and_garbage(tmp_path):
    with pytest.raises(ReferenceError, match="cannot read"):
        read_reference(tmp_path / "nope.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("hello world\n1 2\n")
    with pytest.raises(ReferenceError, match="not a numeric table"):
        read_reference(bad)


def test_duplicate_names_rejected():
    ref = bundled_reference("NiO")
    with pytest.raises(ReferenceError, match="unique"):
        reference_matrix([ref, ref], np.linspace(8250, 8450, 60), (8250, 8450))


def _soft_edge(path, header: str | None) -> None:
    """A sulfur L-edge-like spectrum at 160-190 eV: eV or keV cannot be told from the values."""
    energy = np.linspace(160.0, 190.0, 61)
    mu = np.clip((energy - 165.0) / 2, 0, 1)
    np.savetxt(path, np.column_stack([energy, mu]), header=header or "", comments="# ")


@pytest.mark.parametrize(
    ("header", "factor"),
    [
        ("XDI/1.0\nColumn.1: energy eV\nColumn.2: norm\n-------\nenergy norm", 1.0),
        ("energy(eV) norm", 1.0),
        ("E_keV norm", 1000.0),
    ],
)
def test_the_unit_a_header_states_is_used(tmp_path, header, factor):
    path = tmp_path / "s_l.txt"
    _soft_edge(path, header)
    ref = read_reference(path, "S")
    assert ref.energy[0] == pytest.approx(160.0 * factor)


def test_an_ambiguous_unit_is_an_error_that_says_how_to_give_it(tmp_path):
    path = tmp_path / "s_l.txt"
    _soft_edge(path, "energy norm")
    with pytest.raises(ReferenceError, match="reference-units eV"):
        read_reference(path, "S")
    assert read_reference(path, "S", units="eV").energy[0] == pytest.approx(160.0)
    assert read_reference(path, "S", units="keV").energy[0] == pytest.approx(160_000.0)
    # a unit given wins over the header's
    stated = tmp_path / "stated.txt"
    _soft_edge(stated, "energy(keV) norm")
    assert read_reference(stated, "S", units="eV").energy[0] == pytest.approx(160.0)
