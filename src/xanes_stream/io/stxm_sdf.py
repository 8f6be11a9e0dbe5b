"""SDF stacks of the ALS, CLS, SLS and Soleil STXMs: a ``.hdr`` header and ``_aNNN.xim`` images.

The header (:mod:`xanes_stream.io.sdf_header`) holds ``ScanDefinition``: its ``StackAxis``
lists the energies (``Points``, with their ``Unit``, eV), its ``Regions`` the image axes
(``PAxis`` x and ``QAxis`` y, ``Points`` in um) and ``Dwell`` the dwell (ms). Each energy's
image of the first channel is a text file ``<name>_a000.xim``, ``_a001.xim``, ...: one line of
counts per image row (QAxis), one column per PAxis point. The counts are raw: the I0 comes from
:func:`~xanes_stream.io.stxm_i0.stack_i0`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xanes_stream.errors import StackFileError
from xanes_stream.io.sdf_header import read_sdf_header
from xanes_stream.io.stack import Stack
from xanes_stream.io.stxm_i0 import stack_i0

#: Units of the energy axis an SDF header may state, with their factor to eV.
_ENERGY_UNITS = {"ev": 1.0, "kev": 1000.0}


def read_sdf(path: str | Path, *, i0: str | None = "auto") -> Stack:
    """Read an SDF image stack (``.hdr`` and its ``.xim`` images).

    Parameters
    ----------
    path : str or Path
        The ``.hdr`` file; the images lie next to it.
    i0 : str, optional
        Where the I0 comes from (:func:`~xanes_stream.io.stxm_i0.stack_i0`): ``"auto"``,
        ``"none"``, ``"bright"``, ``"y0:y1,x0:x1"`` or an ``.xsp`` file.

    Returns
    -------
    Stack
        Raw counts (n_energy, ny, nx) as float32, energies in eV (``energy_units="eV"``), the
        I0 per energy, the pixel size (um) and dwell (ms).
    """
    path = Path(path)
    header = read_sdf_header(path)
    scan = header.get("ScanDefinition")
    if not isinstance(scan, dict):
        raise StackFileError(f"{path}: the header has no ScanDefinition group")
    energies = _energies(path, scan)
    x, y = _image_axes(path, scan)
    frames = np.empty((energies.size, y.size, x.size), dtype=np.float32)
    for k in range(energies.size):
        frames[k] = read_xim(_xim_name(path, k), (y.size, x.size))
    notes = [f"SDF stack: {energies.size} energies {energies[0]:g}-{energies[-1]:g} eV"]
    i0_values, note = stack_i0(frames, energies, i0, path.parent)
    notes.append(note)
    dwell = scan.get("Dwell")
    return Stack(
        frames,
        energies,
        source=str(path),
        notes=notes,
        i0=i0_values,
        energy_units="eV",
        pixel_size_um=_step(x),
        dwell_ms=float(dwell) if isinstance(dwell, float) else None,
    )


def read_xim(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """One ``.xim`` image: ``shape[0]`` lines of ``shape[1]`` numbers."""
    try:
        text = path.read_text(encoding="latin-1")
    except FileNotFoundError:
        raise StackFileError(f"{path}: missing; the header lists an image for it") from None
    except OSError as exc:
        raise StackFileError(f"{path}: cannot read it: {exc.strerror}") from None
    rows = [line for line in text.splitlines() if line.strip()]
    widths = {len(line.split()) for line in rows}
    if len(rows) != shape[0] or widths != {shape[1]}:
        raise StackFileError(
            f"{path}: {len(rows)} lines of {sorted(widths)} values where the header says "
            f"{shape[0]} lines of {shape[1]} (a truncated or foreign image)"
        )
    try:
        image = np.array(text.split(), dtype=np.float32).reshape(shape)
    except ValueError:
        raise StackFileError(f"{path}: holds text that is not a number") from None
    if not np.all(np.isfinite(image)):
        raise StackFileError(f"{path}: holds non-finite counts")
    return image


def _energies(path: Path, scan: dict) -> np.ndarray:
    axis = scan.get("StackAxis")
    if not isinstance(axis, dict) or not isinstance(axis.get("Points"), list):
        raise StackFileError(f"{path}: no StackAxis with Points: not an image stack")
    unit = str(axis.get("Unit", "")).strip().lower()
    if unit not in _ENERGY_UNITS:
        raise StackFileError(
            f"{path}: the StackAxis unit is {axis.get('Unit')!r}, not eV: not an energy stack"
        )
    energies = _points(path, axis, "StackAxis") * _ENERGY_UNITS[unit]
    if energies.size < 2:
        raise StackFileError(f"{path}: the stack has {energies.size} energy")
    return energies


def _image_axes(path: Path, scan: dict) -> tuple[np.ndarray, np.ndarray]:
    regions = scan.get("Regions")
    if not isinstance(regions, list) or not regions or not isinstance(regions[0], dict):
        raise StackFileError(f"{path}: no Regions with the image axes")
    if len(regions) > 1:
        raise StackFileError(f"{path}: {len(regions)} regions; only single-region stacks are read")
    region = regions[0]
    axes = []
    for key in ("PAxis", "QAxis"):
        axis = region.get(key)
        if not isinstance(axis, dict):
            raise StackFileError(f"{path}: the region has no {key}")
        if str(axis.get("Unit", "um")).strip().lower() not in ("um", "µm", "microns"):
            raise StackFileError(f"{path}: {key} is in {axis.get('Unit')!r}, not um")
        axes.append(_points(path, axis, key))
    return axes[0], axes[1]


def _points(path: Path, axis: dict, key: str) -> np.ndarray:
    points = axis.get("Points")
    if not isinstance(points, list) or not all(isinstance(p, float) for p in points):
        raise StackFileError(f"{path}: {key} Points must be a list of numbers")
    return np.asarray(points, dtype=np.float64)


def _step(points: np.ndarray) -> float | None:
    return float(np.median(np.abs(np.diff(points)))) if points.size > 1 else None


def _xim_name(path: Path, k: int) -> Path:
    return path.with_name(f"{path.stem}_a{k:03d}.xim")
