"""Frame registration: sub-pixel phase correlation and StackReg, for a stack or one frame at a time.

Convention: the shift of a frame is the (dy, dx) that, applied to the frame, registers it on the
reference (the same sign as scikit-image's ``phase_cross_correlation``).

Phase correlation follows Guizar-Sicairos et al., Opt. Lett. 33, 156 (2008): the integer peak of
the cross-correlation, refined by an upsampled matrix DFT around it. It is written on real FFTs
and caches the reference's spectrum, so registering a new 1024^2 frame costs a few FFT-sized
operations: the live service registers frames as fast as a detector delivers them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.fft as sfft

from xanes_stream.errors import RegistrationError
from xanes_stream.imaging.shift import shift_frame

_WORKERS = 2
METHODS = ("none", "phase_correlation", "stackreg")
TRANSFORMS = ("translation", "rigid", "scaled_rotation", "affine")
Roi = tuple[int, int, int, int]


def _crop(frame: np.ndarray, roi: tuple[int, int, int, int] | None) -> np.ndarray:
    if roi is None:
        return frame
    y0, y1, x0, x1 = roi
    ny, nx = frame.shape
    if not (0 <= y0 < y1 <= ny and 0 <= x0 < x1 <= nx):
        raise RegistrationError(f"registration ROI {roi} is outside the {ny}x{nx} frame")
    return frame[y0:y1, x0:x1]


def _spectrum(image: np.ndarray) -> np.ndarray:
    """Real FFT of a mean-subtracted, edge-tapered image (float32 in, complex64 out)."""
    image = np.asarray(image, dtype=np.float32)
    mean = float(image.mean(dtype=np.float64))
    if np.isfinite(mean):
        centred = image - np.float32(mean)
    else:  # bad pixels: leave them out of the correlation
        finite = np.isfinite(image)
        mean = float(image[finite].mean()) if finite.any() else 0.0
        centred = np.where(finite, image - np.float32(mean), np.float32(0))
    centred *= _taper(image.shape)
    return sfft.rfft2(centred, workers=_WORKERS)


_TAPERS: dict[tuple[int, int], np.ndarray] = {}


def _taper(shape: tuple[int, int]) -> np.ndarray:
    """A Tukey window (10% cosine edges) so frame borders do not dominate the correlation."""
    if shape not in _TAPERS:

        def tukey(n: int) -> np.ndarray:
            w = np.ones(n, dtype=np.float32)
            edge = max(1, n // 10)
            ramp = 0.5 * (1 - np.cos(np.pi * (np.arange(edge) + 0.5) / edge))
            w[:edge] = ramp
            w[n - edge :] = ramp[::-1]
            return w

        _TAPERS[shape] = np.outer(tukey(shape[0]), tukey(shape[1]))
    return _TAPERS[shape]


def _upsampled_correlation(
    product: np.ndarray, shape: tuple[int, int], upsample: float, centre: np.ndarray, size: int
) -> np.ndarray:
    """Cross-correlation on a ``size``^2 grid of step 1/upsample around ``centre`` (pixels).

    ``product`` is the half (rfft) cross-power spectrum; the inverse DFT of a Hermitian spectrum
    is twice the real part of the half sum, less the columns counted once.
    """
    ny, nx = shape
    offsets = centre[:, None] + (np.arange(size) - size // 2)[None, :] / upsample  # (2, size)
    ky = sfft.fftfreq(ny) * ny
    kx = np.arange(product.shape[1])
    row_kernel = np.exp(2j * np.pi * np.outer(offsets[0], ky) / ny).astype(np.complex64)
    col_kernel = np.exp(2j * np.pi * np.outer(kx, offsets[1]) / nx).astype(np.complex64)
    col_kernel[1:] *= 2.0
    if nx % 2 == 0:
        col_kernel[-1] *= 0.5
    return np.real(row_kernel @ (product @ col_kernel))


def _parabola_offset(samples: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Sub-sample offset (dy, dx) of the vertex of a parabola through the maximum ``at`` of
    ``samples`` and its two neighbours on each axis (0 on an edge), clipped to +-0.5."""
    offset = np.zeros(2)
    for axis in range(2):
        index = list(at)
        if not 0 < at[axis] < samples.shape[axis] - 1:
            continue
        index[axis] = at[axis] - 1
        left = samples[tuple(index)]
        index[axis] = at[axis] + 1
        right = samples[tuple(index)]
        centre = samples[tuple(at)]
        curvature = left - 2 * centre + right
        if curvature < 0:
            offset[axis] = np.clip(0.5 * (left - right) / curvature, -0.5, 0.5)
    return offset


