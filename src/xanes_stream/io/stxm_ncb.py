"""aXis2000 ``.ncb`` stacks: binary images with a ``.dat`` text file of their axes.

The ``.dat`` file (as aXis2000 writes it and MANTiS' ``file_ncb`` reads it) holds, one per
line: ``nx ny scale``; ``x_start x_stop`` (um); ``y_start y_stop`` (um); the number of
energies ``n``; ``n`` energies in eV (aXis2000 stacks are eV); optionally ``n`` lines of
``image_name energy dwell``. The ``.ncb`` file is ``n * ny * nx`` little-endian int16 values,
energy slowest and x fastest, holding ``counts * scale``; a negative scale means float32 values
unscaled. A stop before its start means the axis runs backwards: its images are flipped so
that it runs forwards.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xanes_stream.errors import StackFileError
from xanes_stream.io.stack import Stack
from xanes_stream.io.stxm_i0 import stack_i0


def read_ncb(path: str | Path, *, i0: str | None = "auto") -> Stack:
    """Read an aXis2000 ``.ncb`` stack and the ``.dat`` file next to it.

    Parameters
    ----------
    path : str or Path
        The ``.ncb`` file.
    i0 : str, optional
        As :func:`~xanes_stream.io.stxm_i0.stack_i0` chooses; ``"none"`` for a stack aXis2000
        has already turned into optical density.

    Returns
    -------
    Stack
        Images (n_energy, ny, nx) as float32 divided by the scale, energies in eV.
    """
    path = Path(path)
    dat = path.with_suffix(".dat")
    nx, ny, scale, (x0, x1), (y0, y1), energies = _read_dat(dat)
    dtype = np.dtype("<f4") if scale < 0 else np.dtype("<i2")
    expected = energies.size * ny * nx * dtype.itemsize
    size = path.stat().st_size
    if size != expected:
        raise StackFileError(
            f"{path}: {size} bytes where {dat.name} says {energies.size} images of {ny} x {nx} "
            f"{'float32' if scale < 0 else 'int16'} ({expected} bytes): truncated or mismatched"
        )
    frames = np.fromfile(path, dtype=dtype).reshape(energies.size, ny, nx).astype(np.float32)
    if scale > 0 and scale != 1:
        frames /= np.float32(scale)
    if x0 > x1:
        frames = frames[:, :, ::-1]
    if y0 > y1:
        frames = frames[:, ::-1, :]
    frames = np.ascontiguousarray(frames)
    notes = [
        f"aXis2000 ncb stack, values divided by the scale {scale:g}"
        if scale > 0
        else "aXis2000 ncb stack of float32 values"
    ]
    i0_values, note = stack_i0(frames, energies, i0, path.parent)
    notes.append(note)
    step = abs(x1 - x0) / (nx - 1) if nx > 1 else None
    return Stack(
        frames,
        energies,
        source=str(path),
        notes=notes,
        i0=i0_values,
        energy_units="eV",
        pixel_size_um=step,
    )


def _read_dat(dat: Path):
    try:
        lines = [line.split() for line in dat.read_text(encoding="latin-1").splitlines()]
    except FileNotFoundError:
        raise StackFileError(f"{dat}: missing; an .ncb stack needs its .dat file") from None
    except OSError as exc:
        raise StackFileError(f"{dat}: cannot read it: {exc.strerror}") from None
    lines = [line for line in lines if line]
    try:
        nx, ny, scale = int(lines[0][0]), int(lines[0][1]), float(lines[0][2])
        x_range = float(lines[1][0]), float(lines[1][1])
        y_range = float(lines[2][0]), float(lines[2][1])
        n = int(lines[3][0])
        energies = np.array([float(line[0]) for line in lines[4 : 4 + n]], dtype=np.float64)
    except (IndexError, ValueError):
        raise StackFileError(
            f"{dat}: not an aXis2000 .dat file (nx ny scale; x range; y range; n; n energies)"
        ) from None
    if nx < 1 or ny < 1 or n < 2 or energies.size != n or scale == 0:
        raise StackFileError(
            f"{dat}: {nx} x {ny} pixels, {energies.size} of {n} energies, scale {scale:g}: "
            "needs positive sizes, two or more energies and a non-zero scale"
        )
    return nx, ny, scale, x_range, y_range, energies
