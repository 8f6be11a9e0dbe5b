"""One energy scan's frames as they arrive: corrected, registered, stacked.

The accumulator knows nothing of 0MQ or Tiled: it takes frames with their energies and turns
them into an aligned optical-density stack, so that at the stop document only the fit remains.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from xanes_stream.documents.codec import DocumentError
from xanes_stream.imaging.correct import correct
from xanes_stream.imaging.registration import FrameRegistrar
from xanes_stream.pipeline.settings import AnalysisSettings

log = logging.getLogger(__name__)


@dataclass
class ScanAccumulator:
    """Frames of one scan: dark and flat first (if any), then primary frames in order.

    Primary frames that arrive before the flat are held raw and processed when it comes (or at
    :meth:`finish`). ``mode`` is transmission (``-ln`` after flat-field and I0), fluorescence
    (divided by I0) or absorbance (as is): :func:`xanes_stream.imaging.correct.correct` says
    what dark, flat and I0 mean in each. A frame may be a volume (nz, ny, nx) of 3D XANES:
    volumes are stacked as they come, not registered (align them when reconstructing).
    """

    settings: AnalysisSettings
    mode: str = "transmission"
    needs_flat: bool = True
    label: str = ""
    expected: int | None = None  # frames announced: the stack is allocated once for them
    max_bytes: int | None = None  # what the stack and the frames held may take, at most
    _dark: list = field(default_factory=lambda: [None, 0])  # sum (float64), count
    _flat: list = field(default_factory=lambda: [None, 0])
    _held: list = field(default_factory=list)
    _held_bytes: int = 0
    _stack: np.ndarray | None = None  # corrected frames, in place: no copy at the stop
    _count: int = 0
    _energies: list = field(default_factory=list)
    _shifts: list = field(default_factory=list)
    _registrar: FrameRegistrar | None = None
    _shape: tuple | None = None
    _dark_mean: np.ndarray | None = None
    _flat_mean: np.ndarray | None = None

    def __post_init__(self) -> None:
        self._registrar = FrameRegistrar(**self.settings.registration.model_dump())

    @property
    def received(self) -> int:
        return self._count + len(self._held)

    @property
    def nbytes(self) -> int:
        """What this scan's frames take in memory now (the stack, frames held, dark, flat)."""
        sums = sum(s.nbytes for s, _ in (self._dark, self._flat) if s is not None)
        return (0 if self._stack is None else self._stack.nbytes) + self._held_bytes + sums

    def release(self) -> None:
        """Drop every frame (a failed or evicted scan): its memory is given back."""
        self._stack, self._held, self._held_bytes = None, [], 0
        self._dark, self._flat = [None, 0], [None, 0]
        self._dark_mean = self._flat_mean = None
        self._registrar = None

    def _budget(self, more: int, what: str) -> None:
        """Refuse ``more`` bytes beyond what is held if they exceed :attr:`max_bytes`."""
        if self.max_bytes is not None and self.nbytes + more > self.max_bytes:
            raise DocumentError(
                f"{what} would take the scan's frames to {(self.nbytes + more) / 2**20:.0f} "
                f"MiB, more than the {self.max_bytes / 2**20:.0f} MiB allowed for one scan"
            )

    def _mean(self, kept: list, frame: np.ndarray, what: str) -> np.ndarray:
        """Add ``frame`` to the running sum ``kept`` ([sum, count]); the mean so far."""
        if kept[0] is None:
            self._budget(frame.size * 8, f"a {what} frame of {frame.shape}")
            kept[0] = np.zeros(frame.shape, dtype=np.float64)
        kept[0] += frame
        kept[1] += 1
        return (kept[0] / kept[1]).astype(np.float32)

    def add_dark(self, frame: np.ndarray) -> None:
        self._dark_mean = self._mean(self._dark, self._checked(frame), "dark")

    def add_flat(self, frame: np.ndarray) -> None:
        self._flat_mean = self._mean(self._flat, self._checked(frame), "flat")
        held, self._held, self._held_bytes = self._held, [], 0
        for energy, raw, i0 in held:
            self._process(energy, raw, i0)

    def add_frame(self, energy: float, frame: np.ndarray, i0: float | None = None) -> None:
        """A primary frame at ``energy`` (eV)."""
        frame = self._checked(frame)
        if not np.isfinite(energy):
            raise DocumentError(f"frame energy is {energy}")
        if self.needs_flat and not self._flat[1]:
            self._budget(frame.nbytes, f"holding frame {self.received + 1} until the flat")
            self._held.append((energy, frame, i0))
            self._held_bytes += frame.nbytes
            return
        self._process(energy, frame, i0)

    def _checked(self, frame) -> np.ndarray:
        frame = np.asarray(frame)
        if frame.ndim == 3 and frame.shape[0] == 1:
            frame = frame[0]
        if frame.ndim not in (2, 3) or frame.dtype.kind not in "uif":
            raise DocumentError(
                f"a frame must be a numeric image or volume, got {frame.dtype} {frame.shape}"
            )
        if self._shape is None:
            self._shape = frame.shape
        elif frame.shape != self._shape:
            raise DocumentError(f"frame of shape {frame.shape} in a scan of {self._shape}")
        return frame

    def _slot(self) -> np.ndarray:
        """The stack's next frame, growing the stack (by half) if more frames come than
        announced."""
        frame_bytes = 4 * int(np.prod(self._shape))
        if self._stack is None:
            capacity = self.expected if self.expected and self.expected > 0 else 64
            if self.max_bytes is not None:  # unannounced: no more than the budget holds
                capacity = max(1, min(capacity, self.max_bytes // frame_bytes))
            self._budget(capacity * frame_bytes, f"a stack of {capacity} frames of {self._shape}")
            self._stack = np.empty((capacity, *self._shape), dtype=np.float32)
        elif self._count == len(self._stack):
            size = self._count + self._count // 2 + 1
            self._budget(size * frame_bytes, f"frame {self._count + 1} of {self._shape}")
            grown = np.empty((size, *self._shape), np.float32)
            grown[: self._count] = self._stack
            self._stack = grown
        self._count += 1
        return self._stack[self._count - 1]

    def _process(self, energy: float, frame: np.ndarray, i0: float | None) -> None:
        image = correct(
            frame, self.mode, dark=self._dark_mean, flat=self._flat_mean, i0=i0, out=self._slot()
        )
        finite = np.isfinite(image)
        n_finite = np.count_nonzero(finite)
        if n_finite <= 0.5 * image.size:
            log.warning(
                "%s: frame at %.2f eV is mostly non-finite; the fit will drop it",
                self.label,
                energy,
            )
        # registration sees bad pixels as the frame's median, the stack keeps them as NaN
        if n_finite == image.size or image.ndim == 3:
            to_register = image
        else:
            to_register = np.where(finite, image, np.nanmedian(image) if n_finite else 0.0)
        self._energies.append(float(energy))
        self._shifts.append(np.zeros(2))
        if image.ndim == 3:  # a volume
            return
        for ready in self._registrar.add(to_register):
            if np.any(ready.shift != 0):
                self._stack[ready.index] = _shift_keep_nan(self._stack[ready.index], ready)
            self._shifts[ready.index] = ready.shift

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The aligned optical-density stack, its energies (eV) and the shifts applied."""
        held, self._held, self._held_bytes = self._held, [], 0
        for energy, raw, i0 in held:  # no flat ever came: frames are used as corrected
            self._process(energy, raw, i0)
        if not self._count:
            raise DocumentError("the scan has no frames")
        stack = self._stack[: self._count]
        return stack, np.array(self._energies), np.array(self._shifts)


def _shift_keep_nan(frame: np.ndarray, ready) -> np.ndarray:
    from xanes_stream.imaging.shift import shift_frame

    if np.array_equal(ready.aligned.shape, frame.shape) and np.isfinite(frame).all():
        return ready.aligned
    return shift_frame(frame, ready.shift)
