"""One energy scan's frames as they arrive: corrected, registered, stacked.

The accumulator knows nothing of 0MQ or Tiled: it takes frames with their energies and turns
them into an aligned optical-density stack, so that at the stop document only the fit remains.

An event may hold several exposures of one energy (FXI's ``chunk_size``): they are combined
(:func:`~xanes_stream.imaging.exposures.combine_exposures`) and their spread gives each
energy's noise. Flats are either averaged into one (``flats="mean"``) or used per energy
(``flats="per_energy"``: each frame with the flat taken at its energy).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from xanes_stream.documents.codec import DocumentError
from xanes_stream.imaging.correct import correct, flat_field
from xanes_stream.imaging.exposures import combine_exposures
from xanes_stream.imaging.registration import FrameRegistrar
from xanes_stream.imaging.shift import bilinear_noise
from xanes_stream.pipeline.settings import AnalysisSettings

log = logging.getLogger(__name__)

#: Flats and frames within this many eV are of the same energy.
SAME_ENERGY_EV = 0.5
#: The flat's median signal above the dark must exceed this many times the dark's noise.
FLAT_SIGNAL_SIGMAS = 5.0
#: At most this many pixels (a regular grid) judge a flat and measure a frame's noise.
NOISE_SAMPLE_PIXELS = 65_536
#: A frame's noise pools the variance of tiles of this many pixels square of the sample.
NOISE_POOL = 4


@dataclass
class _Pending:
    """A frame (or per-energy flat) waiting for its partner: combined image, noise, I0."""

    energy: float | None
    image: np.ndarray
    se: np.ndarray | None  # standard error at the noise sample's pixels; None: not known
    i0: float | None
    index: int  # arrival order among its kind (the k-th flat goes with the k-th frame)


@dataclass
class _Flat:
    """What correcting with a flat needs, made once per flat: ``flat - dark``, its noise, I0."""

    denominator: np.ndarray
    se: np.ndarray | None
    i0: float | None


@dataclass
class ScanAccumulator:
    """Frames of one scan: dark, flats and primary frames, as they come.

    ``mode`` is transmission (``-ln`` after flat-field and I0), fluorescence (divided by I0)
    or absorbance (as is): :func:`xanes_stream.imaging.correct.correct` says what dark, flat
    and I0 mean in each. A frame may be a volume (nz, ny, nx) of 3D XANES: volumes are stacked
    as they come, not registered (align them when reconstructing).

    ``flats="mean"``: every flat is averaged into one; primary frames that come before any
    flat are held raw until a primary frame comes after the flats (the flat stream is then
    over) or :meth:`finish`, so flats taken at the end all count. ``flats="per_energy"``: each
    primary frame is corrected by the flat of its energy (within :data:`SAME_ENERGY_EV`; a
    flat without an energy goes with the frame of its order), held until that flat comes;
    at :meth:`finish`, frames without a flat of their own are corrected by the mean of all
    flats and counted in :attr:`mean_flat_frames`.

    In transmission the I0 applied is the frame's over its flat's (the mean flat's: the mean
    of the flats' I0s); without either, none. ``combine`` (``mean`` or ``median``) is how the
    exposures of an event given with ``exposures=True`` are combined. :attr:`noise` is each
    stacked frame's optical-density standard error, from the exposures' spread.
    """

    settings: AnalysisSettings
    mode: str = "transmission"
    needs_flat: bool = True
    label: str = ""
    expected: int | None = None  # frames announced: the stack is allocated once for them
    max_bytes: int | None = None  # what the stack and the frames held may take, at most
    combine: str = "mean"  # how an event's exposures are combined: mean or median
    flats: str = "mean"  # mean: one mean flat; per_energy: each frame with its energy's flat
    exposure_counts: dict = field(default_factory=lambda: {"dark": 0, "flat": 0, "primary": 0})
    mean_flat_frames: int = 0  # per_energy: frames corrected by the mean flat, lacking their own
    _dark: list = field(default_factory=lambda: [None, 0])  # sum (float64), count
    _flat: list = field(default_factory=lambda: [None, 0])
    _flat_se2: np.ndarray | None = None  # sum of the flats' squared standard errors (sample)
    _flat_se_known: bool = True  # every flat so far came with its exposures' spread
    _flat_i0s: list = field(default_factory=list)
    _held: list = field(default_factory=list)  # _Pending primary frames
    _waiting_flats: list = field(default_factory=list)  # _Pending per-energy flats
    _held_bytes: int = 0
    _frames_seen: int = 0
    _flats_seen: int = 0
    _stack: np.ndarray | None = None  # corrected frames, in place: no copy at the stop
    _count: int = 0
    _energies: list = field(default_factory=list)
    _shifts: list = field(default_factory=list)
    _noise: list = field(default_factory=list)
    _registrar: FrameRegistrar | None = None
    _shape: tuple | None = None
    _sample: tuple | None = None  # the noise sample: a strided view of a frame's pixels
    _dark_mean: np.ndarray | None = None
    _dark_noise: float | None = None
    _mean_flat: _Flat | None = None  # the mean flat's correction, until a flat or dark comes

    def __post_init__(self) -> None:
        if self.combine not in ("mean", "median"):
            raise DocumentError(f"exposures are combined by mean or median, not {self.combine!r}")
        if self.flats not in ("mean", "per_energy"):
            raise DocumentError(f"flats are 'mean' or 'per_energy', not {self.flats!r}")
        self._registrar = FrameRegistrar(**self.settings.registration.model_dump())

    @property
    def received(self) -> int:
        return self._count + len(self._held)

    @property
    def nbytes(self) -> int:
        """What this scan's frames take in memory now (the stack, frames held, dark, flat)."""
        sums = sum(s.nbytes for s, _ in (self._dark, self._flat) if s is not None)
        return (0 if self._stack is None else self._stack.nbytes) + self._held_bytes + sums

    @property
    def noise(self) -> np.ndarray:
        """(n_frames,) each stacked frame's optical-density standard error, in stack order.

        The median over pixels of the standard error propagated from the exposures' spread
        (frame and flat), lowered as the registration's bilinear shift lowers it; NaN where it
        is not known (one exposure, a volume, a flat without exposures).
        """
        values = np.array(self._noise, dtype=np.float64)
        if values.size:
            values *= bilinear_noise(np.array(self._shifts, dtype=np.float64))[0]
        return values

    def release(self) -> None:
        """Drop every frame (a failed or evicted scan): its memory is given back."""
        self._stack, self._held, self._waiting_flats, self._held_bytes = None, [], [], 0
        self._dark, self._flat, self._flat_se2 = [None, 0], [None, 0], None
        self._dark_mean = self._mean_flat = None
        self._registrar = None

    def _budget(self, more: int, what: str) -> None:
        """Refuse ``more`` bytes beyond what is held if they exceed :attr:`max_bytes`."""
        if self.max_bytes is not None and self.nbytes + more > self.max_bytes:
            raise DocumentError(
                f"{what} would take the scan's frames to {(self.nbytes + more) / 2**20:.0f} "
                f"MiB, more than the {self.max_bytes / 2**20:.0f} MiB allowed for one scan"
            )

    def _add_to_sum(self, kept: list, frame: np.ndarray, what: str) -> None:
        """Add ``frame`` to the running sum ``kept`` ([sum, count])."""
        if kept[0] is None:
            self._budget(frame.size * 8, f"a {what} frame of {frame.shape}")
            kept[0] = np.zeros(frame.shape, dtype=np.float64)
        kept[0] += frame
        kept[1] += 1

    # --- what comes in ----------------------------------------------------------------------
    def add_dark(self, frame: np.ndarray, *, exposures: bool = False) -> None:
        """A dark event's image (``exposures``: axis 0 is its exposures, combined)."""
        image, _, n = self._checked(frame, exposures)
        self.exposure_counts["dark"] += n
        self._add_to_sum(self._dark, image, "dark")
        self._dark_mean = (self._dark[0] / self._dark[1]).astype(np.float32)
        self._dark_noise = self._mean_flat = None

    def add_flat(
        self,
        frame: np.ndarray,
        *,
        energy: float | None = None,
        i0: float | None = None,
        exposures: bool = False,
    ) -> None:
        """A flat (open beam) event's image, taken at ``energy`` (eV; None: not known) with
        the beam ``i0`` (the flat event's I0 reading; None: not read)."""
        image, se, n = self._checked(frame, exposures)
        if energy is not None:
            energy = float(energy)
            if not np.isfinite(energy):
                raise DocumentError(f"flat energy is {energy}")
        if self.mode == "transmission":
            i0 = _checked_i0(i0, energy, "the flat's I0")
        self.exposure_counts["flat"] += n
        self._add_to_sum(self._flat, image, "flat")
        if se is None:
            self._flat_se_known = False
        elif self._flat_se_known:
            self._flat_se2 = se.astype(np.float64) ** 2 + (
                0.0 if self._flat_se2 is None else self._flat_se2
            )
        self._flat_i0s.append(i0)
        self._mean_flat = None
        flat = _Pending(energy, image, se, i0, self._flats_seen)
        self._flats_seen += 1
        if self.flats == "mean":
            return  # held frames wait: more flats may follow (xanes_scan's flats at the end)
        for k, pending in enumerate(self._held):
            if _same(flat, pending):
                del self._held[k]
                self._held_bytes -= pending.image.nbytes
                self._process(pending, self._flat_of(flat))
                return
        self._budget(image.nbytes, f"holding flat {flat.index + 1} until its frame")
        self._waiting_flats.append(flat)
        self._held_bytes += image.nbytes

    def add_frame(
        self, energy: float, frame: np.ndarray, i0: float | None = None, *, exposures: bool = False
    ) -> None:
        """A primary event's image at ``energy`` (eV), with the beam ``i0`` (None: not read)."""
        image, se, n = self._checked(frame, exposures)
        if not np.isfinite(energy):
            raise DocumentError(f"frame energy is {energy}")
        energy = float(energy)
        if self.mode != "absorbance":
            i0 = _checked_i0(i0, energy, "I0")
        self.exposure_counts["primary"] += n
        pending = _Pending(energy, image, se, i0, self._frames_seen)
        self._frames_seen += 1
        if self.flats == "per_energy":
            for k, flat in enumerate(self._waiting_flats):
                if _same(flat, pending):
                    del self._waiting_flats[k]
                    self._held_bytes -= flat.image.nbytes
                    self._process(pending, self._flat_of(flat))
                    return
            if not self.needs_flat:  # no flat of its own is coming: the flats so far
                self._process(pending, self._mean_flat_of(count=True))
                return
        elif not self.needs_flat or self._flat[1]:
            self._release_held(count=False)  # the flats are over: the held frames have theirs
            self._process(pending, self._mean_flat_of())
            return
        self._budget(image.nbytes, f"holding frame {self.received + 1} until the flat")
        self._held.append(pending)
        self._held_bytes += image.nbytes

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The aligned optical-density stack, its energies (eV) and the shifts applied.

        Frames still held are corrected by the mean of all flats (as they are, with no flat
        at all); in ``per_energy`` they are counted in :attr:`mean_flat_frames`.
        """
        self._release_held(count=self.flats == "per_energy")
        self._waiting_flats, self._held_bytes = [], 0
        if not self._count:
            raise DocumentError("the scan has no frames")
        stack = self._stack[: self._count]
        return stack, np.array(self._energies), np.array(self._shifts)

    # --- checks -------------------------------------------------------------------------------
    def _checked(self, frame, exposures: bool) -> tuple[np.ndarray, np.ndarray | None, int]:
        """The event's image (exposures combined), its standard error at the noise sample
        (None: not known) and its number of exposures."""
        frame = np.asarray(frame)
        if frame.ndim not in (2, 3) or frame.dtype.kind not in "uif":
            raise DocumentError(
                f"a frame must be a numeric image or volume, got {frame.dtype} {frame.shape}"
            )
        se, n = None, 1
        if exposures and frame.ndim == 3:
            n = frame.shape[0]
            if n == 0:
                raise DocumentError("an event with no exposures (an image of 0 frames)")
            frame, error = combine_exposures(frame, self.combine)
            if n > 1:
                se = error[self._noise_sample(frame.shape)]
        elif frame.ndim == 3 and frame.shape[0] == 1:
            frame = frame[0]
        if self._shape is None:
            self._shape = frame.shape
        elif frame.shape != self._shape:
            raise DocumentError(f"frame of shape {frame.shape} in a scan of {self._shape}")
        return frame, se, n

    def _noise_sample(self, shape: tuple) -> tuple:
        """A regular grid of at most :data:`NOISE_SAMPLE_PIXELS` of an image's pixels."""
        if self._sample is None:
            step = max(1, int(np.ceil(np.sqrt(np.prod(shape[-2:]) / NOISE_SAMPLE_PIXELS))))
            self._sample = (..., slice(None, None, step), slice(None, None, step))
        return self._sample

    def _flat_of(self, flat: _Pending) -> _Flat:
        """One flat's correction, judged against the dark."""
        denominator = flat_field(flat.image, self._dark_mean)
        where = f" at {flat.energy:.1f} eV" if flat.energy is not None else ""
        self._check_flat(denominator, f"the flat{where}")
        return _Flat(denominator, flat.se, flat.i0)

    def _mean_flat_of(self, count: bool = False) -> _Flat | None:
        """The mean flat's correction (made once per new flat or dark); None: no flat came.
        ``count``: a frame is corrected by it for lack of its own."""
        if not self._flat[1]:
            return None
        if count:
            self.mean_flat_frames += 1
        if self._mean_flat is None:
            total, n = self._flat
            denominator = flat_field((total / n).astype(np.float32), self._dark_mean)
            self._check_flat(denominator, "the mean flat" if n > 1 else "the flat")
            se = None
            if self._flat_se_known and self._flat_se2 is not None:
                se = (np.sqrt(self._flat_se2) / n).astype(np.float32)
            i0s = self._flat_i0s
            i0 = None if any(i is None for i in i0s) else float(np.mean(i0s))
            self._mean_flat = _Flat(denominator, se, i0)
        return self._mean_flat

    def _check_flat(self, denominator: np.ndarray, what: str) -> None:
        """Refuse a flat with no signal above the dark, in words a scientist can act on."""
        sample = denominator[self._noise_sample(denominator.shape)]
        finite = sample[np.isfinite(sample)]
        if not finite.size:
            raise DocumentError(f"{what} has no finite pixels")
        median = float(np.median(finite))
        if self._dark_mean is None:
            if median <= 0:
                raise DocumentError(
                    f"{what} has no signal (median {median:.3g} counts, no dark): was the "
                    "beam off or the shutter closed?"
                )
            return
        noise = self._dark_noise_level()
        threshold = FLAT_SIGNAL_SIGMAS * noise
        if median < -threshold:
            raise DocumentError(
                f"{what} is darker than the dark (median flat - dark {median:.3g} counts): "
                "were the dark and flat streams swapped?"
            )
        if median <= threshold:
            raise DocumentError(
                f"flat frames are identical to dark frames: {what} is {median:.3g} counts "
                f"above the dark, within its noise ({noise:.3g}): was the beam off or the "
                "shutter closed for the flats?"
            )

    def _dark_noise_level(self) -> float:
        """The dark's scatter over pixels (1.4826 MAD), once per dark."""
        if self._dark_noise is None:
            sample = self._dark_mean[self._noise_sample(self._dark_mean.shape)]
            sample = sample[np.isfinite(sample)]
            if not sample.size:
                raise DocumentError("the dark has no finite pixels")
            self._dark_noise = 1.4826 * float(np.median(np.abs(sample - np.median(sample))))
        return self._dark_noise

    # --- correction, registration, stacking --------------------------------------------------
    def _release_held(self, count: bool) -> None:
        """Correct every held frame by the mean flat (or none)."""
        held, self._held = self._held, []
        for pending in held:
            self._held_bytes -= pending.image.nbytes
            self._process(pending, self._mean_flat_of(count=count))

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

    def _i0_of(self, pending: _Pending, flat: _Flat | None) -> float | None:
        """The I0 the correction divides by: in transmission the frame's over its flat's."""
        if self.mode != "transmission" or flat is None:
            return pending.i0
        if pending.i0 is None or flat.i0 is None:
            return None
        return pending.i0 / flat.i0

    def _process(self, pending: _Pending, flat: _Flat | None) -> None:
        energy = pending.energy
        image = correct(
            pending.image,
            self.mode,
            dark=self._dark_mean,
            denominator=None if flat is None else flat.denominator,
            i0=self._i0_of(pending, flat),
            out=self._slot(),
        )
        self._noise.append(self._od_noise(pending, flat, image))
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

    def _od_noise(self, pending: _Pending, flat: _Flat | None, corrected: np.ndarray) -> float:
        """The corrected frame's standard error over the noise sample (the median over small
        tiles, :func:`_pooled_median_sigma`): in transmission ``sigma_mu^2 = se_I^2/(I-D)^2
        + se_F^2/(F-D)^2``, in the other modes that relative error times the value. NaN where
        a standard error is not known."""
        if pending.se is None or corrected.ndim == 3 or (flat is not None and flat.se is None):
            return float("nan")
        sample = self._noise_sample(corrected.shape)
        signal = pending.image[sample].astype(np.float32)
        if self._dark_mean is not None:
            signal = signal - self._dark_mean[sample]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            variance = (pending.se / signal) ** 2
            if flat is not None:
                variance += (flat.se / flat.denominator[sample]) ** 2
            if self.mode != "transmission":
                variance *= corrected[sample] ** 2
        return _pooled_median_sigma(variance)


def _pooled_median_sigma(variance: np.ndarray, block: int = NOISE_POOL) -> float:
    """The median over ``block`` x ``block`` tiles of the square root of their mean variance.

    One pixel's variance from a few exposures scatters widely (a chi-square of n - 1 degrees
    of freedom), and its median is biased low (~8% in sigma for n = 5); the tiles' mean has
    ``block**2`` times the degrees of freedom, and the median over tiles stays robust.
    """
    ny, nx = variance.shape
    by, bx = min(block, ny), min(block, nx)
    tiles = variance[: ny - ny % by, : nx - nx % bx].reshape(ny // by, by, nx // bx, bx)
    with np.errstate(invalid="ignore", over="ignore"):
        sigma = np.sqrt(tiles.mean(axis=(1, 3), dtype=np.float64))
    sigma = sigma[np.isfinite(sigma)]
    return float(np.median(sigma)) if sigma.size else float("nan")


def _same(flat: _Pending, frame: _Pending) -> bool:
    """Whether ``flat`` is ``frame``'s own: the same energy, else (no energy) the same order."""
    if flat.energy is None:
        return flat.index == frame.index
    return abs(flat.energy - frame.energy) < SAME_ENERGY_EV


def _checked_i0(i0, energy: float | None, what: str) -> float | None:
    """``i0`` as a float if it is a usable beam reading; None stays None."""
    if i0 is None:
        return None
    value = float(i0)
    if not np.isfinite(value) or value <= 0:
        where = f" at {energy:.1f} eV" if energy is not None else ""
        raise DocumentError(f"{what} is {value:g}{where}: was the beam off?")
    return value


def _shift_keep_nan(frame: np.ndarray, ready) -> np.ndarray:
    from xanes_stream.imaging.shift import shift_frame

    if np.array_equal(ready.aligned.shape, frame.shape) and np.isfinite(frame).all():
        return ready.aligned
    return shift_frame(frame, ready.shift)
