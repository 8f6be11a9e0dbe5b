"""Tomographic XANES files: projections at every energy, in the DXchange layout.

``/exchange/data`` (n_energy, n_angles, nz, nx) projections, flat-corrected transmission unless
its ``signal`` attribute says ``absorbance``; ``/exchange/theta`` (n_angles) rotation angles in
degrees (radians are detected: a span under 2 pi); ``/exchange/energy`` (n_energy) in eV or keV
(``X_eng`` at the root is read too). The same angles serve every energy.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from xanes_stream.errors import StackFileError

DATA, THETA, ENERGY = "exchange/data", "exchange/theta", "exchange/energy"
_SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs")


@dataclass
class Projections:
    """An open projections file: ``data`` an h5py dataset (read one energy at a time)."""

    data: h5py.Dataset
    angles: np.ndarray
    energies: np.ndarray | None
    mode: str
    notes: list[str]


def is_projections_file(path: str | Path) -> bool:
    """True for an HDF5 file with a 4-D ``/exchange/data`` (checked without reading it)."""
    path = Path(path)
    if path.suffix.lower() not in _SUFFIXES or not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            return DATA in f and f[DATA].ndim == 4
    except OSError:
        return False


@contextmanager
def open_projections(path: str | Path) -> Iterator[Projections]:
    """Open a projections file; the dataset is valid inside the ``with`` block.

    Parameters
    ----------
    path : HDF5 file in the layout of the module's docstring.

    Yields
    ------
    Projections
        Angles in degrees; energies as stored (None when the file has none).
    """
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise StackFileError(f"cannot open projections file {path}: {exc}") from None
    with f:
        if DATA not in f or f[DATA].ndim != 4:
            raise StackFileError(f"{path}: no {DATA} of (n_energy, n_angles, nz, nx) projections")
        data = f[DATA]
        if THETA not in f:
            raise StackFileError(f"{path}: no rotation angles {THETA}")
        angles = np.asarray(f[THETA][()], dtype=np.float64).ravel()
        notes = []
        if angles.size and np.ptp(angles) <= 2 * np.pi + 1e-6:
            angles = np.rad2deg(angles)
            notes.append("rotation angles read as radians (they span under 2 pi)")
        if angles.size != data.shape[1]:
            raise StackFileError(
                f"{path}: {angles.size} angles for {data.shape[1]} projections per energy"
            )
        key = ENERGY if ENERGY in f else "X_eng" if "X_eng" in f else None
        energies = None if key is None else np.asarray(f[key][()], dtype=np.float64).ravel()
        signal = data.attrs.get("signal", "transmission")
        mode = signal.decode() if isinstance(signal, bytes) else str(signal)
        if mode not in ("transmission", "absorbance"):
            raise StackFileError(f"{path}: {DATA} signal must be transmission or absorbance")
        yield Projections(data=data, angles=angles, energies=energies, mode=mode, notes=notes)
