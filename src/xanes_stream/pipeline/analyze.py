"""``analyze``: the one entry point from an energy stack to chemical maps (arrays in, Maps out).

The stack is processed in blocks of rows; each block goes through correction, edge
normalization, the fit and every per-pixel map while it is in cache, so memory stays bounded
(a few blocks beyond the input and the maps) and the stack is read once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
from threadpoolctl import threadpool_limits

from xanes_stream import __version__
from xanes_stream.errors import AnalysisError
from xanes_stream.imaging.registration import bilinear_noise, register_stack
from xanes_stream.pipeline.few_energy import few_energy_maps
from xanes_stream.pipeline.results import Maps
from xanes_stream.pipeline.settings import AnalysisSettings, load_settings
from xanes_stream.spectra.features import derivative_operator, edge_energy, peak_energy
from xanes_stream.spectra.fit import solve
from xanes_stream.spectra.masks import kmeans_clusters, quality_mask
from xanes_stream.spectra.normalize import EdgeOperator, edge_windows, find_e0, larch_rows
from xanes_stream.spectra.references import Reference, reference_matrix
from xanes_stream.spectra.two_energy import estimate_od_noise

Mode = Literal["transmission", "fluorescence", "absorbance"]
ReferencesLike = Sequence[Reference] | Mapping[str, Reference | tuple[np.ndarray, np.ndarray]]
Progress = Callable[[str, int, int], None]  # (stage, done, total)

_SAMPLE_PIXELS = 16_384
_BLOCK_MAPS = ("thickness", "error", "r_factor", "chi2_red", "edge_energy", "peak_energy")
_KEV_LIMIT = 200.0
_WORKERS = 2


@dataclass(frozen=True)
class _Plan:
    """What the blocks need to know, decided once per stack.

    Everything but the residual is linear in mu, so one matrix of functionals (``functionals``,
    applied to the raw block) gives the pre-edge line, the edge step, R'mu and the principal
    component scores; small corrections then refer them to the normalized spectra.
    """

    order: np.ndarray  # input frame index per sorted position (valid frames only)
    group_starts: np.ndarray  # first sorted position of each unique energy
    group_counts: np.ndarray
    energies: np.ndarray  # unique, sorted, eV
    mode: str
    operator: EdgeOperator
    basis: np.ndarray  # (n_fit, k) references on the fit energies
    gram: np.ndarray
    functionals: np.ndarray  # (3 + k + q + 1, n): pre offset, slope, step, R', P', sentinel
    basis_pre: np.ndarray  # (k, 2): R' A_fit
    pca_pre: np.ndarray  # (q, 2): P' A_fit
    pca_offset: np.ndarray  # (q,): P' mean
    model: np.ndarray  # (n_fit, 2 + k): [A_fit, R]
    pre_rows: np.ndarray
    edge_window: tuple[float, float]
    peak_window: tuple[float, float]
    derivative: tuple | None  # features.derivative_operator on the fit energies

    @property
    def k(self) -> int:
        return self.basis.shape[1]


def _as_references(references: ReferencesLike) -> list[Reference]:
    if isinstance(references, Mapping):
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
                energy = np.asarray(energy, dtype=np.float64)
                energy = energy * 1000.0 if np.nanmax(energy) < _KEV_LIMIT else energy
                from xanes_stream.spectra.references import looks_normalized

                out.append(Reference(name, energy, mu, looks_normalized(energy, np.asarray(mu))))
        return out
    return list(references)


def _check_inputs(frames, energies, dark, flat, i0, mode) -> tuple[np.ndarray, np.ndarray]:
    if mode not in ("transmission", "fluorescence", "absorbance"):
        raise AnalysisError(f"mode must be transmission, fluorescence or absorbance, not {mode!r}")
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


def _correct(block: np.ndarray, index: np.ndarray, rows: slice, dark, flat, i0, mode) -> None:
    """Dark/flat, I0 and -ln, in place on a float32 block (n, ny_block, nx)."""
    if dark is not None:
        block -= _frames_of(dark, index, rows)
    if flat is not None:
        denominator = _frames_of(flat, index, rows).astype(np.float32)
        if dark is not None:
            denominator = denominator - _frames_of(dark, index, rows)
        with np.errstate(divide="ignore", invalid="ignore"):
            block /= denominator
    if i0 is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            block /= np.asarray(i0, dtype=np.float32)[index][:, None, None]
    if mode == "transmission":
        with np.errstate(divide="ignore", invalid="ignore"):
            np.log(block, out=block)
        np.negative(block, out=block)


def _frames_of(extra: np.ndarray, index: np.ndarray, rows: slice) -> np.ndarray:
    extra = np.asarray(extra)
    if extra.ndim == 2:
        return extra[None, rows].astype(np.float32, copy=False)
    return extra[index, rows].astype(np.float32, copy=False)


def _fill_bad(x: np.ndarray) -> np.ndarray:
    """Replace non-finite values along energy (axis 0) by the nearest earlier/later good value.

    Returns the count of bad values per pixel.
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
    i0 : (n_energy,) incident intensity, divided out (fluorescence).
    mode : ``transmission`` takes -ln; ``fluorescence`` and ``absorbance`` do not.
    settings : :class:`AnalysisSettings` or a dict of them.
    shifts : (n_energy, 2) already applied to the frames (e.g. registered live); reported as is.
    progress : called as ``progress(stage, done, total)`` as frames register and blocks finish.

    Non-finite or non-positive values are masked: filled from neighbouring energies, and pixels
    with more than ``settings.max_bad_fraction`` of them become NaN in every map.
    """
    started = time.perf_counter()
    settings = load_settings(settings)
    frames, energies = _check_inputs(frames, energies, dark, flat, i0, mode)
    refs = _as_references(references)
    if not refs:
        raise AnalysisError("at least one reference spectrum is needed")
    notes: list[str] = []
    if np.nanmax(energies) < _KEV_LIMIT:
        energies = energies * 1000.0
        notes.append("energies given in keV; converted to eV")
    n_raw, ny, nx = frames.shape
    timings: dict[str, float] = {}

    # Which frames are usable, in what order, and the registration if asked for.
    selected = _select_frames(frames, energies, (dark, flat, i0), mode, settings.mask.seed)
    sample_y, sample_x, sample_raw = selected.sample_y, selected.sample_x, selected.sample_raw
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
        od = _corrected(frames, order, (dark, flat, i0), mode)
        noise = estimate_od_noise(od)
        if register and order.size > 1:
            od, out_shifts[order] = _register(od, settings, progress)
        # bilinear shifts lower each pixel's noise, and hide it from the estimate if made after
        gain, seen = bilinear_noise(out_shifts[order])
        noise *= gain if register else gain / seen
        noise = np.sqrt(np.add.reduceat(noise**2, starts)) / counts
        od = _average_groups(od, starts, counts)
        registered = bool(np.any(out_shifts))
        maps = few_energy_maps(od, unique, refs, settings, od_noise=noise, registered=registered)
        maps.shifts = out_shifts
        maps.metadata.update(mode=mode, dropped_energies=[float(energies[i]) for i in dropped])
        maps.metadata["notes"] = notes + maps.metadata["notes"]
        maps.metadata["shape"] = [n_raw, ny, nx]
        maps.metadata["timings"] = {"total": time.perf_counter() - t0}
        return maps

    source, source_mode, corrections = frames, mode, (dark, flat, i0)
    if register:
        t0 = time.perf_counter()
        aligned, out_shifts[order] = _register(
            _corrected(frames, order, corrections, mode), settings, progress
        )
        source, source_mode, corrections = aligned, "absorbance", (None, None, None)
        order = np.arange(order.size)
        sample_raw = aligned[:, sample_y, sample_x]
        timings["registration"] = time.perf_counter() - t0
    else:
        sample_raw = sample_raw[order]

    t0 = time.perf_counter()
    sample_mu = _average_groups(np.array(sample_raw, dtype=np.float32), starts, counts)
    _fill_bad(sample_mu)
    plan = _make_plan(settings, refs, unique, order, starts, counts, source_mode, sample_mu)
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
        _analyze_block(source, rows, plan, corrections, settings, out)

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
    mean_spectrum, mean_fit = _mean_spectrum(plan, sample_mu, mask[sample_y, sample_x], settings)
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


@dataclass(frozen=True)
class _Frames:
    """Which frames are usable and in what order, judged on a sample of corrected pixels."""

    sample_y: np.ndarray
    sample_x: np.ndarray
    sample_raw: np.ndarray  # (n_raw, n_sample) corrected values, in input order
    dropped: np.ndarray  # input indices of frames mostly non-finite
    order: np.ndarray  # input indices of the usable frames, sorted by energy
    unique: np.ndarray  # their distinct energies
    starts: np.ndarray  # first position in ``order`` of each distinct energy
    counts: np.ndarray


def _select_frames(frames, energies: np.ndarray, corrections, mode: str, seed: int) -> _Frames:
    """Frames more than half non-finite at a fixed random sample of pixels are dropped; the
    rest are ordered by energy and grouped by equal energy."""
    n_raw, ny, nx = frames.shape
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(ny * nx, size=min(ny * nx, _SAMPLE_PIXELS), replace=False))
    sample_y, sample_x = np.divmod(sample, nx)
    sample_raw = _sample_corrected(frames, np.arange(n_raw), sample_y, sample_x, *corrections, mode)
    bad_fraction = 1.0 - np.isfinite(sample_raw).mean(axis=1)
    good = np.flatnonzero(bad_fraction <= 0.5)
    order = good[np.argsort(energies[good], kind="stable")]
    unique, starts, counts = np.unique(energies[order], return_index=True, return_counts=True)
    dropped = np.flatnonzero(bad_fraction > 0.5)
    return _Frames(sample_y, sample_x, sample_raw, dropped, order, unique, starts, counts)


def _corrected(frames, order, corrections, mode) -> np.ndarray:
    """The frames ``order`` names, corrected (dark, flat, I0, -ln) into one float32 stack."""
    dark, flat, i0 = corrections
    out = np.empty((order.size, *frames.shape[1:]), dtype=np.float32)
    for position, index in enumerate(order):
        block = np.array(frames[index : index + 1], dtype=np.float32)
        _correct(block, np.array([index]), slice(None), dark, flat, i0, mode)
        out[position] = block[0]
    return out


def _register(stack: np.ndarray, settings, progress) -> tuple[np.ndarray, np.ndarray]:
    """The stack aligned, and its (n, 2) shifts (dy, dx)."""
    n = stack.shape[0]
    on_frame = None if progress is None else (lambda i: progress("register", i, n))
    return register_stack(stack, settings.registration, progress=on_frame)


def _sample_corrected(frames, index, ys, xs, dark, flat, i0, mode) -> np.ndarray:
    """Corrected values (n, n_sample) at a few pixels, for planning and frame checks."""
    values = np.asarray(
        frames[:, ys, xs]
        if not isinstance(frames, np.ndarray)
        else frames[index[:, None], ys[None, :], xs[None, :]],
        dtype=np.float32,
    )[:, None, :]
    picks = (ys, xs)
    d = None if dark is None else _pick(dark, picks)
    f = None if flat is None else _pick(flat, picks)
    _correct(values, index, slice(None), d, f, i0, mode)
    return values[:, 0, :]


def _pick(extra: np.ndarray, picks) -> np.ndarray:
    extra = np.asarray(extra)
    if extra.ndim == 2:
        return extra[picks][None, :]
    return extra[:, picks[0], picks[1]][:, None, :]


def _average_groups(values: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Average rows (axis 0) of each run of equal energies."""
    if values.shape[0] == starts.size:
        return values
    sums = np.add.reduceat(values, starts, axis=0)
    return sums / counts.reshape((-1,) + (1,) * (values.ndim - 1)).astype(values.dtype)


