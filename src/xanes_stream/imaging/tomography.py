"""Parallel-beam tomography of one energy: projections (n_angles, nz, nx) to a volume (nz, nx, nx).

Conventions: ``angles`` are in degrees; the rotation axis is parallel to z and sits at detector
column ``center`` (a float, pixel index along x). Slices are reconstructed with scikit-image's
filtered back-projection (``iradon``) or SART (``iradon_sart``), which put the axis at column
``nx // 2``: the projections are first moved by ``nx // 2 - center`` (:func:`center_projections`).

The rotation centre, when not given, is found by :func:`find_center`:

``pair``
    When the scan holds two projections 180 degrees apart (within 0.1 degree), the second is a
    mirror image of the first about the axis: the phase correlation of the first with the
    mirrored second gives the axis to a few hundredths of a pixel.
``mass``
    Otherwise, the centre of mass of each projection traces a sinusoid,
    ``c + a cos(theta) + b sin(theta)``, about the axis (parallel beam, sample inside the field
    of view): a least-squares fit over all angles gives ``c``. This needs absorption that falls
    to zero at the edges of the field of view.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage as ndi
from skimage.transform import iradon_sart
from skimage.transform.radon_transform import _get_fourier_filter

from xanes_stream.errors import AnalysisError
from xanes_stream.imaging.correct import check_mode, correct
from xanes_stream.imaging.registration import PhaseCorrelator

Method = Literal["fbp", "sart"]
METHODS = ("fbp", "sart")
_PAIR_TOLERANCE = 0.1  # degrees
_CACHE_FLOATS = 131_072  # float32 values a back-projection pass works on (512 KiB)


def _check(projections: np.ndarray, angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    projections = np.asarray(projections)
    angles = np.asarray(angles, dtype=np.float64).ravel()
    if projections.ndim != 3:
        raise AnalysisError(
            f"projections must be (n_angles, nz, nx), got shape {projections.shape}"
        )
    if angles.size != projections.shape[0]:
        raise AnalysisError(
            f"{angles.size} angles for {projections.shape[0]} projections: they must match"
        )
    if angles.size < 2 or not np.isfinite(angles).all():
        raise AnalysisError("a tomogram needs at least two finite rotation angles (degrees)")
    if np.ptp(angles) < 90:
        raise AnalysisError(
            f"the angles span only {np.ptp(angles):.1f} degrees; a reconstruction needs 180"
        )
    return projections, angles


def absorbance(projections: np.ndarray, mode: str = "absorbance") -> np.ndarray:
    """Projections as absorption (float32): ``-ln`` of transmission, as
    :func:`~xanes_stream.imaging.correct.correct` does for every frame."""
    return correct(np.asarray(projections, dtype=np.float32), check_mode(mode))


def shift_columns(projections: np.ndarray, shift: float | np.ndarray) -> np.ndarray:
    """Projections moved by ``shift`` pixels along x (sub-pixel, by a Fourier phase ramp on
    projections padded with their edge values, so nothing wraps around).

    Parameters
    ----------
    projections : (..., nx) array.
    shift : float, or one per leading row (broadcast against ``projections[..., 0]``).

    Returns
    -------
    numpy.ndarray
        float32, ``projections``' shape; ``out[..., x] = in[..., x - shift]``.
    """
    values = np.asarray(projections, dtype=np.float32)
    shift = np.asarray(shift, dtype=np.float64)
    if not np.any(shift):
        return values.copy()
    nx = values.shape[-1]
    pad = int(np.ceil(np.abs(shift).max())) + 2
    # an odd length: no Nyquist bin, whose phase a real inverse transform would lose
    right = pad + 1 - (nx % 2)
    padded = np.pad(values, [(0, 0)] * (values.ndim - 1) + [(pad, right)], mode="edge")
    n = padded.shape[-1]
    freq = np.fft.rfftfreq(n)
    ramp = np.exp(-2j * np.pi * freq * shift[..., None])
    moved = np.fft.irfft(np.fft.rfft(padded, axis=-1) * ramp, n=n, axis=-1)
    return moved[..., pad : pad + nx].astype(np.float32)


def center_projections(projections: np.ndarray, center: float) -> np.ndarray:
    """Projections moved so that the rotation axis at column ``center`` lands on ``nx // 2``,
    where scikit-image's back-projection puts it."""
    nx = np.shape(projections)[-1]
    return shift_columns(projections, nx // 2 - float(center))


def _pair(angles: np.ndarray) -> tuple[int, int] | None:
    """Indices of two angles 180 degrees apart (the pair closest to it), or None."""
    gap = np.abs(np.abs(angles[:, None] - angles[None, :]) - 180.0)
    i, j = np.unravel_index(np.argmin(gap), gap.shape)
    return (int(i), int(j)) if gap[i, j] <= _PAIR_TOLERANCE else None


def _center_from_pair(first: np.ndarray, second: np.ndarray) -> float:
    nx = first.shape[-1]
    mirrored = np.ascontiguousarray(second[..., ::-1])
    if first.shape[0] == 1:  # one slice: correlate 2-D images of a few copies of the row
        first, mirrored = np.repeat(first, 8, axis=0), np.repeat(mirrored, 8, axis=0)
    dx = PhaseCorrelator(first, upsample_factor=50).measure(mirrored)[1]
    return (nx - 1 + float(dx)) / 2.0


def _center_from_mass(projections: np.ndarray, angles: np.ndarray) -> float:
    profile = np.clip(projections.sum(axis=1, dtype=np.float64), 0.0, None)  # (n_angles, nx)
    total = profile.sum(axis=1)
    if not (total > 0).all():
        raise AnalysisError(
            "cannot find the rotation centre: some projections hold no absorption; give "
            "tomography.center"
        )
    mass = profile @ np.arange(profile.shape[1], dtype=np.float64) / total
    theta = np.deg2rad(angles)
    design = np.stack([np.ones_like(theta), np.cos(theta), np.sin(theta)], axis=1)
    coef, *_ = np.linalg.lstsq(design, mass, rcond=None)
    return float(coef[0])


def find_center(
    projections: np.ndarray,
    angles: np.ndarray,
    *,
    method: Literal["auto", "pair", "mass"] = "auto",
) -> float:
    """The detector column of the rotation axis (see the module's docstring for the methods).

    Parameters
    ----------
    projections : (n_angles, nz, nx) absorption.
    angles : (n_angles,) degrees.
    method : ``pair`` (a 0/180 degree pair), ``mass`` (centre-of-mass sinusoid) or ``auto``
        (``pair`` when the angles hold such a pair, else ``mass``).

    Returns
    -------
    float
        The centre, pixels from column 0.
    """
    projections, angles = _check(projections, angles)
    values = np.nan_to_num(np.asarray(projections, dtype=np.float64))
    pair = _pair(angles)
    if method == "pair" and pair is None:
        raise AnalysisError("no two projections are 180 degrees apart; use the mass method")
    if method in ("auto", "pair") and pair is not None:
        return _center_from_pair(values[pair[0]], values[pair[1]])
    return _center_from_mass(values, angles)


def reconstruct(
    projections: np.ndarray,
    angles: np.ndarray,
    *,
    method: Method = "fbp",
    center: float | None = None,
    mode: str = "absorbance",
    sart_iterations: int = 1,
    filter_name: str = "ramp",
) -> np.ndarray:
    """Volume of one energy from its projections, slice by slice.

    Parameters
    ----------
    projections : (n_angles, nz, nx) array
        Absorption (``absorbance``) or flat-corrected transmission (``transmission``: ``-ln``
        taken by :func:`~xanes_stream.imaging.correct.correct`).
    angles : (n_angles,) rotation angles in degrees.
    method : ``fbp`` (filtered back-projection) or ``sart`` (``sart_iterations`` passes of
        SART, the first started from zero).
    center : detector column of the rotation axis; None: :func:`find_center`.
    filter_name : the FBP filter (``ramp``, ``shepp-logan``, ``cosine``, ``hamming``,
        ``hann``).

    Returns
    -------
    numpy.ndarray
        (nz, nx, nx) float32 absorption per voxel (per pixel length); zero outside the
        reconstruction circle.
    """
    if method not in METHODS:
        raise AnalysisError(f"tomography method must be fbp or sart, not {method!r}")
    if sart_iterations < 1:
        raise AnalysisError(f"sart_iterations must be at least 1, got {sart_iterations}")
    projections, angles = _check(projections, angles)
    values = absorbance(projections, mode)
    if not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise AnalysisError(
            f"{bad} projection pixels are not finite (zero or negative transmission?)"
        )
    if center is None:
        center = find_center(values, angles)
    values = center_projections(values, float(center))
    if method == "fbp":
        return filtered_back_projection(values, angles, filter_name=filter_name)
    _, nz, nx = values.shape
    volume = np.empty((nz, nx, nx), dtype=np.float32)
    for z in range(nz):
        sinogram = values[:, z, :].T.astype(np.float64)  # (nx, n_angles)
        image = None
        for _ in range(sart_iterations):
            image = iradon_sart(sinogram, theta=angles, image=image)
        volume[z] = image
    return volume


def filtered_back_projection(
    projections: np.ndarray, angles: np.ndarray, *, filter_name: str = "ramp"
) -> np.ndarray:
    """Filtered back-projection of all slices at once, the axis at column ``nx // 2``.

    The arithmetic of scikit-image's ``iradon(..., circle=True)`` (the same padding, Fourier
    filter, linear interpolation and scale), vectorised over the slices: one gather per angle
    for the whole volume instead of one per angle and slice.

    Parameters
    ----------
    projections : (n_angles, nz, nx) absorption, centred (:func:`center_projections`).
    angles : (n_angles,) degrees.
    filter_name : as for :func:`reconstruct`.

    Returns
    -------
    numpy.ndarray
        (nz, nx, nx) float32, zero outside the reconstruction circle.
    """
    values = np.asarray(projections, dtype=np.float64)
    n_angles, nz, nx = values.shape
    # scikit-image's circle-to-square padding, then a power-of-two length for the filter
    diagonal = int(np.ceil(np.sqrt(2) * nx))
    before = diagonal // 2 - nx // 2
    padded_size = max(64, int(2 ** np.ceil(np.log2(2 * diagonal))))
    padded = np.zeros((n_angles, padded_size, nz))
    padded[:, before : before + nx] = values.transpose(0, 2, 1)
    spectrum = np.fft.fft(padded, axis=1) * _get_fourier_filter(padded_size, filter_name)[None]
    filtered = np.zeros((n_angles, diagonal + 2, nz), dtype=np.float32)  # 2 zero rows last
    filtered[:, :diagonal] = np.real(np.fft.ifft(spectrum, axis=1)[:, :diagonal])
    del padded, spectrum

    radius = nx // 2
    xpr, ypr = np.mgrid[:nx, :nx] - radius
    inside = (xpr**2 + ypr**2 <= radius**2).ravel()
    xpr, ypr = xpr.ravel()[inside], ypr.ravel()[inside]
    theta = np.deg2rad(angles)
    # per angle: each pixel's two detector rows and the weight of the second (np.interp's
    # linear interpolation, zero beyond the detector: those pixels read the zero rows)
    at = ypr[None] * np.cos(theta)[:, None] - xpr[None] * np.sin(theta)[:, None]
    at += diagonal // 2
    valid = (at >= 0) & (at <= diagonal - 1)
    low = np.where(valid, np.clip(np.floor(at), 0, diagonal - 2), diagonal).astype(np.intp)
    weight = np.where(valid, at - low, 0.0).astype(np.float32)[..., None]
    total = np.zeros((xpr.size, nz), dtype=np.float32)
    step = max(1, _CACHE_FLOATS // max(1, xpr.size))  # slices per pass, to stay in cache
    for z0 in range(0, nz, step):
        z1 = min(nz, z0 + step)
        out = total[:, z0:z1]
        first = np.empty_like(out)
        second = np.empty_like(out)
        for a in range(n_angles):
            column = filtered[a, :, z0:z1]
            np.take(column, low[a], axis=0, out=first)
            np.take(column, low[a] + 1, axis=0, out=second)
            second -= first
            second *= weight[a]
            out += first
            out += second
    volume = np.zeros((nz, nx * nx), dtype=np.float32)
    volume[:, inside] = total.T * np.float32(np.pi / (2 * n_angles))
    return volume.reshape(nz, nx, nx)


def project(volume: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Parallel-beam projections of a volume, all slices at once: scikit-image's ``radon(...,
    circle=True)`` of every slice (the same bilinear rotation about ``nx // 2``, summed over
    rows), one rotation of the whole volume per angle.

    Parameters
    ----------
    volume : (nz, nx, nx) absorption per voxel, zero outside the inscribed circle.
    angles : (n_angles,) degrees.

    Returns
    -------
    numpy.ndarray
        (n_angles, nz, nx) float64 projections, the rotation axis at column ``nx // 2``.
    """
    volume = np.asarray(volume, dtype=np.float64)
    if volume.ndim != 3 or volume.shape[1] != volume.shape[2]:
        raise AnalysisError(f"a volume to project must be (nz, nx, nx), got {volume.shape}")
    c = volume.shape[1] // 2
    out = np.empty((np.size(angles), *volume.shape[:2]))
    for i, angle in enumerate(np.deg2rad(np.asarray(angles, dtype=np.float64).ravel())):
        cos, sin = np.cos(angle), np.sin(angle)
        matrix = np.array([[1.0, 0.0, 0.0], [0.0, cos, -sin], [0.0, sin, cos]])
        offset = np.array([0.0, -c * (cos - sin - 1), -c * (cos + sin - 1)])
        rotated = ndi.affine_transform(volume, matrix, offset=offset, order=1, cval=0.0)
        out[i] = rotated.sum(axis=1)
    return out
