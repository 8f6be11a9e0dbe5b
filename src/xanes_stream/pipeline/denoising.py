"""The wiring of denoising into :func:`~xanes_stream.pipeline.analyze.analyze`: spikes out of
the frames before anything reads them, and the PCA projection planned on the analysis'
pixel sample and applied in each block (the numbers are in
:mod:`xanes_stream.spectra.denoise` and :mod:`xanes_stream.imaging.spikes`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from xanes_stream.imaging.spikes import remove_spikes
from xanes_stream.pipeline.frames import fill_bad
from xanes_stream.pipeline.plan import Plan
from xanes_stream.spectra.denoise import Projection, pca_projection


def despike_frames(frames, settings, notes: list[str]) -> tuple[np.ndarray, dict]:
    """The frames with spikes replaced, when ``settings.denoise.spikes`` asks for it.

    Parameters
    ----------
    frames : array_like
        (n, ny, nx) raw frames, as :func:`analyze` is given them.
    settings : AnalysisSettings
        Its ``denoise`` section is read.
    notes : list of str
        A note is appended when spikes were replaced.

    Returns
    -------
    frames : array_like
        ``frames`` itself when off; else a new float32 stack (one more copy of the stack).
    metadata : dict
        ``{"spikes": {"threshold": t, "replaced": [count per frame]}}``, or empty when off.
    """
    denoise = settings.denoise
    if not denoise.spikes:
        return frames, {}
    cleaned, counts = remove_spikes(frames, denoise.spike_threshold)
    total = int(counts.sum())
    if total:
        notes.append(
            f"replaced {total} spike pixels by their 3x3 median in {int((counts > 0).sum())} "
            f"of {counts.size} frames (over {denoise.spike_threshold:g} robust sigmas)"
        )
    return cleaned, {"spikes": {"threshold": denoise.spike_threshold, "replaced": counts.tolist()}}


def plan_denoising(plan: Plan, settings, sample_mu: np.ndarray, notes: list[str]):
    """``plan`` with the PCA projection of the sample pixels' spectra, when
    ``settings.denoise.components`` is set.

    Parameters
    ----------
    plan : Plan
        The block pass's plan.
    settings : AnalysisSettings
        Its ``denoise`` section is read.
    sample_mu : numpy.ndarray
        (n_energy, n_sample) mu of the analysis' sample pixels, bad values filled.
    notes : list of str
        A note says what was kept.

    Returns
    -------
    plan : Plan
        With ``denoise`` set (or ``plan`` itself when off).
    metadata : dict
        ``{"pca": {"components", "requested", "explained_variance", "singular_values"}}``,
        or empty when off.
    """
    requested = settings.denoise.components
    if requested is None:
        return plan, {}
    projection = pca_projection(sample_mu, requested)
    notes.append(
        f"spectra denoised on the mean + {projection.k} principal components "
        f"({100 * projection.explained:.1f}% of the sample's variance); error, r_factor and "
        "chi2_red are of the denoised spectra"
    )
    return dataclasses.replace(plan, denoise=projection), {
        "pca": {
            "components": projection.k,
            "requested": requested,
            "explained_variance": projection.explained,
            "singular_values": projection.singular_values.tolist(),
            "sample_pixels": int(sample_mu.shape[1]),
        }
    }


def denoise_block(mu: np.ndarray, projection: Projection) -> tuple[np.ndarray, np.ndarray]:
    """A block's mu projected on the denoising components, its bad values filled first.

    Parameters
    ----------
    mu : numpy.ndarray
        (n_energy, P) the block's mu (not modified).
    projection : Projection
        From :func:`plan_denoising`.

    Returns
    -------
    mu : numpy.ndarray
        (n_energy, P) float32, new.
    bad : numpy.ndarray
        (P,) non-finite values per pixel before filling.
    """
    bad = np.zeros(mu.shape[1], dtype=np.int64)
    if not np.isfinite(mu).all():
        mu = np.array(mu)  # never fill the caller's array
        bad = fill_bad(mu)
    return projection.apply(mu), bad
