"""The fused block pass (:func:`xanes_stream.spectra.fused.fused_block`) set up from a stack's
:class:`~xanes_stream.pipeline.plan.Plan` and settings: which settings it covers, the plain
arrays it takes, and the call on one block that writes the maps into the image's arrays.

``compute.kernel: fused`` (the default) takes this path wherever it covers the settings, and
the numpy block pass (the reference implementation) everywhere else; the log says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from xanes_stream.pipeline.plan import Plan
from xanes_stream.spectra.features import _padded_window
from xanes_stream.spectra.fit import MAX_NNLS_REFERENCES

log = logging.getLogger(__name__)

_METHODS = {"lstsq": 0, "nnls": 1, "admm": 2}  # spectra.fused's LSTSQ, NNLS, ADMM


@dataclass(frozen=True)
class FusedTables:
    """The plain arrays and numbers :func:`~xanes_stream.spectra.fused.fused_block` takes
    besides a block and its outputs, made once per stack (picklable: they travel with a
    :class:`~xanes_stream.pipeline.analyze.RowTask`)."""

    arguments: tuple
    snr: bool


def load_fused_kernel() -> None:
    """Import the compiled kernel (numba, and the BLAS it calls) now, not on first use: so
    that a thread limit set next (``threadpoolctl``) reaches that BLAS too."""
    from xanes_stream.spectra import fused  # noqa: F401


def uncovered(plan: Plan, settings, alpha) -> str | None:
    """Why the fused pass cannot make this stack's maps (None: it can).

    Parameters
    ----------
    plan : Plan
        The stack's plan.
    settings : AnalysisSettings
        Its settings.
    alpha : float or None
        The self-absorption correction's (None: not corrected).

    Returns
    -------
    str or None
    """
    if plan.background is not None:
        return "the optical-density model"
    if plan.uncertainty is not None:
        return "fraction errors (fit.errors)"
    if plan.denoise is not None:
        return "PCA denoising (denoise.components)"
    if alpha is not None:
        return "the self-absorption correction"
    if settings.fit.method not in _METHODS:
        return f"fit method {settings.fit.method!r}"
    if settings.fit.method == "nnls" and plan.k > MAX_NNLS_REFERENCES:
        return f"exact NNLS of {plan.k} references"
    return None


def fused_tables(plan: Plan, settings, weights, alpha) -> FusedTables | None:
    """The fused pass's tables of a stack, or None where the numpy pass is to run (the
    settings ask for it, or the fused pass does not cover them: logged).

    Parameters
    ----------
    plan : Plan
        The stack's plan.
    settings : AnalysisSettings
        Its ``compute``, ``fit``, ``features``, ``mask`` and ``max_bad_fraction`` are read.
    weights : numpy.ndarray or None
        (n_fit,) ``1 / (sigma^2 dof)`` of the measured noise, or None.
    alpha : float or None
        The self-absorption correction's.

    Returns
    -------
    FusedTables or None
    """
    if settings.compute.kernel != "fused":
        return None
    reason = uncovered(plan, settings, alpha)
    if reason is not None:
        log.debug("numpy block pass: the fused pass does not cover %s", reason)
        return None
    from xanes_stream.spectra import fused  # numba: loaded (and compiled) only when used

    fit = plan.operator.fit_index
    energy = plan.operator.fit_energy
    f32 = np.float32
    method = _METHODS[settings.fit.method]
    constrain = settings.fit.sum_to_one == "constrain"
    operators, offsets = fused.solver_tables(plan.gram, method, constrain)
    edge_method, edge_row0, edge_band, edge_centres = _edge_tables(plan, settings)
    peak_row0, peak_x, peak_energy = _peak_tables(plan)
    pre_rows = plan.pre_rows
    pre_x = (plan.energies[pre_rows] - plan.operator.windows.e0) / 100.0
    functionals = np.array(plan.functionals, dtype=f32)
    functionals[-1] = 1.0  # any non-finite value of a spectrum makes this row non-finite
    arguments = (
        functionals,
        np.ascontiguousarray(plan.basis_pre, dtype=f32),
        np.ascontiguousarray(plan.pca_pre, dtype=f32),
        np.ascontiguousarray(plan.pca_offset, dtype=f32),
        np.ascontiguousarray(plan.model, dtype=f32),
        int(fit.start),
        np.zeros(0, f32) if weights is None else np.ascontiguousarray(weights, dtype=f32),
        method,
        operators,
        offsets,
        constrain,
        settings.fit.sum_to_one == "normalize",
        np.ascontiguousarray(plan.gram, dtype=np.float64),
        int(settings.fit.admm_iterations),
        fused.admm_rho(plan.gram, settings.fit.admm_rho),
        1e-4,  # spectra.fit.solve's admm_tolerance
        edge_method,
        edge_row0,
        edge_band,
        edge_centres,
        peak_row0,
        peak_x,
        peak_energy,
        int(pre_rows[0]) if pre_rows.size else 0,
        pre_x.astype(f32) if pre_rows.size >= 4 else np.zeros(0, f32),
        float(plan.jump_noise_gain),
        int(energy.size - plan.k),
        float(settings.max_bad_fraction * plan.energies.size),
    )
    return FusedTables(arguments=arguments, snr=settings.mask.method == "snr")


def _edge_tables(plan: Plan, settings):
    """(method, first row, matrix, energies) of E0 for the kernel."""
    from xanes_stream.spectra import fused

    fit = plan.operator.fit_index
    energy = plan.operator.fit_energy
    empty = (np.zeros((0, 2), np.float32), np.zeros(0))
    if settings.features.edge_method == "half_height":
        window = plan.edge_window
        inside = np.flatnonzero((energy >= window[0]) & (energy <= window[1]))
        if inside.size < 2:
            return (fused.NO_EDGE, 0, *empty)
        rows = slice(int(inside[0]), int(inside[-1]) + 1)
        design = np.ascontiguousarray(plan.model[rows, :2], dtype=np.float32)
        return fused.HALF_HEIGHT, fit.start + rows.start, design, energy[rows].copy()
    if plan.derivative is None:
        return (fused.NO_EDGE, 0, *empty)
    matrix, rows, centres = plan.derivative
    n_centres = matrix.shape[0]
    band = np.zeros((n_centres, 5), np.float32)  # centre c weighs its rows c .. c + 4
    for c in range(n_centres):
        band[c] = matrix[c, c : c + 5]
    return fused.DERIVATIVE, fit.start + rows.start, band, np.asarray(centres, np.float64)


def _peak_tables(plan: Plan):
    """(first row, pre-edge slope's scaled energies, energies) of the white line's window
    (padded one row each side), as :func:`~xanes_stream.pipeline.analyze._peak_energy`."""
    fit = plan.operator.fit_index
    energy = plan.operator.fit_energy
    window = plan.peak_window
    none = (0, np.zeros(0, np.float32), np.zeros(0))
    inside = np.flatnonzero((energy >= window[0]) & (energy <= window[1]))
    if inside.size == 0:
        return none
    local = slice(max(int(inside[0]) - 1, 0), min(int(inside[-1]) + 2, energy.size))
    local_energy = energy[local]
    rows = _padded_window(local_energy, window, local_energy.size)
    if rows is None:
        return none
    x = plan.model[local, 1][rows].astype(np.float32)
    return fit.start + local.start + rows.start, x, local_energy[rows].astype(np.float64)


def fused_block_maps(
    mu: np.ndarray, col0: int, n_pix: int, tables: FusedTables, out: dict, offset: int
) -> None:
    """Every per-pixel map of the pixels ``col0 .. col0 + n_pix`` of ``mu``, written into the
    image's maps ``out`` (as :func:`~xanes_stream.pipeline.analyze._empty_maps` makes them)
    from its pixel ``offset`` on.

    Parameters
    ----------
    mu : numpy.ndarray
        (n_energy, N) float32, C-contiguous.
    col0, n_pix : int
        The block's columns.
    tables : FusedTables
        From :func:`fused_tables`.
    out : dict
        The maps; each is written in place.
    offset : int
        The flat index of the block's first pixel in ``out``'s maps.
    """
    from xanes_stream.spectra.fused import fused_block

    def flat(name):
        view = out[name].view()
        view.shape = (-1,)  # raises rather than copy: the kernel writes into the map itself
        return view

    k = out["fractions"].shape[0]
    fused_block(
        mu,
        col0,
        n_pix,
        offset,
        *tables.arguments,
        flat("thickness"),
        flat("error"),
        flat("r_factor"),
        flat("chi2_red"),
        flat("edge_energy"),
        flat("peak_energy"),
        flat("edge_snr") if tables.snr else np.zeros(0, np.float32),
        flat("edge_jump") if tables.snr else np.zeros(0, np.float32),
        _as_2d(out["fractions"], k),
        flat("valid"),
        out["features"],
    )


def _as_2d(values: np.ndarray, k: int) -> np.ndarray:
    view = values.view()
    view.shape = (k, -1)
    return view
