"""A reference library: shifted or broadened variants of a reference, and the library on a
scan's energies (reading a folder of spectra is :func:`xanes_stream.io.references.load_library`)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from xanes_stream.errors import ReferenceError
from xanes_stream.spectra.references import Reference, unit_step


def variant(
    reference: Reference,
    name: str,
    *,
    shift: float = 0.0,
    broaden: float = 0.0,
) -> Reference:
    """The edge-normalized ``reference`` moved by ``shift`` eV and/or convolved with a Gaussian
    of ``broaden`` eV standard deviation (on a 0.1 eV grid), as a new library entry.

    Parameters
    ----------
    reference : Reference
        The entry to vary.
    name : str
        The new entry's name.
    shift : float
        Energy shift (eV).
    broaden : float
        Gaussian standard deviation (eV); 0: none.

    Returns
    -------
    Reference
        Edge-normalized.
    """
    base = unit_step(reference)
    energy, mu = base.energy, base.mu
    if broaden > 0:
        grid = np.arange(energy[0], energy[-1], 0.1)
        smooth = gaussian_filter1d(np.interp(grid, energy, mu), broaden / 0.1, mode="nearest")
        mu = np.interp(energy, grid, smooth)
    metadata = {"variant_of": reference.name, "shift_ev": shift, "broaden_ev": broaden}
    return Reference(name, energy + shift, mu, True, reference.source, metadata)


def library_matrix(library: list[Reference], energies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edge-normalized library spectra as columns (n_used, L) on the energies every entry covers.

    Returns the matrix and a boolean (n,) selecting the energies used; raises
    :class:`ReferenceError` when fewer than 5 energies are covered by all entries.
    """
    energies = np.asarray(energies, dtype=np.float64)
    if not library:
        raise ReferenceError("the reference library is empty")
    names = [r.name for r in library]
    if len(set(names)) != len(names):
        raise ReferenceError(f"library names must be unique, got {names}")
    lo = max(r.energy_range[0] for r in library) - 0.5
    hi = min(r.energy_range[1] for r in library) + 0.5
    used = (energies >= lo) & (energies <= hi)
    if used.sum() < 5:
        raise ReferenceError(
            f"the library's entries all cover only {lo:.1f}-{hi:.1f} eV, which holds "
            f"{int(used.sum())} of the scan's energies; need 5"
        )
    columns = [np.interp(energies[used], *_unit(r)) for r in library]
    return np.stack(columns, axis=1), used


def _unit(reference: Reference) -> tuple[np.ndarray, np.ndarray]:
    normalized = unit_step(reference)
    return normalized.energy, normalized.mu
