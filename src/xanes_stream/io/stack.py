"""The energy stack a stack file holds (:func:`xanes_stream.io.stacks.read_stack`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from xanes_stream.spectra.energies import Units


@dataclass
class Stack:
    """An energy stack read from a file, with what was done to it."""

    frames: np.ndarray
    energies: np.ndarray
    dark: np.ndarray | None = None
    flat: np.ndarray | None = None
    source: str = ""
    notes: list[str] = field(default_factory=list)
    #: Incident intensity per energy (raw-count STXM stacks), or None.
    i0: np.ndarray | None = None
    #: The unit of ``energies`` as the file (or the caller) states it; "auto" when unknown.
    energy_units: Units = "auto"
    pixel_size_um: float | None = None
    dwell_ms: float | None = None
