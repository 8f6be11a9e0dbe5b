"""``analyze``: the one entry point from an energy stack to chemical maps (arrays in, Maps out).

The stack is processed in blocks of rows; each block goes through correction, edge
normalization, the fit and every per-pixel map while it is in cache, so memory stays bounded
(a few blocks beyond the input and the maps) and the stack is read once. The frames' checks,
correction and registration are in :mod:`~xanes_stream.pipeline.frames`, the plan of the
block pass in :mod:`~xanes_stream.pipeline.plan`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
from threadpoolctl import threadpool_limits

from xanes_stream import __version__
from xanes_stream.errors import AnalysisError
from xanes_stream.imaging.shift import bilinear_noise, unseen_fraction
from xanes_stream.pipeline.calibration import calibrate_references
from xanes_stream.pipeline.denoising import denoise_block, despike_frames, plan_denoising
from xanes_stream.pipeline.error_plan import error_plan
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
from xanes_stream.pipeline.fused import (
    FusedTables,
    fused_block_maps,
    fused_tables,
    load_fused_kernel,
)
from xanes_stream.pipeline.model_choice import fit_model
from xanes_stream.pipeline.od_fit import background_plan, fit_optical_density
from xanes_stream.pipeline.plan import Plan, block_columns, block_mu, make_plan
from xanes_stream.pipeline.results import Maps
from xanes_stream.pipeline.self_absorption import corrected_block, scan_alpha
from xanes_stream.pipeline.settings import AnalysisSettings, load_settings
from xanes_stream.spectra.energies import Units, in_kev, to_ev
from xanes_stream.spectra.features import edge_energy, peak_energy
from xanes_stream.spectra.fit import solve
from xanes_stream.spectra.masks import (
    kmeans_clusters,
    otsu_r_factor,
    quality_mask,
    snr_mask,
    well_measured,
)
from xanes_stream.spectra.references import Reference, looks_normalized
from xanes_stream.spectra.two_energy import estimate_od_noise

Mode = Literal["transmission", "fluorescence", "absorbance"]
ReferencesLike = Sequence[Reference] | Mapping[str, Reference | tuple[np.ndarray, np.ndarray]]
Progress = Callable[[str, int, int], None]  # (stage, done, total)

_BLOCK_MAPS = ("thickness", "error", "r_factor", "chi2_red", "edge_energy", "peak_energy")
#: The maps a fit makes of each pixel, NaN outside the mask by default (``mask.outside``)
_FITTED_MAPS = ("error", "r_factor", "chi2_red", "edge_energy", "peak_energy")
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


@dataclass(frozen=True)
class RowTask:
    """Everything a block of image rows needs besides its frames, so that blocks can be
    analysed anywhere (a thread here, a Dask worker): call it as ``task(block, rows)``.

    ``block`` is ``(n_source, n_rows, nx)``, the source frames (raw, or corrected and
    aligned) of the image rows ``rows``; the result is each per-pixel map of those rows, as
    :func:`analyze` writes them (``features`` for the clusters, ``valid`` too).
    """

    plan: Plan
    corrections: tuple
    settings: AnalysisSettings
    weights: np.ndarray | None
    alpha: float | None = None  # the self-absorption correction's (None: not corrected)
    fused: FusedTables | None = None  # the fused pass's tables (None: the numpy pass)

    def __call__(self, block: np.ndarray, rows: slice) -> dict[str, np.ndarray]:
        n_rows, nx = block.shape[1], block.shape[2]
        dark, flat, i0 = self.corrections
        corrections = (_rows_of(dark, rows), _rows_of(flat, rows), i0)
        out = _empty_maps(self.plan, n_rows, nx, self.settings)
        _analyze_block(
            block,
            slice(0, n_rows),
            self.plan,
            corrections,
            self.settings,
            out,
            self.weights,
            self.alpha,
            self.fused,
        )
        return out


#: Runs a :class:`RowTask` over blocks of rows elsewhere (e.g. a Dask cluster): called as
#: ``blocks(task, frames, row_blocks)``, it yields ``(rows, result)`` as each block finishes.
BlockRunner = Callable[[RowTask, object, list[slice]], Iterable[tuple[slice, dict]]]


def _rows_of(extra, rows: slice):
    """A dark or flat (2-D, or one per frame) cut to the image rows ``rows``."""
    if extra is None:
        return None
    extra = np.asarray(extra)
    return extra[rows] if extra.ndim == 2 else extra[:, rows]


def _empty_maps(plan: Plan, ny: int, nx: int, settings: AnalysisSettings) -> dict[str, np.ndarray]:
    """The arrays the block pass fills (every pixel is written by exactly one block); the edge
    signal-to-noise only for the mask that reads it."""
    errors = (
        {}
        if plan.uncertainty is None
        else {"fraction_errors": np.empty((plan.k, ny, nx), np.float32)}
    )
    return {
        "fractions": np.empty((plan.basis.shape[1], ny, nx), dtype=np.float32),
        **errors,
        **{name: np.empty((ny, nx), dtype=np.float32) for name in _block_maps(settings)},
        "valid": np.empty((ny, nx), dtype=bool),
        "features": np.empty((plan.pca_pre.shape[0], ny * nx), dtype=np.float32),
    }


def _block_maps(settings: AnalysisSettings) -> tuple[str, ...]:
    """The per-pixel maps the block pass makes."""
    snr = ("edge_jump", "edge_snr")
    return (*_BLOCK_MAPS, *snr) if settings.mask.method == "snr" else _BLOCK_MAPS


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
    noise: np.ndarray | None = None,
    blocks: BlockRunner | None = None,
    energy_offset: float | None = None,
    energy_units: Units = "auto",
) -> Maps:
    """Chemical maps of an energy stack.

    Parameters
    ----------
    frames : (n_energy, ny, nx) array of images, any real dtype.
    energies : (n_energy,) in ``energy_units``.
    energy_units : {"auto", "eV", "keV"}
        The unit of ``energies``; ``"auto"`` lets the values tell it where they can
        (:func:`~xanes_stream.spectra.energies.in_kev`: an error for 20-200).
    references : Reference objects, or a mapping name -> Reference or (energy, mu).
    dark, flat : (ny, nx) or (n_energy, ny, nx); applied as (I - dark) / (flat - dark).
    i0 : (n_energy,) incident intensity, divided out in transmission and fluorescence (see
        :mod:`xanes_stream.imaging.correct` for what it means in each mode).
    mode : ``transmission`` takes -ln; ``fluorescence`` and ``absorbance`` do not.
    settings : :class:`AnalysisSettings` or a dict of them.
    shifts : (n_energy, 2) already applied to the frames (e.g. registered live); reported as is.
    progress : called as ``progress(stage, done, total)`` as frames register and blocks finish.
    noise : (n_energy,) the measured standard error (sigma) of each frame's absorption, as
        the frames are given (e.g. the live accumulator's, from several exposures per
        energy). When every usable frame's is finite and positive, ``chi2_red`` is
        ``sum_E ((mu_E - model_E) / sigma_E)^2 / dof`` over the fit energies, ``dof`` the
        value noise alone gives that sum (the pre-edge line's noise included: 1 for the true
        sigma); otherwise (or None) it uses the scatter about each pixel's pre-edge line. It changes
        nothing else of the fit; the two-energy method (fewer than 5 energies) keeps its own
        noise estimate.
    blocks : runs the block pass elsewhere (see :data:`BlockRunner`, e.g. on a Dask cluster);
        None: two threads of this process. The maps are the same either way.
    energy_offset : eV added to the scan's energies before anything else (a foil's known
        minus measured E0, :func:`~xanes_stream.spectra.calibration.foil_energy_offset`);
        recorded as ``metadata["energy_shifts"]["foil"]``. ``settings.fit.energy_shift``
        then fits the references' own shifts (:mod:`~xanes_stream.pipeline.calibration`).

    Non-finite or non-positive values are masked: filled from neighbouring energies, and pixels
    with more than ``settings.max_bad_fraction`` of them become NaN in every map.
    """
    settings = load_settings(settings)
    if settings.compute.kernel == "fused":
        load_fused_kernel()  # its BLAS (SciPy's) is loaded before the limit below is set
    # One BLAS thread throughout: the planning's products are small (100 x 16,384), and the
    # block pass runs its own threads; BLAS's threads only spin on a busy machine (0.02 s of
    # planning became 0.7 s beside another process).
    with threadpool_limits(limits=1, user_api="blas"):
        return _analyze(
            frames,
            energies,
            references,
            dark=dark,
            flat=flat,
            i0=i0,
            mode=mode,
            settings=settings,
            shifts=shifts,
            progress=progress,
            noise=noise,
            blocks=blocks,
            energy_offset=energy_offset,
            energy_units=energy_units,
        )


def _analyze(
    frames,
    energies,
    references,
    *,
    dark,
    flat,
    i0,
    mode,
    settings,
    shifts,
    progress,
    noise,
    blocks,
    energy_offset,
    energy_units,
) -> Maps:
    """:func:`analyze`'s work, its arguments as :func:`analyze` takes them."""
    started = time.perf_counter()
    settings = load_settings(settings)
    frames, energies = check_inputs(frames, energies, dark, flat, i0, mode)
    refs = as_references(references)
    if not refs:
        raise AnalysisError("at least one reference spectrum is needed")
    notes: list[str] = []
    frames, denoised = despike_frames(frames, settings, notes)
    if energy_units == "keV" or (energy_units == "auto" and in_kev(energies)):
        notes.append("energies given in keV; converted to eV")
    energies = to_ev(energies, energy_units)
    energy_shifts = {} if energy_offset is None else {"foil": float(energy_offset)}
    if energy_offset is not None:
        energies = energies + float(energy_offset)
        notes.append(f"energies moved by {float(energy_offset):+.2f} eV (foil calibration)")
    n_raw, ny, nx = frames.shape
    if noise is not None:
        noise = np.asarray(noise, dtype=np.float64).reshape(-1)
        if noise.size != n_raw:
            raise AnalysisError(
                f"noise has {noise.size} values for {n_raw} frames: give one per frame"
            )
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
        if settings.fit.energy_shift != "none":
            notes.append("fit.energy_shift needs 5 or more energies: not applied")
        t0 = time.perf_counter()
        if settings.denoise.components is not None:
            notes.append("no PCA denoising: fewer than 5 energies have too few components")
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
        if settings.self_absorption.enabled:
            notes.append(
                "self-absorption not corrected: the two-energy method of a few-energy scan has "
                "no edge normalization to correct"
            )
        maps.metadata["notes"] = notes + maps.metadata["notes"]
        maps.metadata["shape"] = [n_raw, ny, nx]
        if energy_shifts:
            maps.metadata["energy_shifts"] = energy_shifts
        maps.metadata["timings"] = {"total": time.perf_counter() - t0}
        if denoised:
            maps.metadata["denoise"] = denoised
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
    refs, fitted_shifts = calibrate_references(settings, refs, selected, source, notes, out_shifts)
    energy_shifts.update(fitted_shifts)
    plan = make_plan(settings, refs, selected, source)
    model, model_evidence = fit_model(plan, settings, source.sample_mu, notes)
    if model == "optical_density":
        plan = dataclasses.replace(plan, background=background_plan(plan, settings))
    sample_mu = source.sample_mu
    plan, pca = plan_denoising(plan, settings, sample_mu, notes)
    denoised.update(pca)
    variance = _measured_variance(noise, selected, out_shifts if register else None, notes)
    weights = _chi2_weights(variance, plan, notes)
    if settings.fit.errors:
        plan = dataclasses.replace(plan, uncertainty=error_plan(plan, settings, variance))
    alpha, absorption, note = scan_alpha(settings.self_absorption, mode, unique)
    if note:
        notes.append(note)
    fused = fused_tables(plan, settings, weights, alpha)
    timings["planning"] = time.perf_counter() - t0

    # The main pass, block by block.
    t0 = time.perf_counter()
    out = _empty_maps(plan, ny, nx, settings)
    rows_per_block = max(1, settings.block_pixels // nx)
    row_blocks = [slice(r, min(r + rows_per_block, ny)) for r in range(0, ny, rows_per_block)]
    if blocks is None:

        def run(rows: slice) -> slice:
            _analyze_block(
                source.frames, rows, plan, source.corrections, settings, out, weights, alpha, fused
            )
            return rows

        with ThreadPoolExecutor(_WORKERS) as pool:  # one BLAS thread each (see analyze)
            for done, _ in enumerate(pool.map(run, row_blocks), 1):
                if progress is not None:
                    progress("fit", done, len(row_blocks))
    else:
        task = RowTask(plan, source.corrections, settings, weights, alpha, fused)
        for done, (rows, result) in enumerate(blocks(task, source.frames, row_blocks), 1):
            _store_rows(out, rows, result, nx)
            if progress is not None:
                progress("fit", done, len(row_blocks))
    timings["fit_and_maps"] = time.perf_counter() - t0

    # Whole-image steps: mask, clusters, mean spectrum.
    t0 = time.perf_counter()
    valid = out["valid"]
    if "edge_snr" in out and plan.pre_rows.size < 4:
        _cap_residual_noise(out)
    mask, thresholds = _sample_mask(out, settings.mask, notes)
    mask &= valid
    # where registration moved a pixel in from outside the field, the edge repeats in those
    # frames: a border pixel can look like a thick particle (a particle's edge repeated). Such
    # a pixel stays sample only if its spectrum still fits: an R-factor under Otsu's threshold
    unseen = unseen_fraction(out_shifts[selected.order], (ny, nx)) > 0
    if unseen.any():
        misfit = mask & unseen & ~(out["r_factor"] < otsu_r_factor(out["r_factor"][valid]))
        if misfit.any():
            mask &= ~misfit
            notes.append(
                f"mask: {int(misfit.sum())} pixels at the border left out (registration moved "
                "them in from outside the field in some frames, and they do not fit)"
            )
    unfitted = mask & ~np.all(np.isfinite(out["fractions"]), axis=0)
    if unfitted.any():  # an edge, but every reference's amount 0: no fractions to show
        mask &= ~unfitted
        notes.append(f"mask: {int(unfitted.sum())} pixels left out: no reference fits them")
    # with the signal-to-noise mask (thin pixels kept), the centres come from its
    # better-measured half, so thin pixels' noise makes no clusters of its own; every masked
    # pixel then gets its nearest centre
    snr = thresholds["method"] == "snr"
    clusters = kmeans_clusters(
        out["features"],
        mask.ravel(),
        settings.mask.n_clusters,
        order_by=out["edge_energy"].ravel(),
        fit_on=well_measured(out["edge_snr"], mask).ravel() if snr else None,
        seed=settings.mask.seed,
    ).reshape(ny, nx)
    mean_spectrum, mean_fit, mean_components = _mean_spectrum(
        plan,
        [r.name for r in refs],
        sample_mu,
        mask[selected.sample_y, selected.sample_x],
        settings,
        alpha,
    )
    timings["mask_and_clusters"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - started

    invalid = int((~valid).sum())
    if invalid:
        notes.append(f"{invalid} pixels had too many bad values or a zero edge step; set to NaN")
    if settings.mask.outside == "nan":
        _blank_outside(out, mask)
    metadata = {
        "software": "xanes-stream",
        "version": __version__,
        "method": "fit",
        "mode": mode,
        "references": [r.name for r in refs],
        "reference_sources": {r.name: r.source for r in refs},
        "settings": settings.model_dump(mode="json"),
        "normalization": plan.operator.windows.as_dict(),
        "fit_model": {"model": model, **model_evidence},
        "kernel": "numpy" if fused is None else "fused",
        "thresholds": thresholds,
        "dropped_energies": [float(energies[i]) for i in dropped],
        "timings": timings,
        "notes": notes,
        "shape": [n_raw, ny, nx],
    }
    if energy_shifts:
        metadata["energy_shifts"] = energy_shifts
    if absorption is not None:
        metadata["self_absorption"] = absorption
    if mean_components is not None:  # the optical-density model: the page shows these
        metadata["mean_components"] = mean_components
    if denoised:
        metadata["denoise"] = denoised
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
        fraction_errors=out.get("fraction_errors"),
    )


def _sample_mask(out: dict, mask_settings, notes: list[str]) -> tuple[np.ndarray, dict]:
    """The sample pixels (``mask_settings.method``) and the thresholds that drew them."""
    # every map is already NaN where a pixel is not valid (both block passes write it so)
    thickness, r_factor, edge_snr = out["thickness"], out["r_factor"], out.get("edge_snr")
    if edge_snr is not None and np.isfinite(edge_snr).any():
        mask = snr_mask(
            edge_snr,
            thickness,
            mask_settings.min_snr,
            r_factor=r_factor,
            thickness_threshold=mask_settings.thickness_threshold,
            r_factor_threshold=mask_settings.r_factor_threshold,
        )
        return mask, {
            "method": "snr",
            "min_snr": mask_settings.min_snr,
            "thickness": mask_settings.thickness_threshold,
            "r_factor": mask_settings.r_factor_threshold,
        }
    if mask_settings.method == "snr":
        notes.append("mask: Otsu's thresholds (no pixel's edge signal-to-noise could be measured)")
    mask, t_thr, r_thr = quality_mask(
        thickness,
        r_factor,
        thickness_threshold=mask_settings.thickness_threshold,
        r_factor_threshold=mask_settings.r_factor_threshold,
    )
    return mask, {"method": "otsu", "thickness": t_thr, "r_factor": r_thr}


def _cap_residual_noise(out: dict) -> None:
    """With under 4 pre-edge energies a point's noise is the fit's residual, misfit included,
    which grows with the edge: thick pixels' signal-to-noise stays low. Capped at what the
    residual is where there is next to no edge (its median over the quarter of the pixels
    with the smallest jump: noise, next to nothing to misfit; still above the noise, as a
    pre-edge line through 2 or 3 points extrapolates poorly), it is the noise again there
    (``out["edge_snr"]`` in place)."""
    jump, snr = out["edge_jump"], out["edge_snr"]
    with np.errstate(invalid="ignore", divide="ignore"):
        noise = np.abs(jump / snr)
    finite = np.isfinite(noise) & np.isfinite(jump)
    if finite.sum() < 16:
        return
    small = finite & (jump <= np.percentile(jump[finite], 25))
    cap = float(np.median(noise[small]))
    if cap > 0:
        with np.errstate(invalid="ignore"):
            out["edge_snr"] = (jump / np.minimum(noise, cap)).astype(np.float32)


def _blank_outside(out: dict, mask: np.ndarray) -> None:
    """NaN outside ``mask`` in every fitted map of ``out`` (in place)."""
    outside = ~mask
    for name in _FITTED_MAPS:
        out[name][outside] = np.nan
    for name in ("fractions", "fraction_errors"):
        if name in out:
            out[name][:, outside] = np.nan


def _store_rows(out: dict, rows: slice, result: dict, nx: int) -> None:
    """A block's maps (from :class:`RowTask`) written into the whole image's."""
    for name, values in result.items():
        if name == "features":
            out[name][:, rows.start * nx : rows.stop * nx] = values
        elif name in ("fractions", "fraction_errors"):
            out[name][:, rows] = values
        else:
            out[name][rows] = values


def _measured_variance(noise, selected, shifts, notes: list[str]) -> np.ndarray | None:
    """The measured noise variance of mu at each unique energy; None where it is not known
    at every energy (or not given).

    Frames averaged at one energy average their noise; frames the analysis registered
    (``shifts``, (n_raw, 2)) have the noise bilinear interpolation leaves them.
    """
    if noise is None:
        return None
    sigma = noise[selected.order]
    if not np.all(np.isfinite(sigma) & (sigma > 0)):
        if np.any(np.isfinite(sigma)):
            notes.append(
                "chi2_red from the pre-edge scatter: the measured noise is not known at "
                "every energy"
            )
        return None
    if shifts is not None:
        sigma = sigma * bilinear_noise(shifts[selected.order])[0]
    counts = selected.counts
    return np.add.reduceat(sigma**2, selected.starts) / counts**2


def _chi2_weights(variance, plan: Plan, notes: list[str]) -> np.ndarray | None:
    """``1 / (sigma^2 dof)`` on the fit energies from the measured ``variance`` (per unique
    energy); None where the chi-square is to use the pre-edge scatter. ``dof`` is
    :func:`_effective_dof` (or the optical-density model's): what the chi-square of noise
    alone adds up to.
    """
    if variance is None:
        return None
    fit = plan.operator.fit_index
    weights = 1.0 / variance[fit]
    notes.append("chi2_red uses the measured per-energy noise")
    if plan.background is not None:
        dof = plan.background.dof(weights, variance, fit)
    else:
        dof = _effective_dof(plan, weights, variance)
    return (weights / dof).astype(np.float32)


def _effective_dof(plan: Plan, weights: np.ndarray, variance: np.ndarray) -> float:
    """The expected weighted residual sum of squares of noise alone: the chi-square's
    degrees of freedom.

    The model a pixel's mu is compared with is linear in mu (for the unconstrained fit):
    the pre-edge line ``P mu`` (its window's functional, not a fit to the fit energies),
    plus the references' least squares to what is above it,
    ``H = A P + R G^-1 R' (S - A P)`` (``S`` the fit energies, ``A`` the pre-edge line's
    design on them, ``R`` the references, ``G = R'R``). The residual is ``(S - H) mu``, so
    noise of variance ``variance`` (per energy) gives ``sum_f w_f sum_e (S - H)_fe^2
    variance_e``. The pre-edge line's own noise enters every fit energy's residual, so this
    exceeds ``n_fit - k``; with it the chi-square of the true noise is 1.
    """
    fit = plan.operator.fit_index
    n = plan.energies.size
    model = plan.model.astype(np.float64)
    line, refs = model[:, :2], model[:, 2:]
    pre = plan.functionals[:2].astype(np.float64)  # (2, n): the pre-edge line's functional
    select = np.eye(n)[fit]
    above = select - line @ pre
    residual = above - refs @ (np.linalg.pinv(plan.gram) @ (refs.T @ above))
    dof = float(weights @ (residual**2 @ variance))
    return dof if np.isfinite(dof) and dof > 0 else float(max(refs.shape[0] - refs.shape[1], 1))


def _analyze_block(
    source,
    rows: slice,
    plan: Plan,
    corrections,
    settings,
    out,
    weights=None,
    alpha=None,
    fused: FusedTables | None = None,
) -> None:
    """Every per-pixel map of the rows ``rows``, written into ``out``; ``weights`` (n_fit,)
    ``1 / (sigma^2 dof)`` make the chi-square of the measured noise (None: the pre-edge's);
    ``alpha`` (not None) corrects each spectrum for self-absorption first. With ``fused``
    the compiled pass makes them (:mod:`~xanes_stream.pipeline.fused`), else numpy."""
    if fused is not None:
        mu, start, n_pixels = block_columns(source, rows, plan, corrections)
        offset = rows.start * out["valid"].shape[1]
        fused_block_maps(mu, start, n_pixels, fused, out, offset)
        return
    mu = block_mu(source, rows, plan, corrections)
    bad = np.zeros(mu.shape[1], dtype=np.int64)
    if plan.denoise is not None:
        mu, bad = denoise_block(mu, plan.denoise)
    with np.errstate(invalid="ignore", over="ignore"):
        linear = plan.functionals @ mu
    # The sentinel row sums every energy a map reads: finite means nothing needs filling.
    if not np.isfinite(linear[-1]).all():
        mu = np.array(mu)  # never fill bad values in the caller's array
        bad = fill_bad(mu)
        linear = plan.functionals @ mu
    if alpha is not None:  # normalize, correct, and normalize again (as fluo_corr)
        mu = corrected_block(mu, plan.operator, alpha)
        with np.errstate(invalid="ignore", over="ignore"):
            linear = plan.functionals @ mu
        if not np.isfinite(linear[-1]).all():  # values beyond what a thick sample can give
            bad = bad + fill_bad(mu)
            linear = plan.functionals @ mu
    k = plan.k
    fit = plan.operator.fit_index
    n_fit = plan.model.shape[0]
    pre, step = linear[:2], linear[2]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inverse_step = 1.0 / step
        thickness = step
        if plan.background is None:
            h = (linear[3 : 3 + k] - plan.basis_pre @ pre) * inverse_step
            coefficients = solve(
                plan.gram,
                h,
                settings.fit.method,
                sum_to_one=settings.fit.sum_to_one == "constrain",
                admm_iterations=settings.fit.admm_iterations,
                admm_rho=settings.fit.admm_rho,
            ).astype(np.float32, copy=False)
            z = np.vstack([pre, coefficients * step])
            rss, chi2 = _residual_sum_of_squares(mu[fit], plan.model, z, weights)
            rss *= inverse_step**2
            gram_c = plan.gram.astype(np.float32) @ coefficients
            total = rss + np.einsum("kp,kp->p", coefficients, 2 * h - gram_c)  # ||normalized||^2
            free, noise_step = n_fit - k, step
        else:  # the optical-density model: mu = R t + background, see pipeline.od_fit
            coefficients, rss, total, chi2, z = fit_optical_density(
                mu, plan.background, fit, settings, weights, _residual_sum_of_squares
            )
            thickness = coefficients.sum(axis=0)
            free, noise_step = n_fit - k - plan.background.m, np.ones_like(step)
        valid = (bad <= settings.max_bad_fraction * mu.shape[0]) & np.isfinite(step) & (step != 0)
        valid &= np.all(np.isfinite(coefficients), axis=0)
        if plan.uncertainty is not None:
            errors = plan.uncertainty.errors(mu[fit], z, coefficients, step)
        if settings.fit.sum_to_one == "normalize":
            coefficients = coefficients / coefficients.sum(axis=0)  # NaN where nothing fits
        snr = settings.mask.method == "snr"
        if chi2 is None or snr:
            pre_variance = _pre_edge_noise(mu, pre, np.ones_like(step), plan)  # of one point
        if chi2 is None:  # weights carry the measured noise and the dof
            chi2 = rss / (max(free, 1) * pre_variance / (noise_step * noise_step))
        maps = {
            "thickness": thickness,
            "error": np.sqrt(rss / n_fit),
            "r_factor": rss / total,
            "chi2_red": chi2,
            "edge_energy": _edge_energy(mu, pre, inverse_step, plan, settings),
            "peak_energy": _peak_energy(mu, pre, plan),
        }
        if snr:
            variance = _point_variance(pre_variance, rss, noise_step, free, plan)
            maps["edge_jump"] = linear[-2]
            maps["edge_snr"] = linear[-2] / np.sqrt(variance)
        # the clusters' features per unit of edge step: the fitted one in optical density
        # (a scan without a post-edge has no edge step of its own to divide by)
        if plan.background is None:
            scale = inverse_step
        else:
            scale = np.where(thickness > 0, 1.0 / thickness, np.nan)
        features = (linear[3 + k : -2] - plan.pca_pre @ pre) * scale
        features -= plan.pca_offset[:, None]
    ny_b = rows.stop - rows.start
    shape = (ny_b, mu.shape[1] // ny_b)
    for name, values in maps.items():
        out[name][rows] = np.where(valid, values, np.nan).reshape(shape)
    out["fractions"][:, rows] = np.where(valid, coefficients, np.nan).reshape((k, *shape))
    if plan.uncertainty is not None:
        out["fraction_errors"][:, rows] = np.where(valid, errors, np.nan).reshape((k, *shape))
    out["valid"][rows] = valid.reshape(shape)
    start = rows.start * shape[1]
    out["features"][:, start : start + mu.shape[1]] = np.where(valid, features, np.nan)


def _residual_sum_of_squares(
    mu: np.ndarray, model: np.ndarray, z: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """sum((mu - model @ z)^2) per pixel, in chunks of energies that stay in cache, and with
    ``weights`` (per energy) the weighted sum sum(w (mu - model @ z)^2) (else None)."""
    rss = np.zeros(mu.shape[1], dtype=np.float32)
    weighted = None if weights is None else np.zeros(mu.shape[1], dtype=np.float32)
    for start in range(0, mu.shape[0], 32):
        part = model[start : start + 32] @ z
        np.subtract(mu[start : start + 32], part, out=part)
        rss += np.einsum("ep,ep->p", part, part)
        if weighted is not None:
            weighted += weights[start : start + 32] @ (part * part)
    return rss, weighted


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


def _point_variance(pre_variance, rss, noise_step, free: int, plan: Plan) -> np.ndarray:
    """The edge jump's noise variance: one point's (the scatter about the pre-edge line, or,
    with under 4 pre-edge energies, the fit's residual: an upper bound, misfit included)
    times the jump's gain on white noise."""
    if plan.pre_rows.size >= 4:
        return pre_variance * plan.jump_noise_gain
    residual = rss * noise_step * noise_step / max(free, 1)  # in mu, not normalized
    return residual * plan.jump_noise_gain


def _pre_edge_noise(mu: np.ndarray, pre: np.ndarray, step: np.ndarray, plan: Plan) -> np.ndarray:
    """Variance of normalized spectra, estimated from the scatter about the pre-edge line."""
    rows = plan.pre_rows
    if rows.size < 4:
        return np.full(mu.shape[1], np.nan, dtype=np.float32)
    x = (plan.energies[rows] - plan.operator.windows.e0) / 100.0
    design = np.stack([np.ones_like(x), x], axis=1).astype(np.float32)
    residual = mu[rows[0] : rows[-1] + 1] - design @ pre
    return np.einsum("ep,ep->p", residual, residual) / ((rows.size - 2) * step * step)


def _mean_spectrum(
    plan: Plan, names: list[str], sample_mu, sample_mask, settings, alpha=None
) -> tuple[np.ndarray, np.ndarray, dict | None]:
    """The mean spectrum of the masked sample pixels and its fit, in the stack's model.

    The normalized model: the mean normalized spectrum (corrected for self-absorption where
    ``alpha`` is given) and its fit; no components (the page fits them from the references).
    The optical-density model: the mean optical density on the fit energies and its fit
    ``R t + B b``, with ``{"components": {name: t_i ref_i + B b, ..., "background": B b},
    "fractions": {name: t_i / sum t}}`` (lists, for the metadata)."""
    columns = sample_mu[:, sample_mask] if sample_mask.any() else sample_mu
    mean = np.nanmean(columns, axis=1, keepdims=True).astype(np.float32)
    if alpha is not None:
        mean = corrected_block(mean, plan.operator, alpha)
    if plan.background is not None:
        fit = plan.operator.fit_index
        t, _, _, _, z = fit_optical_density(
            mean, plan.background, fit, settings, None, _residual_sum_of_squares
        )
        model, z = plan.background.model.astype(np.float64), z[:, 0].astype(np.float64)
        background = model[:, plan.k :] @ z[plan.k :]
        parts = {n: (model[:, i] * z[i] + background).tolist() for i, n in enumerate(names)}
        with np.errstate(invalid="ignore", divide="ignore"):
            fractions = (t[:, 0] / t[:, 0].sum()).astype(float)
        components = {
            "components": {**parts, "background": background.tolist()},
            "fractions": dict(zip(names, fractions.tolist(), strict=True)),
        }
        return mean[fit, 0], (model @ z).astype(np.float32), components
    spectra, _ = plan.operator.apply(mean)
    h = plan.basis.T @ spectra.astype(np.float64)
    c = solve(plan.gram, h, settings.fit.method, sum_to_one=settings.fit.sum_to_one == "constrain")
    return spectra[:, 0].astype(np.float32), (plan.basis @ c)[:, 0].astype(np.float32), None