def _coarse_peak(product: np.ndarray, shape: tuple[int, int], factor: int) -> np.ndarray:
    """Integer-pixel peak (to within ``factor`` px) from the low frequencies only."""
    ny, nx = shape
    my, mx = max(8, ny // factor), max(8, nx // factor)
    half_y = my // 2
    low = np.concatenate([product[:half_y, : mx // 2 + 1], product[ny - half_y :, : mx // 2 + 1]])
    correlation = sfft.irfft2(low, s=(2 * half_y, mx), workers=_WORKERS)
    peak = np.array(np.unravel_index(np.argmax(correlation), correlation.shape), dtype=np.float64)
    dims = np.array(correlation.shape)
    peak[peak > dims // 2] -= dims[peak > dims // 2]
    return peak * np.array([ny / dims[0], nx / dims[1]])


class PhaseCorrelator:
    """Measures the shift that registers frames on one reference frame."""

    def __init__(
        self,
        reference: np.ndarray,
        *,
        upsample_factor: int = 20,
        roi: tuple[int, int, int, int] | None = None,
    ) -> None:
        self.roi = roi
        self.upsample_factor = int(upsample_factor)
        region = _crop(np.asarray(reference), roi)
        self.shape = region.shape
        self._reference = _spectrum(region)

    @classmethod
    def from_spectrum(cls, spectrum: np.ndarray, shape, upsample_factor, roi) -> PhaseCorrelator:
        self = cls.__new__(cls)
        self.roi, self.upsample_factor, self.shape = roi, int(upsample_factor), shape
        self._reference = spectrum
        return self

    def spectrum(self, frame: np.ndarray) -> np.ndarray:
        """The cached form of a frame, to reuse it as the next reference."""
        region = _crop(np.asarray(frame), self.roi)
        if region.shape != self.shape:
            raise RegistrationError(f"frame shape {region.shape} differs from {self.shape}")
        return _spectrum(region)

    def measure(self, frame: np.ndarray | None = None, *, spectrum=None) -> np.ndarray:
        """(dy, dx) that registers ``frame`` (or its cached ``spectrum``) on the reference."""
        moving = self.spectrum(frame) if spectrum is None else spectrum
        product = self._reference * np.conj(moving)
        factor = 4
        peak = np.round(_coarse_peak(product, self.shape, factor))
        # 1 px steps over the coarse peak's uncertainty, then 1/upsample steps around the best.
        local = _upsampled_correlation(product, self.shape, 1, peak, 2 * factor + 3)
        sub = np.array(np.unravel_index(np.argmax(local), local.shape), dtype=np.float64)
        peak = peak + sub - (2 * factor + 3) // 2
        if self.upsample_factor <= 1:
            return peak
        # A parabola through the 1 px samples puts the peak within ~0.1 px; the fine grid then
        # only needs +-0.3 px around it (a third of the work of +-0.75 px), widened if the
        # maximum falls on its edge.
        up = self.upsample_factor
        guess = peak + np.round(_parabola_offset(local, sub.astype(int)) * up) / up
        for size in (int(np.ceil(0.6 * up)) | 1, int(np.ceil(1.5 * up)) | 1):
            fine = _upsampled_correlation(product, self.shape, up, guess, size)
            at = np.array(np.unravel_index(np.argmax(fine), fine.shape))
            if np.all((at > 0) & (at < size - 1)):
                break
            guess = peak
        return guess + (at - size // 2) / up


_STACKREG_MODES = {
    "translation": "TRANSLATION",
    "rigid": "RIGID_BODY",
    "scaled_rotation": "SCALED_ROTATION",
    "affine": "AFFINE",
}


def _stackreg(transform: str):
    from pystackreg import StackReg

    return StackReg(getattr(StackReg, _STACKREG_MODES[transform]))


@dataclass
class RegisteredFrame:
    """One frame after registration: the aligned image, its (dy, dx) and 3x3 transform."""

    index: int
    aligned: np.ndarray
    shift: np.ndarray
    matrix: np.ndarray


@dataclass
class FrameRegistrar:
    """Registers frames one at a time, as they arrive (the live path).

    ``method`` is ``"none"``, ``"phase_correlation"`` or ``"stackreg"`` (with ``transform``
    one of :data:`TRANSFORMS`; phase correlation measures translations). ``reference`` is
    ``"first"``, ``"previous"`` (each frame to the one before, shifts accumulated) or a frame
    index; frames that arrive before an indexed reference are held and released when it
    arrives. ``roi`` (y0, y1, x0, x1) is the region the shift is measured on (None: the whole
    frame), ``upsample_factor`` the sub-pixel precision 1/N. :meth:`add` returns the frames
    that became ready.
    """

    method: str = "phase_correlation"
    transform: str = "translation"
    reference: str | int = "previous"
    roi: Roi | None = None
    upsample_factor: int = 20
    _count: int = 0
    _pending: list = field(default_factory=list)
    _correlator: PhaseCorrelator | None = None
    _previous_spectrum: np.ndarray | None = None
    _previous_frame: np.ndarray | None = None
    _reference_frame: np.ndarray | None = None
    _total: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise RegistrationError(
                f"registration method must be one of {METHODS}, not {self.method!r}"
            )
        if self.transform not in TRANSFORMS:
            raise RegistrationError(
                f"registration transform must be one of {TRANSFORMS}, not {self.transform!r}"
            )
        if isinstance(self.reference, np.integer):
            self.reference = int(self.reference)
        if self.reference == "last":
            raise RegistrationError("reference 'last' needs the whole stack; use register_stack")
        if not (isinstance(self.reference, int) or self.reference in ("first", "previous")):
            raise RegistrationError(
                f"registration reference must be 'first', 'previous', 'last' or a frame index, "
                f"not {self.reference!r}"
            )
        self.roi = None if self.roi is None else tuple(int(v) for v in self.roi)

    def add(self, frame: np.ndarray) -> list[RegisteredFrame]:
        """Take the next frame.

        Parameters
        ----------
        frame : numpy.ndarray
            (ny, nx) image.

        Returns
        -------
        list of RegisteredFrame
            The frames registered by this one (none while an indexed reference is awaited).
        """
        frame = np.asarray(frame, dtype=np.float32)
        if frame.ndim != 2:
            raise RegistrationError(f"a frame must be 2-D, got shape {frame.shape}")
        index = self._count
        self._count += 1
        s = self
        if s.method == "none":
            return [RegisteredFrame(index, frame, np.zeros(2), np.eye(3))]
        ref = s.reference
        if isinstance(ref, int) and ref >= 0:
            if index < ref:
                self._pending.append((index, frame))
                return []
            if index == ref:
                self._reference_frame = frame
                held, self._pending = self._pending, []
                return [self._to_fixed(i, f) for i, f in held] + [
                    RegisteredFrame(index, frame, np.zeros(2), np.eye(3))
                ]
            return [self._to_fixed(index, frame)]
        if index == 0:
            self._reference_frame = frame
            self._remember(frame)
            return [RegisteredFrame(0, frame, np.zeros(2), np.eye(3))]
        if ref == "first":
            return [self._to_fixed(index, frame)]
        return [self._to_previous(index, frame)]

    def _remember(self, frame: np.ndarray) -> None:
        if self.method == "phase_correlation":
            if self._correlator is None:
                self._correlator = PhaseCorrelator(
                    frame, upsample_factor=self.upsample_factor, roi=self.roi
                )
                self._previous_spectrum = self._correlator._reference
            else:
                self._previous_spectrum = self._correlator.spectrum(frame)
        self._previous_frame = frame

    def _measure_matrix(self, reference: np.ndarray, frame: np.ndarray) -> np.ndarray:
        """3x3 transform registering ``frame`` on ``reference`` (translations: last column)."""
        s = self
        if s.method == "phase_correlation":
            correlator = PhaseCorrelator(reference, upsample_factor=s.upsample_factor, roi=s.roi)
            dy, dx = correlator.measure(frame)
            return _translation(dy, dx)
        return _stackreg_matrix(reference, frame, s)

    def _to_fixed(self, index: int, frame: np.ndarray) -> RegisteredFrame:
        s = self
        if s.method == "phase_correlation":
            if self._correlator is None:
                self._correlator = PhaseCorrelator(
                    self._reference_frame, upsample_factor=s.upsample_factor, roi=s.roi
                )
            matrix = _translation(*self._correlator.measure(frame))
        else:
            matrix = _stackreg_matrix(self._reference_frame, frame, s)
        return _apply(index, frame, matrix, s)

    def _to_previous(self, index: int, frame: np.ndarray) -> RegisteredFrame:
        s = self
        if s.method == "phase_correlation":
            spectrum = self._correlator.spectrum(frame)
            correlator = PhaseCorrelator.from_spectrum(
                self._previous_spectrum, self._correlator.shape, s.upsample_factor, s.roi
            )
            relative = _translation(*correlator.measure(spectrum=spectrum))
            self._previous_spectrum = spectrum
        else:
            relative = _stackreg_matrix(self._previous_frame, frame, s)
        self._previous_frame = frame
        # frame -> previous frame -> ... -> frame 0
        self._total = self._total @ relative
        return _apply(index, frame, self._total.copy(), s)


def _translation(dy: float, dx: float) -> np.ndarray:
    matrix = np.eye(3)
    matrix[0, 2], matrix[1, 2] = dy, dx
    return matrix


def _stackreg_matrix(reference, frame, settings: FrameRegistrar) -> np.ndarray:
    """StackReg's transform, expressed in (y, x) order like the phase correlation's."""
    ref = _crop(np.nan_to_num(reference), settings.roi)
    mov = _crop(np.nan_to_num(frame), settings.roi)
    tmat = _stackreg(settings.transform).register(ref, mov)  # maps reference (x, y) -> moving
    swap = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float64)
    forward = swap @ tmat @ swap  # reference (y, x) -> moving (y, x)
    return np.linalg.inv(forward)  # moving -> reference: the registering transform


def _apply(index: int, frame: np.ndarray, matrix: np.ndarray, settings) -> RegisteredFrame:
    linear = matrix[:2, :2]
    shift = matrix[:2, 2].copy()
    if np.allclose(linear, np.eye(2), atol=1e-9):
        aligned = shift_frame(frame, shift)
    else:
        from scipy.ndimage import affine_transform

        inverse = np.linalg.inv(matrix)
        aligned = affine_transform(
            frame, inverse[:2, :2], offset=inverse[:2, 2], order=1, mode="nearest"
        ).astype(np.float32)
    return RegisteredFrame(index, aligned, shift, matrix)


def register_stack(
    stack: np.ndarray,
    *,
    method: str = "phase_correlation",
    transform: str = "translation",
    reference: str | int = "previous",
    roi: Roi | None = None,
    upsample_factor: int = 20,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Register every frame of a stack.

    Parameters
    ----------
    stack : numpy.ndarray
        (n, ny, nx) frames.
    method, transform, roi, upsample_factor
        As for :class:`FrameRegistrar`.
    reference : str or int
        ``"first"``, ``"previous"``, ``"last"`` (resolved to the last index here) or a frame
        index.
    progress : callable, optional
        Called with the number of frames done.

    Returns
    -------
    aligned : numpy.ndarray
        (n, ny, nx) float32.
    shifts : numpy.ndarray
        (n, 2) (dy, dx) that registered each frame.
    """
    stack = np.asarray(stack)
    if stack.ndim != 3:
        raise RegistrationError(f"a stack must be (n, ny, nx), got shape {stack.shape}")
    if reference == "last":
        reference = stack.shape[0] - 1
    if isinstance(reference, np.integer):
        reference = int(reference)
    if isinstance(reference, int) and not 0 <= reference < stack.shape[0]:
        raise RegistrationError(
            f"registration reference frame {reference} is not in 0..{stack.shape[0] - 1}"
        )
    registrar = FrameRegistrar(method, transform, reference, roi, upsample_factor)
    aligned = np.empty(stack.shape, dtype=np.float32)
    shifts = np.zeros((stack.shape[0], 2))
    for i in range(stack.shape[0]):
        for done in registrar.add(stack[i]):
            aligned[done.index] = done.aligned
            shifts[done.index] = done.shift
        if progress is not None:
            progress(i + 1)
    return aligned, shifts