def _make_plan(settings, refs, energies, order, starts, counts, mode, sample_mu) -> _Plan:
    norm = settings.normalization
    mean_mu = np.nanmean(sample_mu, axis=1)
    e0 = norm.e0 if norm.e0 is not None else find_e0(energies, mean_mu)
    windows = edge_windows(
        energies,
        e0,
        pre=norm.pre_edge,
        post=norm.post_edge,
        post_order=norm.post_edge_order,
        fit=settings.fit.energy_range,
    )
    operator = EdgeOperator.build(energies, windows)
    basis = reference_matrix(refs, energies, windows.fit)[operator.fit_index]
    # Principal components of normalized spectra of sample pixels, for clustering.
    y, step = operator.apply(sample_mu)
    strong = np.isfinite(step) & (step > np.nanpercentile(step, 75) * 0.25)
    y = y[:, strong & np.all(np.isfinite(y), axis=0)]
    q = min(settings.mask.cluster_components, y.shape[0], max(1, y.shape[1]))
    if y.shape[1] >= 2:
        pca_mean = y.mean(axis=1)
        centred = (y - pca_mean[:, None]).astype(np.float64)
        _, vectors = np.linalg.eigh(centred @ centred.T)  # small: n_fit x n_fit
        pca_basis = vectors[:, ::-1][:, :q]
    else:
        pca_mean = np.zeros(operator.fit_energy.size)
        pca_basis = np.eye(operator.fit_energy.size)[:, :q]
    features = settings.features
    edge_window = (e0 + features.edge_window[0], e0 + features.edge_window[1])
    pre_rows = larch_rows(energies, windows.pre)
    fit = operator.fit_index
    n = energies.size
    embed = np.zeros((n, basis.shape[1] + pca_basis.shape[1]))
    embed[fit] = np.hstack([basis, pca_basis])
    touched = np.zeros(n)  # the last row sums every energy a map reads: a NaN sentinel
    touched[fit] = 1.0
    touched[pre_rows[0] : pre_rows[-1] + 1] = 1.0
    touched[larch_rows(energies, windows.post)] = 1.0
    functionals = np.vstack([operator.coefficients, embed.T, touched])
    pre_fit = operator.pre_design_fit
    return _Plan(
        order=order,
        group_starts=starts,
        group_counts=counts,
        energies=energies,
        mode=mode,
        operator=operator,
        basis=basis,
        gram=basis.T @ basis,
        functionals=functionals.astype(np.float32),
        basis_pre=(basis.T @ pre_fit).astype(np.float32),
        pca_pre=(pca_basis.T @ pre_fit).astype(np.float32),
        pca_offset=(pca_basis.T @ pca_mean).astype(np.float32),
        model=np.hstack([pre_fit, basis]).astype(np.float32),
        pre_rows=pre_rows,
        edge_window=edge_window,
        peak_window=(e0 + features.peak_window[0], e0 + features.peak_window[1]),
        derivative=derivative_operator(operator.fit_energy, edge_window),
    )


