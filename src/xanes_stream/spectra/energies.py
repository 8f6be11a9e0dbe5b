"""The one unit rule for energies: values below 200 are keV, everything else eV.

No absorption edge a hard X-ray XANES scan measures lies below 200 eV, and none above 200 keV,
so the largest value of a set of energies tells its unit.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from xanes_stream.errors import AnalysisError

#: Energies whose largest value is below this are in keV.
KEV_LIMIT = 200.0

Units = Literal["auto", "eV", "keV"]


def in_kev(values: np.ndarray) -> bool:
    """Whether energies are in keV by the unit rule (their largest finite value below 200).

    Parameters
    ----------
    values : array_like
        Energies, any shape.

    Returns
    -------
    bool
        True when the largest value is below :data:`KEV_LIMIT`.
    """
    return bool(np.nanmax(np.asarray(values, dtype=np.float64)) < KEV_LIMIT)


def to_ev(values: np.ndarray, units: Units = "auto") -> np.ndarray:
    """Energies in eV, as float64.

    Parameters
    ----------
    values : array_like
        Energies, any shape.
    units : {"auto", "eV", "keV"}
        Their unit; ``"auto"`` applies the unit rule (:func:`in_kev`).

    Returns
    -------
    numpy.ndarray
        The energies in eV (float64, the shape of ``values``).
    """
    values = np.asarray(values, dtype=np.float64)
    if units == "auto":
        units = "keV" if in_kev(values) else "eV"
    if units == "keV":
        return values * 1000.0
    if units == "eV":
        return values
    raise AnalysisError(f"energy units must be 'auto', 'eV' or 'keV', not {units!r}")
