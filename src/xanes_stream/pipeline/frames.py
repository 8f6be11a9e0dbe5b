"""The frames of one stack before the fit: input checks, which frames are usable and in what
order, their correction (:func:`xanes_stream.imaging.correct.correct`) and registration.

:func:`~xanes_stream.pipeline.analyze.analyze` and
:func:`~xanes_stream.pipeline.normalized.normalize_stack` both start here, so the frames,
sample pixels and order they see are the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from xanes_stream.errors import AnalysisError
from xanes_stream.imaging.correct import check_mode, correct
from xanes_stream.imaging.registration import register_stack

#: Pixels sampled to judge frames and to plan the normalization.
SAMPLE_PIXELS = 16_384

Corrections = tuple  # (dark, flat, i0), each None or an array


def check_inputs(frames, energies, dark, flat, i0, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """The frames and energies as arrays, once their shapes agree.

    Parameters
    ----------
    frames : array_like
        (n_energy, ny, nx) images.
    energies : array_like
        (n_energy,) energies, finite.
    dark, flat : array_like or None
        (ny, nx) or (n_energy, ny, nx).
    i0 : array_like or None
        (n_energy,) values.
    mode : str
        ``transmission``, ``fluorescence`` or ``absorbance``.

    Returns
    -------
    frames : numpy.ndarray
        The frames (not copied).
    energies : numpy.ndarray
        (n_energy,) float64, as given (no unit conversion).
    """
    check_mode(mode)
    frames = np.asarray(frames)
    if frames.ndim != 3:
        raise AnalysisError(f"frames must be (n_energy, ny, nx), got shape {frames.shape}")
    energies = np.asarray(energies, dtype=np.float64).ravel()
    if energies.size != frames.shape[0]:
        raise AnalysisError(
            f"{energies.size} energies for {frames.shape[0]} frames: they must match"
        )
    if not np.all(np.isfinite(energies)):
        raise AnalysisError("energies contain NaN or inf")
    for name, extra in (("dark", dark), ("flat", flat)):
        if extra is not None:
            shape = np.shape(extra)
            if shape not in (frames.shape, frames.shape[1:]):
                raise AnalysisError(
                    f"{name} has shape {shape}; expected {frames.shape[1:]} or {frames.shape}"
                )
    if i0 is not None and np.size(i0) != frames.shape[0]:
        raise AnalysisError(f"i0 has {np.size(i0)} values for {frames.shape[0]} frames")
    return frames, energies


def correct_block(
    block: np.ndarray, index: np.ndarray, rows: slice, corrections: Corrections, mode: str
) -> np.ndarray:
    """Correct, in place, a float32 block (n, ny_block, nx) of the frames ``index`` and the
    image rows ``rows``.

    Parameters
    ----------
    block : numpy.ndarray
        float32 raw values of those frames and rows; overwritten.
    index : numpy.ndarray
        (n,) input frame index of each block frame (picks per-frame dark, flat and i0).
    rows : slice
        The image rows of the block.
    corrections : tuple
        (dark, flat, i0) of the whole stack.
    mode : str
        As for :func:`~xanes_stream.imaging.correct.correct`.

    Returns
    -------
    numpy.ndarray
        ``block``, corrected.
    """
    dark, flat, i0 = corrections
    return correct(
        block,
        mode,
        dark=None if dark is None else _frames_of(dark, index, rows),
        flat=None if flat is None else _frames_of(flat, index, rows),
        i0=None if i0 is None else np.asarray(i0)[index],
        out=block,
    )


def _frames_of(extra: np.ndarray, index: np.ndarray, rows: slice) -> np.ndarray:
    extra = np.asarray(extra)
    if extra.ndim == 2:
        return extra[None, rows].astype(np.float32, copy=False)
    return extra[index, rows].astype(np.float32, copy=False)


def corrected_stack(frames, order: np.ndarray, corrections: Corrections, mode: str) -> np.ndarray:
    """The frames ``order`` names, corrected, as one float32 stack (one frame read at a time).

    Parameters
    ----------
    frames : array_like
        (n_raw, ny, nx) raw frames (an array or an h5py dataset).
    order : numpy.ndarray
        Input indices of the frames to take, in the order wanted.
    corrections : tuple
        (dark, flat, i0) of the whole stack.
    mode : str
        As for :func:`~xanes_stream.imaging.correct.correct`.

    Returns
    -------
    numpy.ndarray
        (order.size, ny, nx) float32.
    """
    out = np.empty((order.size, *frames.shape[1:]), dtype=np.float32)
    for position, index in enumerate(order):
        block = np.array(frames[index : index + 1], dtype=np.float32)
        out[position] = correct_block(block, np.array([index]), slice(None), corrections, mode)[0]
    return out


def sample_corrected(frames, index, ys, xs, corrections: Corrections, mode: str) -> np.ndarray:
    """Corrected values (n, n_sample) of the frames ``index`` at the pixels (ys, xs).

    Parameters
    ----------
    frames : array_like
        (n_raw, ny, nx) raw frames.
    index : numpy.ndarray
        (n,) frames to read (an h5py dataset is read whole along energy).
    ys, xs : numpy.ndarray
        (n_sample,) pixel coordinates.
    corrections : tuple
        (dark, flat, i0) of the whole stack.
    mode : str
        As for :func:`~xanes_stream.imaging.correct.correct`.

    Returns
    -------
    numpy.ndarray
        (n, n_sample) float32.
    """
    dark, flat, i0 = corrections
    values = np.asarray(
        frames[:, ys, xs]
        if not isinstance(frames, np.ndarray)
        else frames[index[:, None], ys[None, :], xs[None, :]],
        dtype=np.float32,
    )[:, None, :]
    picks = (ys, xs)
    picked = (
        None if dark is None else _pick(dark, picks),
        None if flat is None else _pick(flat, picks),
        i0,
    )
    return correct_block(values, index, slice(None), picked, mode)[:, 0, :]


def _pick(extra: np.ndarray, picks) -> np.ndarray:
    extra = np.asarray(extra)
    if extra.ndim == 2:
        return extra[picks][None, :]
    return extra[:, picks[0], picks[1]][:, None, :]


@dataclass(frozen=True)
class Frames:
    """Which frames are usable and in what order, judged on a sample of corrected pixels."""

    sample_y: np.ndarray
    sample_x: np.ndarray
    sample_raw: np.ndarray  # (n_raw, n_sample) corrected values, in input order
    dropped: np.ndarray  # input indices of frames mostly non-finite
    order: np.ndarray  # input indices of the usable frames, sorted by energy
    unique: np.ndarray  # their distinct energies
    starts: np.ndarray  # first position in ``order`` of each distinct energy
    counts: np.ndarray


def select_frames(frames, energies: np.ndarray, corrections, mode: str, seed: int) -> Frames:
    """Drop frames more than half non-finite at a fixed random sample of pixels; order the
    rest by energy and group them by equal energy.

    Parameters
    ----------
    frames : array_like
        (n_raw, ny, nx) raw frames.
    energies : numpy.ndarray
        (n_raw,) eV.
    corrections : tuple
        (dark, flat, i0).
    mode : str
        As for :func:`~xanes_stream.imaging.correct.correct`.
    seed : int
        Seed of the pixel sample.

    Returns
    -------
    Frames
        The sample, the dropped frames and the order and groups of the others.
    """
    n_raw, ny, nx = frames.shape
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(ny * nx, size=min(ny * nx, SAMPLE_PIXELS), replace=False))
    sample_y, sample_x = np.divmod(sample, nx)
    sample_raw = sample_corrected(frames, np.arange(n_raw), sample_y, sample_x, corrections, mode)
    bad_fraction = 1.0 - np.isfinite(sample_raw).mean(axis=1)
    good = np.flatnonzero(bad_fraction <= 0.5)
    order = good[np.argsort(energies[good], kind="stable")]
    unique, starts, counts = np.unique(energies[order], return_index=True, return_counts=True)
    dropped = np.flatnonzero(bad_fraction > 0.5)
    return Frames(sample_y, sample_x, sample_raw, dropped, order, unique, starts, counts)


@dataclass(frozen=True)
class Source:
    """What the blocks read: the raw frames with their corrections, or the corrected, aligned
    stack (mode ``absorbance``, no corrections), and the sample pixels' mu per energy."""

    frames: np.ndarray
    mode: str
    corrections: Corrections
    order: np.ndarray  # frame of ``frames`` per sorted position
    sample_mu: np.ndarray  # (n_energy, n_sample) float32, grouped, bad values filled


