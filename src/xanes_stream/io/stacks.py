"""Energy stacks from files: HDF5 in the FXI/PyXAS layout, a multi-page TIFF plus energies, or
the soft X-ray microscopes' stacks (SDF ``.hdr``/``.xim``, NeXus NXstxm, aXis2000 ``.ncb``: see
:mod:`~xanes_stream.io.stxm_sdf`, :mod:`~xanes_stream.io.stxm_nexus`,
:mod:`~xanes_stream.io.stxm_ncb`).

Every stack says the unit of its energies (``Stack.energy_units``) where its file does: the
FXI/PyXAS layout writes ``X_eng`` in keV (that is the layout, whatever the numbers), the STXM
formats write eV; energies given from outside (``energies=``, a TIFF's) have the unit given with
them, or ``"auto"`` (:func:`~xanes_stream.spectra.energies.to_ev` decides where it can).

FXI/PyXAS HDF5: ``X_eng`` (energies, keV) and ``img_xanes`` (n_energy, ny, nx), or
(n_energy, nz, ny, nx) for 3D XANES (reconstructed volumes; see :func:`image_ndim`). When
``img_bkg`` (flat fields) and ``img_dark`` are in the file too, ``flat_field="auto"`` applies
them only if ``img_xanes`` holds raw counts (median above 2); flat-corrected transmission lies
near 0-1 and is used as it is. ``"apply"`` and ``"skip"`` force either choice. Dark and flat
stacks are averaged over their frames unless there is one flat per energy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import h5py
import numpy as np

from xanes_stream.errors import StackFileError
from xanes_stream.io.stack import Stack
from xanes_stream.spectra.energies import Units

FlatField = Literal["auto", "apply", "skip"]

#: Suffixes of HDF5 stack files (FXI/PyXAS layout, or NXstxm when the file says so).
H5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs")


def read_stack(
    path: str | Path,
    *,
    energies: np.ndarray | None = None,
    flat_field: FlatField = "auto",
    image_key: str = "img_xanes",
    energy_key: str = "X_eng",
    energy_units: Units | None = None,
    i0: str | None = "auto",
) -> Stack:
    """Read a stack from an HDF5 (``.h5``/``.hdf5``/``.nxs``: FXI/PyXAS or NXstxm), TIFF
    (``.tif``/``.tiff``), SDF (``.hdr``) or aXis2000 (``.ncb``) file.

    Parameters
    ----------
    path : str or Path
        The stack file.
    energies : numpy.ndarray, optional
        Energies to use instead of the file's (a TIFF needs them).
    flat_field, image_key, energy_key
        For FXI/PyXAS HDF5 files (see the module's text).
    energy_units : {"eV", "keV", "auto"}, optional
        The unit of the energies, overriding what the file states (a note says so); without
        it the file's unit, or ``"auto"`` for ``energies`` given without one.
    i0 : str, optional
        The I0 of a raw-count STXM stack (:func:`~xanes_stream.io.stxm_i0.stack_i0`).

    Returns
    -------
    Stack
    """
    path = Path(path)
    if not path.is_file():
        raise StackFileError(f"stack file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        stack = _read_tiff(path, energies)
    elif suffix == ".hdr":
        from xanes_stream.io.stxm_sdf import read_sdf

        _no_energies_given(path, energies)
        stack = read_sdf(path, i0=i0)
    elif suffix == ".ncb":
        from xanes_stream.io.stxm_ncb import read_ncb

        _no_energies_given(path, energies)
        stack = read_ncb(path, i0=i0)
    elif suffix in H5_SUFFIXES:
        from xanes_stream.io.stxm_nexus import is_nxstxm, read_nxstxm

        if is_nxstxm(path):
            _no_energies_given(path, energies)
            stack = read_nxstxm(path, i0=i0)
        else:
            stack = _read_h5(path, energies, flat_field, image_key, energy_key)
    else:
        raise StackFileError(
            f"{path}: unknown stack format {suffix!r}; use .h5/.nxs (FXI or NXstxm), .tif, "
            ".hdr (SDF) or .ncb (aXis2000)"
        )
    if energy_units is not None and energy_units != stack.energy_units:
        if stack.energy_units != "auto":
            stack.notes.append(
                f"energies taken as {energy_units} as asked (the file states {stack.energy_units})"
            )
        stack.energy_units = energy_units
    if stack.frames.ndim != 3:
        raise StackFileError(
            f"{path}: images must be (n_energy, ny, nx), got shape {stack.frames.shape}"
        )
    if stack.energies.size != stack.frames.shape[0]:
        raise StackFileError(
            f"{path}: {stack.energies.size} energies for {stack.frames.shape[0]} images"
        )
    return stack


def _no_energies_given(path: Path, energies) -> None:
    if energies is not None:
        raise StackFileError(f"{path}: a STXM stack states its own energies; do not give them")


def image_ndim(path: str | Path, image_key: str = "img_xanes") -> int | None:
    """Dimensions of the images of an HDF5 stack file (4 for volumes), without reading them;
    None for other files or a file without ``image_key``."""
    path = Path(path)
    if path.suffix.lower() not in H5_SUFFIXES or not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as f:
            return f[image_key].ndim if image_key in f else None
    except OSError:
        return None


def _read_tiff(path: Path, energies: np.ndarray | None) -> Stack:
    import tifffile

    if energies is None:
        raise StackFileError(f"{path}: a TIFF stack needs its energies (--energies)")
    try:
        frames = tifffile.imread(path)
    except Exception as exc:  # tifffile raises many types for a bad file
        raise StackFileError(f"{path}: not a readable TIFF: {exc}") from None
    energies = np.asarray(energies, dtype=float).ravel()
    return Stack(frames, energies, source=str(path), energy_units="auto")


def _read_h5(path: Path, energies, flat_field: FlatField, image_key, energy_key) -> Stack:
    notes = []
    units: Units = "auto"  # energies given from outside carry no unit
    try:
        with h5py.File(path, "r") as f:
            if image_key not in f:
                raise StackFileError(f"{path}: no dataset {image_key!r} (has {sorted(f.keys())})")
            frames = f[image_key][()]
            if energies is None:
                if energy_key not in f:
                    raise StackFileError(f"{path}: no energies {energy_key!r}; give --energies")
                energies = f[energy_key][()]
                # the FXI/PyXAS layout writes X_eng in keV (whatever the numbers)
                units = "keV" if energy_key == "X_eng" else "auto"
            bkg = f["img_bkg"][()] if "img_bkg" in f else None
            dark = f["img_dark"][()] if "img_dark" in f else None
    except OSError as exc:
        raise StackFileError(f"{path}: not a readable HDF5 file: {exc}") from None
    energies = np.asarray(energies, dtype=float).ravel()
    apply = False
    if bkg is not None and flat_field != "skip":
        raw_counts = float(np.nanmedian(frames[:, ::8, ::8])) > 2.0
        apply = flat_field == "apply" or raw_counts
        notes.append(
            "img_bkg/img_dark applied as (I - dark) / (bkg - dark)"
            if apply
            else "img_bkg present but img_xanes is already flat-corrected; used as is"
        )
    if not apply:
        return Stack(frames, energies, source=str(path), notes=notes, energy_units=units)
    flat = _average_unless_per_energy(bkg, frames.shape[0])
    dark = None if dark is None else _average_unless_per_energy(dark, frames.shape[0])
    return Stack(
        frames, energies, dark=dark, flat=flat, source=str(path), notes=notes, energy_units=units
    )


def _average_unless_per_energy(images: np.ndarray, n_energy: int) -> np.ndarray:
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3 and images.shape[0] != n_energy:
        return images.mean(axis=0)
    return images
