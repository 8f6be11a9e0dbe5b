"""``analyze``: the one entry point from an energy stack to chemical maps (arrays in, Maps out).

The stack is processed in blocks of rows; each block goes through correction, edge
normalization, the fit and every per-pixel map while it is in cache, so memory stays bounded
(a few blocks beyond the input and the maps) and the stack is read once. The frames' checks,
correction and registration are in :mod:`~xanes_stream.pipeline.frames`, the plan of the
block pass in :mod:`~xanes_stream.pipeline.plan`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
from threadpoolctl import threadpool_limits

from xanes_stream import __version__
from xanes_stream.errors import AnalysisError
from xanes_stream.imaging.shift import bilinear_noise
from xanes_stream.pipeline.few_energy import few_energy_maps
from xanes_stream.pipeline.frames import (
    average_groups,
    check_inputs,
    corrected_stack,
    fill_bad,
    register_frames,
    select_frames,
    source_of,
)
from xanes_stream.pipeline.plan import Plan, block_mu, make_plan
from xanes_stream.pipeline.results import Maps
from xanes_stream.pipeline.settings import AnalysisSettings, load_settings
from xanes_stream.spectra.energies import in_kev, to_ev
from xanes_stream.spectra.features import edge_energy, peak_energy
from xanes_stream.spectra.fit import solve
from xanes_stream.spectra.masks import kmeans_clusters, quality_mask
from xanes_stream.spectra.references import Reference, looks_normalized
from xanes_stream.spectra.two_energy import estimate_od_noise

Mode = Literal["transmission", "fluorescence", "absorbance"]
ReferencesLike = Sequence[Reference] | Mapping[str, Reference | tuple[np.ndarray, np.ndarray]]
Progress = Callable[[str, int, int], None]  # (stage, done, total)

_BLOCK_MAPS = ("thickness", "error", "r_factor", "chi2_red", "edge_energy", "peak_energy")
_WORKERS = 2


def as_references(references: ReferencesLike) -> list[Reference]:
    """The references as a list of :class:`~xanes_stream.spectra.references.Reference`.

    Parameters
    ----------
    references : sequence or mapping
        Reference objects, or a mapping name -> Reference or (energy, mu); energies in eV
        or keV (the unit rule of :func:`~xanes_stream.spectra.energies.to_ev`).

    Returns
    -------
    list of Reference
        Named by the mapping's keys where a mapping is given.
    """
    if not isinstance(references, Mapping):
        return list(references)
    out = []
    for name, value in references.items():
        if isinstance(value, Reference):
            out.append(
                value
                if value.name == name
                else Reference(
                    name, value.energy, value.mu, value.normalized, value.source, value.metadata
                )
            )
        else:
            energy, mu = value
            energy = to_ev(energy)
            out.append(Reference(name, energy, mu, looks_normalized(energy, np.asarray(mu))))
    return out


def analyze(
    frames: np.ndarray,
    energies: np.ndarray,
    references: ReferencesLike,
    *,
    dark: np.ndarray | None = None,
    flat: np.ndarray | None = None,
    i0: np.ndarray | None = None,
    mode: Mode = "transmission",
    settings: AnalysisSettings | dict | None = None,
    shifts: np.ndarray | None = None,
    progress: Progress | None = None,
) -> Maps:
    """Chemical maps of an energy stack.

    Parameters
    ----------
    frames : (n_energy, ny, nx) array of images, any real dtype.
    energies : (n_energy,) in eV or keV (detected).
    references : Reference objects, or a mapping name -> Reference or (energy, mu).
    dark, flat : (ny, nx) or (n_energy, ny, nx); applied as (I - dark) / (flat - dark).
    i0 : (n_energy,) incident intensity, divided out in transmission and fluorescence (see
        :mod:`xanes_stream.imaging.correct` for what it means in each mode).
    mode : ``transmission`` takes -ln; ``fluorescence`` and ``absorbance`` do not.
    settings : :class:`AnalysisSettings` or a dict of them.
    shifts : (n_energy, 2) already applied to the frames (e.g. registered live); reported as is.
    progress : called as ``progress(stage, done, total)`` as frames register and blocks finish.

    Non-finite or non-positive values are masked: filled from neighbouring energies, and pixels
    with more than ``settings.max_bad_fraction`` of them become NaN in every map.
    """
    started = time.perf_counter()
    settings = load_settings(settings)
    frames, energies = check_inputs(frames, energies, dark, flat, i0, mode)
    refs = as_references(references)
    if not refs:
        raise AnalysisError("at least one reference spectrum is needed")
    notes: list[str] = []
    if in_kev(energies):
        notes.append("energies given in keV; converted to eV")
    energies = to_ev(energies)
    n_raw, ny, nx = frames.shape
    timings: dict[str, float] = {}
    corrections = (dark, flat, i0)

    # Which frames are usable, in what order, and the registration if asked for.
    selected = select_frames(frames, energies, corrections, mode, settings.mask.seed)
    order, unique, starts, counts = (
        selected.order,
        selected.unique,
        selected.starts,
        selected.counts,
    )
    dropped = selected.dropped
    if dropped.size:
        notes.append(
            "dropped frames with mostly non-finite or non-positive values at "
            + ", ".join(f"{energies[i]:.2f} eV" for i in dropped)
        )
    if np.any(np.diff(energies) < 0):
        notes.append("energies were not increasing; frames sorted by energy")
    if np.any(counts > 1):
        notes.append(f"{int((counts > 1).sum())} energies measured more than once; averaged")
    out_shifts = np.zeros((n_raw, 2)) if shifts is None else np.asarray(shifts, dtype=float)
    register = settings.registration.method != "none" and shifts is None
    if unique.size < 2:
        raise AnalysisError(
            f"{unique.size} usable energies: chemical maps need at least two (E1 and E2)"
        )
    if unique.size < 5:  # too few to edge-normalize: the two-energy method
        t0 = time.perf_counter()
        od = corrected_stack(frames, order, corrections, mode)
        noise = estimate_od_noise(od)
        if register and order.size > 1:
            od, out_shifts[order] = register_frames(od, settings.registration, progress)
        # bilinear shifts lower each pixel's noise, and hide it from the estimate if made after
        gain, seen = bilinear_noise(out_shifts[order])
        noise *= gain if register else gain / seen
        noise = np.sqrt(np.add.reduceat(noise**2, starts)) / counts
        od = average_groups(od, starts, counts)
        registered = bool(np.any(out_shifts))
        maps = few_energy_maps(od, unique, refs, settings, od_noise=noise, registered=registered)
        maps.shifts = out_shifts
        maps.metadata.update(mode=mode, dropped_energies=[float(energies[i]) for i in dropped])
        maps.metadata["notes"] = notes + maps.metadata["notes"]
        maps.metadata["shape"] = [n_raw, ny, nx]
        maps.metadata["timings"] = {"total": time.perf_counter() - t0}
        return maps

    aligned = None
    if register:
        t0 = time.perf_counter()
        aligned, out_shifts[order] = register_frames(
            corrected_stack(frames, order, corrections, mode), settings.registration, progress
        )
        timings["registration"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    source = source_of(frames, selected, corrections, mode, aligned)
    plan = make_plan(settings, refs, selected, source)
    sample_mu = source.sample_mu
    timings["planning"] = time.perf_counter() - t0

    # The main pass, block by block.
    t0 = time.perf_counter()
    k = plan.basis.shape[1]
    q = plan.pca_pre.shape[0]
    # every pixel is written by exactly one block: no need to pre-fill
    out = {
        "fractions": np.empty((k, ny, nx), dtype=np.float32),
        **{name: np.empty((ny, nx), dtype=np.float32) for name in _BLOCK_MAPS},
        "valid": np.empty((ny, nx), dtype=bool),
        "features": np.empty((q, ny * nx), dtype=np.float32),  # component-major
    }
    rows_per_block = max(1, settings.block_pixels // nx)
    blocks = [slice(r, min(r + rows_per_block, ny)) for r in range(0, ny, rows_per_block)]
    done = 0

    def run(rows: slice) -> None:
        _analyze_block(source.frames, rows, plan, source.corrections, settings, out)

    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(_WORKERS) as pool:
        for _ in pool.map(run, blocks):
            done += 1
            if progress is not None:
                progress("fit", done, len(blocks))
    timings["fit_and_maps"] = time.perf_counter() - t0

    # Whole-image steps: mask, clusters, mean spectrum.
    t0 = time.perf_counter()
    valid = out["valid"]
    mask, t_thr, r_thr = quality_mask(
        np.where(valid, out["thickness"], np.nan),
        np.where(valid, out["r_factor"], np.nan),
        thickness_threshold=settings.mask.thickness_threshold,
        r_factor_threshold=settings.mask.r_factor_threshold,
    )
    mask &= valid
    clusters = kmeans_clusters(
        out["features"],
        mask.ravel(),
        settings.mask.n_clusters,
        order_by=out["edge_energy"].ravel(),
        seed=settings.mask.seed,
    ).reshape(ny, nx)
    mean_spectrum, mean_fit = _mean_spectrum(
        plan, sample_mu, mask[selected.sample_y, selected.sample_x], settings
    )
    timings["mask_and_clusters"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - started

    invalid = int((~valid).sum())
    if invalid:
        notes.append(f"{invalid} pixels had too many bad values or a zero edge step; set to NaN")
    metadata = {
        "software": "xanes-stream",
        "version": __version__,
        "method": "fit",
        "mode": mode,
        "references": [r.name for r in refs],
        "reference_sources": {r.name: r.source for r in refs},
        "settings": settings.model_dump(mode="json"),
        "normalization": plan.operator.windows.as_dict(),
        "thresholds": {"thickness": t_thr, "r_factor": r_thr},
        "dropped_energies": [float(energies[i]) for i in dropped],
        "timings": timings,
        "notes": notes,
        "shape": [n_raw, ny, nx],
    }
    return Maps(
        reference_names=[r.name for r in refs],
        fractions=out["fractions"],
        thickness=out["thickness"],
        error=out["error"],
        r_factor=out["r_factor"],
        chi2_red=out["chi2_red"],
        edge_energy=out["edge_energy"],
        peak_energy=out["peak_energy"],
        mask=mask,
        clusters=clusters,
        shifts=out_shifts,
        energies=unique,
        mean_spectrum=mean_spectrum,
        mean_fit=mean_fit,
        fit_energies=plan.operator.fit_energy,
        metadata=metadata,
    )


def _analyze_block(source, rows: slice, plan: Plan, corrections, settings, out) -> None:
    """Every per-pixel map of the rows ``rows``, written into ``out``."""
    mu = block_mu(source, rows, plan, corrections)
    with np.errstate(invalid="ignore", over="ignore"):
        linear = plan.functionals @ mu
    bad = np.zeros(mu.shape[1], dtype=np.int64)
    # The sentinel row sums every energy a map reads: finite means nothing needs filling.
    if not np.isfinite(linear[-1]).all():
        mu = np.array(mu)  # never fill bad values in the caller's array
        bad = fill_bad(mu)
        linear = plan.functionals @ mu
    k = plan.k
    fit = plan.operator.fit_index
    n_fit = plan.model.shape[0]
    pre, step = linear[:2], linear[2]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inverse_step = 1.0 / step
        h = (linear[3 : 3 + k] - plan.basis_pre @ pre) * inverse_step
        coefficients = solve(
            plan.gram,
            h,
            settings.fit.method,
            sum_to_one=settings.fit.sum_to_one == "constrain",
            admm_iterations=settings.fit.admm_iterations,
            admm_rho=settings.fit.admm_rho,
        ).astype(np.float32, copy=False)
        rss = _residual_sum_of_squares(mu[fit], plan.model, np.vstack([pre, coefficients * step]))
        rss *= inverse_step**2
        gram_c = plan.gram.astype(np.float32) @ coefficients
        total = rss + np.einsum("kp,kp->p", coefficients, 2 * h - gram_c)  # ||normalized||^2
        valid = (bad <= settings.max_bad_fraction * mu.shape[0]) & np.isfinite(step) & (step != 0)
        valid &= np.all(np.isfinite(coefficients), axis=0)
        if settings.fit.sum_to_one == "normalize":
            coefficients = coefficients / coefficients.sum(axis=0)  # NaN where nothing fits
        noise = _pre_edge_noise(mu, pre, step, plan)
        maps = {
            "thickness": step,
            "error": np.sqrt(rss / n_fit),
            "r_factor": rss / total,
            "chi2_red": rss / (max(n_fit - k, 1) * noise),
            "edge_energy": _edge_energy(mu, pre, inverse_step, plan, settings),
            "peak_energy": _peak_energy(mu, pre, plan),
        }
        features = (linear[3 + k : -1] - plan.pca_pre @ pre) * inverse_step
        features -= plan.pca_offset[:, None]
    ny_b = rows.stop - rows.start
    shape = (ny_b, mu.shape[1] // ny_b)
    for name, values in maps.items():
        out[name][rows] = np.where(valid, values, np.nan).reshape(shape)
    out["fractions"][:, rows] = np.where(valid, coefficients, np.nan).reshape((k, *shape))
    out["valid"][rows] = valid.reshape(shape)
    start = rows.start * shape[1]
    out["features"][:, start : start + mu.shape[1]] = np.where(valid, features, np.nan)


def _residual_sum_of_squares(mu: np.ndarray, model: np.ndarray, z: np.ndarray) -> np.ndarray:
    """sum((mu - model @ z)^2) per pixel, in chunks of energies that stay in cache."""
    rss = np.zeros(mu.shape[1], dtype=np.float32)
    for start in range(0, mu.shape[0], 32):
        part = model[start : start + 32] @ z
        np.subtract(mu[start : start + 32], part, out=part)
        rss += np.einsum("ep,ep->p", part, part)
    return rss


def _window_normalized(mu, pre, inverse_step, plan: Plan, window) -> tuple[np.ndarray, slice]:
    """Normalized spectra on the fit energies inside ``window`` (plus one energy each side)."""
    energy = plan.operator.fit_energy
    inside = np.flatnonzero((energy >= window[0]) & (energy <= window[1]))
    if inside.size == 0:
        return np.empty((0, mu.shape[1]), dtype=np.float32), slice(0, 0)
    local = slice(max(inside[0] - 1, 0), min(inside[-1] + 2, energy.size))
    fit = plan.operator.fit_index
    rows = slice(fit.start + local.start, fit.start + local.stop)
    values = mu[rows] - plan.model[local, :2] @ pre
    if inverse_step is not None:
        values *= inverse_step
    return values, local


def _edge_energy(mu, pre, inverse_step, plan: Plan, settings) -> np.ndarray:
    """E0 per pixel. The derivative's maximum does not depend on the pre-edge line or a
    positive step, so that method works on mu minus the line, unscaled."""
    method = settings.features.edge_method
    if method == "half_height":
        values, local = _window_normalized(mu, pre, inverse_step, plan, plan.edge_window)
        return edge_energy(values, plan.operator.fit_energy[local], plan.edge_window, method)
    # the derivative's maximum needs no pre-edge line: it works on mu as it is
    return edge_energy(
        mu[plan.operator.fit_index],
        plan.operator.fit_energy,
        plan.edge_window,
        operator=plan.derivative,
    )


def _peak_energy(mu, pre, plan: Plan) -> np.ndarray:
    """White line of mu minus the pre-edge line; its offset cannot move a maximum, so only
    the slope is subtracted."""
    energy = plan.operator.fit_energy
    inside = np.flatnonzero((energy >= plan.peak_window[0]) & (energy <= plan.peak_window[1]))
    if inside.size == 0:
        return np.full(mu.shape[1], np.nan, dtype=np.float32)
    local = slice(max(inside[0] - 1, 0), min(inside[-1] + 2, energy.size))
    fit = plan.operator.fit_index
    x = plan.model[local, 1]  # scaled energy of the pre-edge line
    values = mu[fit.start + local.start : fit.start + local.stop] - np.multiply.outer(x, pre[1])
    return peak_energy(values, energy[local], plan.peak_window)


def _pre_edge_noise(mu: np.ndarray, pre: np.ndarray, step: np.ndarray, plan: Plan) -> np.ndarray:
    """Variance of normalized spectra, estimated from the scatter about the pre-edge line."""
    rows = plan.pre_rows
    if rows.size < 4:
        return np.full(mu.shape[1], np.nan, dtype=np.float32)
    x = (plan.energies[rows] - plan.operator.windows.e0) / 100.0
    design = np.stack([np.ones_like(x), x], axis=1).astype(np.float32)
    residual = mu[rows[0] : rows[-1] + 1] - design @ pre
    return np.einsum("ep,ep->p", residual, residual) / ((rows.size - 2) * step * step)


def _mean_spectrum(plan: Plan, sample_mu, sample_mask, settings) -> tuple[np.ndarray, np.ndarray]:
    """Mean normalized spectrum of the masked sample pixels and its fit."""
    columns = sample_mu[:, sample_mask] if sample_mask.any() else sample_mu
    spectra, _ = plan.operator.apply(np.nanmean(columns, axis=1, keepdims=True).astype(np.float32))
    h = plan.basis.T @ spectra.astype(np.float64)
    c = solve(plan.gram, h, settings.fit.method, sum_to_one=settings.fit.sum_to_one == "constrain")
    return spectra[:, 0].astype(np.float32), (plan.basis @ c)[:, 0].astype(np.float32)
