"""The one unit rule for energies (spectra/energies.py)."""

import numpy as np
import pytest

from xanes_stream.errors import AnalysisError
from xanes_stream.spectra.energies import in_kev, to_ev


def test_below_200_is_kev():
    np.testing.assert_allclose(to_ev([8.3, 8.35, np.nan]), [8300.0, 8350.0, np.nan])
    assert in_kev([8.3, 199.9]) and not in_kev([8300.0, 8350.0])


def test_ev_kept_and_explicit_units():
    energies = np.array([8300.0, 8350.0])
    np.testing.assert_array_equal(to_ev(energies), energies)
    np.testing.assert_allclose(to_ev([150.0], "eV"), [150.0])
    np.testing.assert_allclose(to_ev([250.0], "keV"), [250_000.0])
    with pytest.raises(AnalysisError, match="units"):
        to_ev(energies, "J")
