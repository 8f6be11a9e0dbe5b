"""The one correction of raw frames into absorption: dark, flat, I0 and -ln.

Every path from detector counts to mu (the whole-stack analysis, its blocks, the live
accumulator, 3D volumes) calls :func:`correct`, so they cannot disagree.

What the inputs mean, per mode:

``transmission``
    ``T = (I - dark) / (flat - dark) / i0`` and ``mu = -ln T``. ``i0`` is each frame's beam
    intensity relative to its flat's (1: the beam the flat saw; e.g. ring current at the frame
    over ring current at the flat), so dividing by it normalizes the beam's decay between the
    flat and the frame. Without ``i0`` the flat alone normalizes the beam.
``fluorescence``
    ``mu = (I - dark) / (flat - dark) / i0``, no log: the counts are proportional to
    absorption, ``i0`` the incident intensity of each frame (any scale: a common factor moves
    only the edge step).
``absorbance``
    The frames are already absorption (optical density, reconstructed mu) and are used as they
    are: ``i0`` is ignored, and dark and flat, when given, are still subtracted and divided.
"""

from __future__ import annotations

import numpy as np

from xanes_stream.errors import AnalysisError

MODES = ("transmission", "fluorescence", "absorbance")


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`MODES`.

    Parameters
    ----------
    mode : str
        ``transmission``, ``fluorescence`` or ``absorbance``.

    Returns
    -------
    str
        ``mode``; anything else raises :class:`~xanes_stream.errors.AnalysisError`.
    """
    if mode not in MODES:
        raise AnalysisError(f"mode must be transmission, fluorescence or absorbance, not {mode!r}")
    return mode


def correct(
    values: np.ndarray,
    mode: str,
    *,
    dark: np.ndarray | None = None,
    flat: np.ndarray | None = None,
    i0: float | np.ndarray | None = None,
    out: np.ndarray | None = None,
    denominator: np.ndarray | None = None,
) -> np.ndarray:
    """Absorption of raw frames: ``(values - dark) / (flat - dark) / i0``, then ``-ln`` in
    transmission (see the module's docstring for what each input means in each mode).

    Parameters
    ----------
    values : numpy.ndarray
        Raw frames, frame axis first: (n, ...) or one frame (ny, nx) / volume (nz, ny, nx)
        with a scalar ``i0``.
    mode : str
        ``transmission``, ``fluorescence`` or ``absorbance``.
    dark, flat : numpy.ndarray, optional
        Broadcastable to ``values`` (the caller picks the frames and pixels they apply to).
    i0 : float or numpy.ndarray, optional
        One value, or one per frame along axis 0 of ``values``.
    out : numpy.ndarray, optional
        Floating-point array of ``values``' shape to write into; ``values`` itself (when it
        is floating point) corrects in place, as the block loop of the analysis does. None: a
        new float32 array.
    denominator : numpy.ndarray, optional
        ``flat - dark`` made once by :func:`flat_field` for many frames (the live
        accumulator's), used instead of ``flat``; give ``dark`` too, not ``flat``.

    Returns
    -------
    numpy.ndarray
        The absorption (``out``, or float32); non-finite where a division or the log has no
        value.
    """
    check_mode(mode)
    if denominator is not None and flat is not None:
        raise AnalysisError("give the flat or its flat-field denominator, not both")
    if out is None:
        out = np.array(values, dtype=np.float32)
    elif out is not values:
        out[...] = values
    if dark is not None:
        dark = np.asarray(dark).astype(np.float32, copy=False)
        out -= dark
    with np.errstate(divide="ignore", invalid="ignore"):
        if flat is not None:
            denominator = flat_field(flat, dark)
        if denominator is not None:
            out /= denominator
        if i0 is not None and mode != "absorbance":
            i0 = np.asarray(i0, dtype=np.float32)
            out /= i0.reshape((-1,) + (1,) * (out.ndim - 1)) if i0.ndim else i0
        if mode == "transmission":
            np.log(out, out=out)
            np.negative(out, out=out)
    return out


def flat_field(flat: np.ndarray, dark: np.ndarray | None = None) -> np.ndarray:
    """The flat-field denominator ``flat - dark`` (``flat`` alone without a dark), float32.

    Make it once per flat and give it to :func:`correct` as ``denominator`` when many frames
    share one flat.

    Parameters
    ----------
    flat : numpy.ndarray
        The flat (open-beam) image.
    dark : numpy.ndarray, optional
        The dark image, broadcastable to ``flat``.

    Returns
    -------
    numpy.ndarray
        float32; a new array when ``dark`` is given, else ``flat`` itself if it is float32.
    """
    denominator = np.asarray(flat).astype(np.float32, copy=False)
    if dark is not None:
        denominator = denominator - np.asarray(dark).astype(np.float32, copy=False)
    return denominator