def _block_mu(source, rows: slice, plan: _Plan, corrections) -> np.ndarray:
    """The block's mu (n_energy, P) as float32: a view of the source when nothing needs doing."""
    dark, flat, i0 = corrections
    order = plan.order
    n_source, _, nx = source.shape
    identity = order.size == n_source and np.array_equal(order, np.arange(n_source))
    plain = dark is None and flat is None and i0 is None and plan.mode == "absorbance"
    if (
        identity
        and plain
        and isinstance(source, np.ndarray)
        and source.dtype == np.float32
        and source.flags.c_contiguous
        and plan.group_starts.size == n_source
    ):
        return source.reshape(n_source, -1)[:, rows.start * nx : rows.stop * nx]
    block = np.array(source[:, rows] if identity else source[order, rows], dtype=np.float32)
    _correct(block, order, rows, dark, flat, i0, plan.mode)
    return _average_groups(block.reshape(block.shape[0], -1), plan.group_starts, plan.group_counts)


def _analyze_block(source, rows: slice, plan: _Plan, corrections, settings, out) -> None:
    """Every per-pixel map of the rows ``rows``, written into ``out``."""
    mu = _block_mu(source, rows, plan, corrections)
    with np.errstate(invalid="ignore", over="ignore"):
        linear = plan.functionals @ mu
    bad = np.zeros(mu.shape[1], dtype=np.int64)
    # The sentinel row sums every energy a map reads: finite means nothing needs filling.
    if not np.isfinite(linear[-1]).all():
        mu = np.array(mu)  # never fill bad values in the caller's array
        bad = _fill_bad(mu)
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


