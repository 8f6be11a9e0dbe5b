"""The one unit rule for energies (spectra/energies.py)."""

import numpy as np
import pytest

from xanes_stream.errors import AnalysisError
from xanes_stream.spectra.energies import in_kev, to_ev


def test_below_20_is_kev():
    np.testing.assert_allclose(to_ev([8.3, 8.35, np.nan]), [8300.0, 8350.0, np.nan])
    assert in_kev([8.3, 19.9]) and not in_kev([8300.0, 8350.0]) and not in_kev([200.0])


@pytest.mark.parametrize("top", [55.0, 165.0, 25.5, 199.9])
def test_ambiguous_values_without_units_are_an_error_with_the_how_to(top):
    energies = np.linspace(top - 5, top, 11)  # Li K, S L, Ag K in keV, ...
    with pytest.raises(AnalysisError, match="--energy-units eV.keV"):
        to_ev(energies)
    np.testing.assert_array_equal(to_ev(energies, "eV"), energies)
    np.testing.assert_allclose(to_ev(energies, "keV"), energies * 1000)


def test_ev_kept_and_explicit_units():
    energies = np.array([8300.0, 8350.0])
    np.testing.assert_array_equal(to_ev(energies), energies)
    np.testing.assert_allclose(to_ev([150.0], "eV"), [150.0])
    np.testing.assert_allclose(to_ev([250.0], "keV"), [250_000.0])
    with pytest.raises(AnalysisError, match="units"):
        to_ev(energies, "J")
