"""The incident intensity (I0) of a STXM stack: a spectrum file, a region of the images, or none.

STXM images are raw detector counts; the optical density is ``-ln(I / I0)`` with I0 the
counts through no sample at the same energy. Microscopes record it as an ``.xsp`` spectrum
(energy and counts per line) taken through a hole or off the sample, or the scientist takes it
from an empty area of the stack itself. A common scale factor of I0 (another dwell time) moves
every optical density by the same constant, which the pre-edge line of the normalization
removes.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from xanes_stream.errors import StackFileError

#: Share of the pixels, the brightest by their mean counts, that make the "bright" I0.
BRIGHT_SHARE = 0.02

_BOX = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*$")


def read_xsp(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Energies and counts of an ``.xsp`` spectrum file (two or more numbers per line).

    Returns
    -------
    energy, counts : numpy.ndarray
        The first two columns, sorted by energy.
    """
    path = Path(path)
    try:
        lines = [line.split() for line in path.read_text(encoding="latin-1").splitlines()]
    except OSError as exc:
        raise StackFileError(f"I0 spectrum {path}: cannot read it: {exc.strerror}") from None
    rows = [line[:2] for line in lines if line and not line[0].startswith(("#", "%"))]
    try:
        table = np.array(rows, dtype=np.float64)
    except ValueError:
        raise StackFileError(
            f"I0 spectrum {path}: every line must hold an energy and counts (numbers)"
        ) from None
    if table.ndim != 2 or table.shape[0] < 2 or table.shape[1] != 2:
        raise StackFileError(f"I0 spectrum {path}: needs at least two lines of energy and counts")
    if not np.all(np.isfinite(table)) or np.any(table[:, 1] <= 0):
        raise StackFileError(f"I0 spectrum {path}: counts must be finite and positive")
    order = np.argsort(table[:, 0])
    return table[order, 0], table[order, 1]


def i0_on_energies(
    energies: np.ndarray, spectrum_energy: np.ndarray, counts: np.ndarray, source: str
) -> np.ndarray:
    """A spectrum's counts interpolated linearly onto the stack's energies (both eV).

    Raises
    ------
    StackFileError
        When a stack energy lies outside the spectrum by more than half its mean step.
    """
    step = float(np.ptp(spectrum_energy)) / max(spectrum_energy.size - 1, 1)
    lo, hi = spectrum_energy[0] - step / 2, spectrum_energy[-1] + step / 2
    if energies.min() < lo or energies.max() > hi:
        raise StackFileError(
            f"I0 spectrum {source} covers {spectrum_energy[0]:g}-{spectrum_energy[-1]:g} eV, "
            f"the stack {energies.min():g}-{energies.max():g} eV: it cannot give their I0"
        )
    return np.interp(energies, spectrum_energy, counts)


def parse_box(text: str) -> tuple[slice, slice]:
    """``"y0:y1,x0:x1"`` (pixels, end excluded) as two slices."""
    match = _BOX.match(text)
    if match is None:
        raise StackFileError(f"I0 region {text!r}: write it as y0:y1,x0:x1 (pixels)")
    y0, y1, x0, x1 = (int(g) for g in match.groups())
    if y1 <= y0 or x1 <= x0:
        raise StackFileError(f"I0 region {text!r}: each range must end after it starts")
    return slice(y0, y1), slice(x0, x1)


def region_i0(frames: np.ndarray, box: tuple[slice, slice]) -> np.ndarray:
    """Mean counts of a region of every frame, (n_energy,)."""
    ys, xs = box
    n, ny, nx = frames.shape
    if ys.stop > ny or xs.stop > nx:
        raise StackFileError(
            f"I0 region {ys.start}:{ys.stop},{xs.start}:{xs.stop} lies outside the "
            f"{ny} x {nx} images"
        )
    return frames[:, ys, xs].reshape(n, -1).mean(axis=1, dtype=np.float64)


def bright_i0(frames: np.ndarray, share: float = BRIGHT_SHARE) -> np.ndarray:
    """I0 from the brightest pixels: the median counts, at every energy, of the ``share`` of
    pixels with the highest mean counts over the energies (the most transparent, off-sample
    area), (n_energy,)."""
    n = frames.shape[0]
    flat = frames.reshape(n, -1)
    mean = flat.mean(axis=0, dtype=np.float64)
    k = max(round(share * mean.size), 1)
    brightest = np.argpartition(mean, mean.size - k)[-k:]
    return np.median(flat[:, brightest], axis=1).astype(np.float64)


def stack_i0(
    frames: np.ndarray, energies: np.ndarray, choice: str | None, folder: Path
) -> tuple[np.ndarray | None, str]:
    """The I0 of a raw-count stack by ``choice``, and a note of where it came from.

    Parameters
    ----------
    frames : (n_energy, ny, nx) counts.
    energies : (n_energy,) eV.
    choice : str or None
        ``"auto"`` (or None): the one ``*i0*.xsp`` file next to the stack, else ``"bright"``;
        ``"none"``; ``"bright"`` (:func:`bright_i0`); ``"y0:y1,x0:x1"`` (:func:`region_i0`);
        or the path of an ``.xsp`` file (relative paths from the stack's folder).
    folder : Path
        The stack's folder.
    """
    choice = (choice or "auto").strip()
    if choice == "none":
        return None, "no I0: optical density is -ln(counts), offset by ln(I0)"
    if choice == "auto":
        found = sorted(p for p in folder.glob("*.xsp") if "i0" in p.name.lower())
        if len(found) == 1:
            choice = str(found[0])
        else:
            why = "no *i0*.xsp file" if not found else f"{len(found)} *i0*.xsp files"
            i0 = bright_i0(frames)
            return i0, f"I0 from the brightest {BRIGHT_SHARE:.0%} of pixels ({why} next to it)"
    if choice == "bright":
        return bright_i0(frames), f"I0 from the brightest {BRIGHT_SHARE:.0%} of pixels"
    if _BOX.match(choice):
        return region_i0(frames, parse_box(choice)), f"I0 from the mean of region {choice}"
    path = Path(choice)
    path = path if path.is_absolute() else folder / path
    if not path.is_file():
        raise StackFileError(
            f"I0 {choice!r}: no such spectrum file; give an .xsp file, a region y0:y1,x0:x1, "
            "'bright', 'none' or 'auto'"
        )
    energy, counts = read_xsp(path)
    i0 = i0_on_energies(np.asarray(energies, dtype=np.float64), energy, counts, str(path))
    return i0, f"I0 from {path.name}, interpolated onto the stack energies"
