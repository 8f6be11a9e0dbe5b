"""The reference library: a folder of spectra, and shifted or broadened variants."""

from importlib import resources

import numpy as np
import pytest

from xanes_stream.errors import ReferenceError
from xanes_stream.io.references import bundled_reference, load_library
from xanes_stream.spectra.library import library_matrix, variant
from xanes_stream.spectra.normalize import find_e0
from xanes_stream.spectra.references import unit_step


def test_load_bundled_folder():
    with resources.as_file(resources.files("xanes_stream") / "data" / "references") as folder:
        library = load_library(folder)
    assert [r.name for r in library] == ["LiNiO2", "NiO", "cu_metal_rt", "ni_metal_rt"]


def test_load_errors(tmp_path):
    with pytest.raises(ReferenceError, match="no spectra"):
        load_library(tmp_path)
    with pytest.raises(ReferenceError, match="not a folder"):
        load_library(tmp_path / "missing")


def test_variants_move_and_smooth_the_edge():
    nio = bundled_reference("NiO")
    e0 = find_e0(nio.energy, unit_step(nio).mu)
    shifted = variant(nio, "NiO+2", shift=2.0)
    assert find_e0(shifted.energy, shifted.mu) == pytest.approx(e0 + 2.0, abs=0.3)
    broad = variant(nio, "NiO~2", broaden=2.0)
    assert broad.mu.max() < unit_step(nio).mu.max()  # the white line is lower
    assert np.abs(np.diff(broad.mu)).max() < np.abs(np.diff(unit_step(nio).mu)).max()


def test_library_matrix_uses_common_coverage():
    cu = bundled_reference("Cu")
    ni = bundled_reference("Ni")
    energies = np.arange(8000.0, 9700.0, 10.0)
    matrix, used = library_matrix([cu, ni], energies)
    assert energies[used].min() >= cu.energy_range[0] - 0.5
    assert matrix.shape == (used.sum(), 2)
    with pytest.raises(ReferenceError, match="need 5"):
        library_matrix([cu, ni], np.arange(8000.0, 8700.0, 10.0))
