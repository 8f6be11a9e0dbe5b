"""A reference library: every spectrum in a folder, and shifted or broadened variants of one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

from xanes_stream.errors import ReferenceError
from xanes_stream.spectra.references import Reference, read_reference, unit_step

#: File endings read as spectra by :func:`load_library`.
SPECTRUM_SUFFIXES = (".xdi", ".txt", ".dat", ".csv", ".nor", ".xmu")
_SKIP = ("readme", "license")


def load_library(folder: str | Path) -> list[Reference]:
    """Every reference spectrum in ``folder`` (XDI or two-column text), sorted by name.

    README and LICENSE files are skipped; a file that cannot be read raises
    :class:`ReferenceError` naming it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ReferenceError(f"reference library {folder} is not a folder")
    paths = sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and p.suffix.lower() in SPECTRUM_SUFFIXES
        and not p.name.lower().startswith(_SKIP)
    )
    if not paths:
        raise ReferenceError(f"reference library {folder} holds no spectra ({SPECTRUM_SUFFIXES})")
    library = [read_reference(p, _name(p)) for p in paths]
    return sorted(library, key=lambda r: r.name)


def _name(path: Path) -> str:
    stem = path.stem
    return stem[4:] if stem.lower().startswith("ref_") else stem


def variant(
    reference: Reference,
    name: str,
    *,
    shift: float = 0.0,
    broaden: float = 0.0,
) -> Reference:
    """The edge-normalized ``reference`` moved by ``shift`` eV and/or convolved with a Gaussian
    of ``broaden`` eV standard deviation (on a 0.1 eV grid), as a new library entry."""
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