def _window_normalized(mu, pre, inverse_step, plan: _Plan, window) -> tuple[np.ndarray, slice]:
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


def _edge_energy(mu, pre, inverse_step, plan: _Plan, settings) -> np.ndarray:
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


def _peak_energy(mu, pre, plan: _Plan) -> np.ndarray:
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


def _pre_edge_noise(mu: np.ndarray, pre: np.ndarray, step: np.ndarray, plan: _Plan) -> np.ndarray:
    """Variance of normalized spectra, estimated from the scatter about the pre-edge line."""
    rows = plan.pre_rows
    if rows.size < 4:
        return np.full(mu.shape[1], np.nan, dtype=np.float32)
    x = (plan.energies[rows] - plan.operator.windows.e0) / 100.0
    design = np.stack([np.ones_like(x), x], axis=1).astype(np.float32)
    residual = mu[rows[0] : rows[-1] + 1] - design @ pre
    return np.einsum("ep,ep->p", residual, residual) / ((rows.size - 2) * step * step)


def _mean_spectrum(plan: _Plan, sample_mu, sample_mask, settings) -> tuple[np.ndarray, np.ndarray]:
    """Mean normalized spectrum of the masked sample pixels and its fit."""
    columns = sample_mu[:, sample_mask] if sample_mask.any() else sample_mu
    spectra, _ = plan.operator.apply(np.nanmean(columns, axis=1, keepdims=True).astype(np.float32))
    h = plan.basis.T @ spectra.astype(np.float64)
    c = solve(plan.gram, h, settings.fit.method, sum_to_one=settings.fit.sum_to_one == "constrain")
    return spectra[:, 0].astype(np.float32), (plan.basis @ c)[:, 0].astype(np.float32)
