"""``normalize_stack``: the edge-normalized spectrum of every pixel, exactly as ``analyze`` sees it.

The analyses beyond the fit (decomposition, clusters, combinatorial fitting, ...) work on
normalized spectra. This module runs the front half of :func:`xanes_stream.pipeline.analyze.analyze`
(frame checks, correction, registration, the normalization plan) with analyze's own helpers, so
the windows, E0 and edge steps are the ones the maps were made with.
"""

from __future__ import annotations

import numpy as np

from xanes_stream.errors import AnalysisError
from xanes_stream.imaging.shift import shift_frame
from xanes_stream.pipeline.analyze import Mode
from xanes_stream.pipeline.frames import (
    check_inputs,
    corrected_stack,
    fill_bad,
    register_frames,
    select_frames,
    source_of,
)
from xanes_stream.pipeline.plan import block_mu, make_plan
from xanes_stream.pipeline.results import NormalizedStack
from xanes_stream.pipeline.self_absorption import corrected_block, scan_alpha
from xanes_stream.pipeline.settings import AnalysisSettings, load_settings
from xanes_stream.spectra.energies import Units, to_ev
from xanes_stream.spectra.masks import otsu_threshold
from xanes_stream.spectra.normalize import larch_rows
from xanes_stream.spectra.references import Reference

_SCALE = 100.0  # normalize.EdgeOperator's energy scale of the pre-edge line


def normalize_stack(
    frames: np.ndarray,
    energies: np.ndarray,
    *,
    dark: np.ndarray | None = None,
    flat: np.ndarray | None = None,
    i0: np.ndarray | None = None,
    mode: Mode = "transmission",
    settings: AnalysisSettings | dict | None = None,
    shifts: np.ndarray | None = None,
    apply_shifts: np.ndarray | None = None,
    energy_units: Units = "auto",
) -> NormalizedStack:
    """Edge-normalized spectra ``(mu - pre_edge_line) / edge_step`` of every pixel, every energy.

    Arguments are those of :func:`~xanes_stream.pipeline.analyze.analyze`. ``shifts`` means the
    frames
    are already registered (as in analyze); ``apply_shifts`` (n_frames, 2), e.g. ``Maps.shifts``,
    moves the corrected frames by these translations instead of registering them again.
    Otherwise frames are registered when ``settings.registration`` asks for it.

    The result's ``edge_step`` equals analyze's ``thickness`` map, its ``pre_edge`` is each
    pixel's pre-edge line at E0; ``mask`` is the pixels whose
    edge step is above Otsu's threshold (or ``settings.mask.thickness_threshold``). Pixels with
    more than ``settings.max_bad_fraction`` non-finite values or no edge step are NaN.

    Parameters
    ----------
    frames, energies, dark, flat, i0, mode, settings, shifts
        As for :func:`~xanes_stream.pipeline.analyze.analyze`.
    apply_shifts : numpy.ndarray, optional
        (n_frames, 2) translations to apply instead of registering.
    energy_units : {"auto", "eV", "keV"}
        The unit of ``energies`` (:func:`~xanes_stream.spectra.energies.to_ev`).

    Returns
    -------
    NormalizedStack
    """
    settings = load_settings(settings)
    frames, energies = check_inputs(frames, energies, dark, flat, i0, mode)
    energies = to_ev(energies, energy_units)
    n_raw, ny, nx = frames.shape
    corrections = (dark, flat, i0)
    # the same frames, sample and order as analyze takes
    selected = select_frames(frames, energies, corrections, mode, settings.mask.seed)
    order, unique = selected.order, selected.unique
    if unique.size < 5:
        raise AnalysisError(
            f"{unique.size} distinct usable energies; edge normalization needs at least 5 "
            "(analyze() maps a few-energy scan by the two-energy method)"
        )

    aligned = None
    register = settings.registration.method != "none" and shifts is None
    if apply_shifts is not None or register:
        aligned = corrected_stack(frames, order, corrections, mode)
        if apply_shifts is not None:
            moves = np.asarray(apply_shifts, dtype=float)
            if moves.shape != (n_raw, 2):
                raise AnalysisError(f"apply_shifts must be ({n_raw}, 2), got {moves.shape}")
            for position, index in enumerate(order):
                aligned[position] = shift_frame(aligned[position], moves[index])
        else:
            aligned, _ = register_frames(aligned, settings.registration)
    source = source_of(frames, selected, corrections, mode, aligned)
    del aligned

    placeholder = Reference("edge", unique, np.clip(np.arange(unique.size), 0, 1), True)
    plan = make_plan(settings, [placeholder], selected, source)
    operator = plan.operator
    x = (unique - operator.windows.e0) / _SCALE
    line = np.stack([np.ones_like(x), x], axis=1).astype(np.float32)  # pre-edge line, all energies
    coefficients = operator.coefficients.astype(np.float32)
    touched = np.zeros(unique.size, dtype=bool)  # energies the normalization reads
    touched[larch_rows(unique, operator.windows.pre)] = True
    touched[larch_rows(unique, operator.windows.post)] = True

    alpha = scan_alpha(settings.self_absorption, mode, unique)[0]
    spectra = np.empty((unique.size, ny, nx), dtype=np.float32)
    step_map = np.empty((ny, nx), dtype=np.float32)
    pre_map = np.empty((ny, nx), dtype=np.float32)  # the pre-edge line at E0 (x = 0)
    flat_spectra = spectra.reshape(unique.size, -1)
    rows_per_block = max(1, settings.block_pixels // nx)
    for start in range(0, ny, rows_per_block):
        rows = slice(start, min(start + rows_per_block, ny))
        mu = np.array(block_mu(source.frames, rows, plan, source.corrections), dtype=np.float32)
        bad = fill_bad(mu)
        if alpha is not None:  # as analyze: corrected for self-absorption, normalized again
            mu = corrected_block(mu, operator, alpha)
            bad += fill_bad(mu)
        linear = coefficients @ mu
        step = linear[2]
        valid = (bad <= settings.max_bad_fraction * mu.shape[0]) & np.isfinite(step) & (step != 0)
        valid &= np.isfinite(linear[:2]).all(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            normalized = (mu - line @ linear[:2]) / step
        pixels = slice(rows.start * nx, rows.stop * nx)
        flat_spectra[:, pixels] = np.where(valid, normalized, np.nan)
        step_map[rows] = np.where(valid, step, np.nan).reshape(-1, nx)
        pre_map[rows] = np.where(valid, linear[0], np.nan).reshape(-1, nx)

    threshold = settings.mask.thickness_threshold
    if threshold is None:
        threshold = otsu_threshold(step_map)
    with np.errstate(invalid="ignore"):
        mask = step_map > threshold
    return NormalizedStack(
        energies=unique,
        spectra=spectra,
        e0=float(operator.windows.e0),
        edge_step=step_map,
        mask=mask,
        pre_edge=pre_map,
    )