def source_of(
    frames, selected: Frames, corrections: Corrections, mode: str, aligned=None
) -> Source:
    """The :class:`Source` of a stack: ``aligned`` (the corrected frames of ``selected.order``,
    moved into register) when given, else the raw ``frames``.

    Parameters
    ----------
    frames : array_like
        (n_raw, ny, nx) raw frames.
    selected : Frames
        From :func:`select_frames`.
    corrections : tuple
        (dark, flat, i0).
    mode : str
        The raw frames' mode.
    aligned : numpy.ndarray, optional
        (n_usable, ny, nx) float32 corrected and aligned frames.

    Returns
    -------
    Source
    """
    if aligned is None:
        source, source_mode, order = frames, mode, selected.order
        sample_raw = selected.sample_raw[order]
    else:
        source, source_mode, corrections = aligned, "absorbance", (None, None, None)
        order = np.arange(selected.order.size)
        sample_raw = aligned[:, selected.sample_y, selected.sample_x]
    sample_mu = np.array(sample_raw, dtype=np.float32)
    sample_mu = average_groups(sample_mu, selected.starts, selected.counts)
    fill_bad(sample_mu)
    return Source(source, source_mode, corrections, order, sample_mu)


def register_frames(
    stack: np.ndarray, registration, progress: Callable[[str, int, int], None] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Register a corrected stack as the registration settings say.

    Parameters
    ----------
    stack : numpy.ndarray
        (n, ny, nx) corrected frames.
    registration : RegistrationSettings
        ``settings.registration``; its fields are
        :func:`~xanes_stream.imaging.registration.register_stack`'s arguments.
    progress : callable, optional
        Called as ``progress("register", done, n)``.

    Returns
    -------
    aligned : numpy.ndarray
        (n, ny, nx) float32.
    shifts : numpy.ndarray
        (n, 2) (dy, dx).
    """
    n = stack.shape[0]
    on_frame = None if progress is None else (lambda i: progress("register", i, n))
    return register_stack(stack, **registration.model_dump(), progress=on_frame)


def average_groups(values: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Average the rows (axis 0) of each run of equal energies.

    Parameters
    ----------
    values : numpy.ndarray
        (n_sorted, ...) values in sorted-energy order.
    starts, counts : numpy.ndarray
        First row and length of each run.

    Returns
    -------
    numpy.ndarray
        (n_runs, ...); ``values`` itself when every run is one row.
    """
    if values.shape[0] == starts.size:
        return values
    sums = np.add.reduceat(values, starts, axis=0)
    return sums / counts.reshape((-1,) + (1,) * (values.ndim - 1)).astype(values.dtype)


def fill_bad(x: np.ndarray) -> np.ndarray:
    """Replace, in place, non-finite values along energy (axis 0) by the nearest earlier good
    value (the next good one for leading bad values; 0 where a pixel has none).

    Parameters
    ----------
    x : numpy.ndarray
        (n_energy, P) values; modified.

    Returns
    -------
    numpy.ndarray
        (P,) the count of bad values per pixel.
    """
    bad = ~np.isfinite(x)
    counts = bad.sum(axis=0)
    if not counts.any():
        return counts
    n = x.shape[0]
    index = np.where(bad, 0, np.arange(n)[:, None])
    np.maximum.accumulate(index, axis=0, out=index)  # last good at or before
    filled = np.take_along_axis(x, index, axis=0)
    still = ~np.isfinite(filled)  # leading bad values: take the next good one
    if still.any():
        rev = np.where(bad[::-1], 0, np.arange(n)[:, None])
        np.maximum.accumulate(rev, axis=0, out=rev)
        after = np.take_along_axis(x[::-1], rev, axis=0)[::-1]
        filled = np.where(still, after, filled)
    x[...] = np.where(np.isfinite(filled), filled, 0.0)
    return counts
