"""The one unit rule for energies: the unit given, or else one told by the values when they can.

Energies carry their unit where it is known: a file that states it (SDF, NXstxm and aXis2000
stacks are in eV; the FXI/PyXAS ``X_eng`` is keV by its layout), a beamline profile's
``energy_units``, or an explicit option (``analyze --energy-units``). Only when none says, the
values decide, and only where they can: a largest value below 20 is keV (hard X-ray edges, 4-20
keV, would be below every soft X-ray edge a microscope measures in eV), one of 200 or more is eV
(no hard X-ray XANES lies at 200 keV). Between the two the values could be either (the Li K edge
at 55 eV, the S L edge at 165 eV, a 25 keV hard X-ray scan): that is an error that says how to
give the unit, never a guess.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from xanes_stream.errors import AnalysisError

#: Energies whose largest value is below this are keV when no unit is given.
KEV_BELOW = 20.0
#: Energies whose largest value is at least this are eV when no unit is given.
EV_FROM = 200.0
#: Kept for callers of the former rule: the eV threshold.
KEV_LIMIT = EV_FROM

Units = Literal["auto", "eV", "keV"]

HOW_TO = (
    "give the unit: --energy-units eV|keV (xanes-stream analyze), energy_units: eV|keV in the "
    "beamline profile, or units= in Python"
)


def in_kev(values: np.ndarray) -> bool:
    """Whether energies with no unit given are keV (their largest finite value below 20).

    Parameters
    ----------
    values : array_like
        Energies, any shape.

    Returns
    -------
    bool
        True below :data:`KEV_BELOW`, False from :data:`EV_FROM` up.

    Raises
    ------
    AnalysisError
        When the largest value lies between the two: eV or keV cannot be told (:data:`HOW_TO`).
    """
    top = float(np.nanmax(np.asarray(values, dtype=np.float64)))
    if top < KEV_BELOW:
        return True
    if top >= EV_FROM:
        return False
    raise AnalysisError(
        f"energies up to {top:g} could be eV (a soft X-ray edge such as Li K at 55 eV) or keV "
        f"(a hard X-ray scan): {HOW_TO}"
    )


def to_ev(values: np.ndarray, units: Units = "auto") -> np.ndarray:
    """Energies in eV, as float64.

    Parameters
    ----------
    values : array_like
        Energies, any shape.
    units : {"auto", "eV", "keV"}
        Their unit; ``"auto"`` lets the values tell it where they can (:func:`in_kev`).

    Returns
    -------
    numpy.ndarray
        The energies in eV (float64, the shape of ``values``).
    """
    values = np.asarray(values, dtype=np.float64)
    if units not in ("auto", "eV", "keV"):
        raise AnalysisError(f"energy units must be 'auto', 'eV' or 'keV', not {units!r}")
    if units == "auto":
        units = "keV" if in_kev(values) else "eV"
    return values * 1000.0 if units == "keV" else values
