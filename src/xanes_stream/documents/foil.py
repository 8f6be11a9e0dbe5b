"""A reference foil's readings in a run's primary events, and the energy correction they give.

The profile's ``foil`` names the data key (one reading per event) and the foil's known edge
energy; at the stop the scan's energies get ``known - measured E0``
(:func:`~xanes_stream.spectra.calibration.foil_energy_offset`). A run whose foil readings
cannot give an E0 (missing, too few, not finite) is analysed on its own energy scale, with a
note saying why.
"""

from __future__ import annotations

import math

import numpy as np

from xanes_stream.profiles import Foil
from xanes_stream.spectra.calibration import foil_energy_offset


class FoilReadings:
    """The (energy, reading) pairs of one run's primary events."""

    def __init__(self, foil: Foil) -> None:
        self.foil = foil
        self.energies: list[float] = []
        self.values: list[float] = []

    def add(self, energy: float, data: dict) -> None:
        """Record the event's foil reading (ignored when the event has none usable)."""
        value = data.get(self.foil.key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            if math.isfinite(value) and math.isfinite(energy):
                self.energies.append(float(energy))
                self.values.append(float(value))

    def offset(self) -> tuple[float | None, str]:
        """The correction (eV) to add to the scan's energies, or None, and a note.

        Returns
        -------
        (float or None, str)
        """
        key, known = self.foil.key, self.foil.edge_energy
        try:
            correction, measured = foil_energy_offset(
                np.array(self.energies), np.array(self.values), known, kind=self.foil.signal
            )
        except ValueError as exc:
            return None, f"no foil calibration: the foil readings {key!r} give no edge ({exc})"
        return correction, (
            f"foil {key!r}: edge measured at {measured:.2f} eV, known {known:.2f} eV; "
            f"energies moved by {correction:+.2f} eV"
        )
