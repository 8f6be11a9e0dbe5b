"""NeXus NXstxm stacks (``.nxs``/``.hdf5``/``.h5``): an NXentry whose ``definition`` is NXstxm.

The entry's NXdata group (the first that holds ``data`` and ``energy``; ``counter0`` at most
microscopes) holds ``data`` (counts) with ``energy``, ``sample_y`` and ``sample_x``, ordered as
its ``axes`` attribute says (NXstxm stacks: ``[energy, sample_y, sample_x]``), and
``count_time``. The entry's NXmonitor ``control`` (or ``instrument/control``) ``data`` is the
incident intensity: one value per energy becomes the I0, one per pixel and energy a flat field.
Energies are in the unit of the ``energy`` dataset's ``units`` attribute, eV when it has none
(NXstxm writes eV).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from xanes_stream.errors import StackFileError
from xanes_stream.io.stack import Stack
from xanes_stream.io.stxm_i0 import stack_i0

_UNITS = {"ev": 1.0, "kev": 1000.0}
_AXES = ("energy", "sample_y", "sample_x")


def nxstxm_entry(f: h5py.File) -> str | None:
    """The name of the first NXentry of an open file whose definition is NXstxm, or None."""
    for name, item in f.items():
        if isinstance(item, h5py.Group) and "definition" in item:
            value = item["definition"][()]
            value = value.ravel()[0] if isinstance(value, np.ndarray) else value
            value = value.decode() if isinstance(value, bytes) else str(value)
            if value.strip() == "NXstxm":
                return name
    return None


def is_nxstxm(path: str | Path) -> bool:
    """Whether an HDF5 file holds an NXstxm entry (False for unreadable files)."""
    try:
        with h5py.File(path, "r") as f:
            return nxstxm_entry(f) is not None
    except OSError:
        return False


def read_nxstxm(path: str | Path, *, i0: str | None = "auto") -> Stack:
    """Read the stack of the first NXstxm entry of a NeXus file.

    Parameters
    ----------
    path : str or Path
        The file.
    i0 : str, optional
        ``"auto"``: the entry's ``control`` data, else as
        :func:`~xanes_stream.io.stxm_i0.stack_i0` (``"none"``, ``"bright"``, a region, an
        ``.xsp`` file) choose.

    Returns
    -------
    Stack
        Counts (n_energy, ny, nx), energies in eV, the I0 (or per-pixel flat), the pixel size.
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            entry_name = nxstxm_entry(f)
            if entry_name is None:
                raise StackFileError(f"{path}: no NXentry with definition NXstxm")
            entry = f[entry_name]
            group = _data_group(path, entry)
            group_name = group.name.rsplit("/", 1)[-1]
            frames, energies, x = _data(path, group)
            control = _control(entry)
            dwell = np.asarray(group["count_time"][()]) if "count_time" in group else None
    except OSError as exc:
        raise StackFileError(f"{path}: not a readable HDF5 file: {exc}") from None
    notes = [f"NXstxm entry {entry_name}/{group_name}"]
    flat = i0_values = None
    if (i0 or "auto") == "auto" and control is not None:
        if control.shape == (energies.size,):
            i0_values = control
        elif control.shape == frames.shape:
            flat = control
        else:
            raise StackFileError(
                f"{path}: control data of shape {control.shape} fits neither the "
                f"{energies.size} energies nor the images {frames.shape}"
            )
        notes.append("I0 from the entry's control (NXmonitor) data")
    else:
        i0_values, note = stack_i0(frames, energies, i0, path.parent)
        notes.append(note)
    step = float(np.median(np.abs(np.diff(x)))) if x.size > 1 else None
    return Stack(
        frames,
        energies,
        flat=flat,
        source=str(path),
        notes=notes,
        i0=i0_values,
        energy_units="eV",
        pixel_size_um=step,
        dwell_ms=float(np.median(dwell)) * 1000.0 if dwell is not None and dwell.size else None,
    )


def _data_group(path: Path, entry: h5py.Group) -> h5py.Group:
    for item in entry.values():
        if isinstance(item, h5py.Group) and "data" in item and "energy" in item:
            return item
    raise StackFileError(f"{path}: the NXstxm entry has no data group with data and energy")


def _data(path: Path, group: h5py.Group) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    for key in ("data", *_AXES):
        if key not in group or not isinstance(group[key], h5py.Dataset):
            raise StackFileError(f"{path}: {group.name} has no {key!r} dataset")
    data = group["data"]
    if data.ndim != 3:
        raise StackFileError(
            f"{path}: {group.name}/data has shape {data.shape}, not a stack (energy, y, x)"
        )
    axes = [a.decode() if isinstance(a, bytes) else str(a) for a in _attr_list(group, "axes")]
    axes = axes or list(_AXES)
    if sorted(axes) != sorted(_AXES):
        raise StackFileError(f"{path}: {group.name} axes {axes} are not {list(_AXES)}")
    frames = np.transpose(data[()], [axes.index(a) for a in _AXES]).astype(np.float32)
    energy = group["energy"]
    unit = energy.attrs.get("units", "eV")
    unit = (unit.decode() if isinstance(unit, bytes) else str(unit)).strip().lower()
    if unit not in _UNITS:
        raise StackFileError(f"{path}: energy units {unit!r}, not eV or keV")
    energies = np.asarray(energy[()], dtype=np.float64).ravel() * _UNITS[unit]
    y = np.asarray(group["sample_y"][()], dtype=np.float64).ravel()
    x = np.asarray(group["sample_x"][()], dtype=np.float64).ravel()
    if (energies.size, y.size, x.size) != frames.shape:
        raise StackFileError(
            f"{path}: data of shape {frames.shape} (energy, y, x) but {energies.size} energies, "
            f"{y.size} sample_y, {x.size} sample_x"
        )
    return frames, energies, x


def _attr_list(group: h5py.Group, name: str) -> list:
    value = group.attrs.get(name)
    if value is None:
        return []
    if isinstance(value, (str, bytes)):
        return [v for v in (value.decode() if isinstance(value, bytes) else value).split(":")]
    return list(np.asarray(value).ravel())


def _control(entry: h5py.Group) -> np.ndarray | None:
    for key in ("control/data", "instrument/control/data"):
        if key in entry and isinstance(entry[key], h5py.Dataset):
            return np.asarray(entry[key][()], dtype=np.float64).squeeze()
    return None
