"""The plan of one stack's block pass: what every block needs, decided once, and the block's mu.

Everything but the residual is linear in mu, so one matrix of functionals (``functionals``,
applied to the raw block) gives the pre-edge line, the edge step, R'mu and the principal
component scores; small corrections then refer them to the normalized spectra.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xanes_stream.pipeline.frames import Frames, Source, average_groups, correct_block
from xanes_stream.spectra.denoise import Projection
from xanes_stream.spectra.features import derivative_operator
from xanes_stream.spectra.normalize import EdgeOperator, edge_windows, find_e0, larch_rows
from xanes_stream.spectra.references import Reference, reference_matrix


@dataclass(frozen=True)
class Plan:
    """What the blocks need to know, decided once per stack."""

    order: np.ndarray  # frame of the source per sorted position
    group_starts: np.ndarray  # first sorted position of each unique energy
    group_counts: np.ndarray
    energies: np.ndarray  # unique, sorted, eV
    mode: str
    operator: EdgeOperator
    basis: np.ndarray  # (n_fit, k) references on the fit energies
    gram: np.ndarray
    functionals: np.ndarray  # (3 + k + q + 2, n): pre offset, slope, step, R', P', jump, sentinel
    basis_pre: np.ndarray  # (k, 2): R' A_fit
    pca_pre: np.ndarray  # (q, 2): P' A_fit
    pca_offset: np.ndarray  # (q,): P' mean
    model: np.ndarray  # (n_fit, 2 + k): [A_fit, R]
    pre_rows: np.ndarray
    edge_window: tuple[float, float]
    peak_window: tuple[float, float]
    derivative: tuple | None  # features.derivative_operator on the fit energies
    denoise: Projection | None = None  # PCA projection applied to each block's mu
    background: object | None = None  # od_fit.BackgroundPlan: the optical-density model
    uncertainty: object | None = None  # error_plan.ErrorPlan: fraction_errors

    @property
    def k(self) -> int:
        """The number of references."""
        return self.basis.shape[1]

    @property
    def jump_noise_gain(self) -> float:
        """The edge jump's noise variance over one point's (white noise). The jump (the mean
        mu of the post-edge window less the pre-edge window's, ``functionals[-2]``) says
        whether an edge is there; unlike the edge step it extrapolates nothing, so a short
        pre-edge does not drown it in noise. Its variance is that row's squared norm times a
        point's."""
        row = self.functionals[-2].astype(np.float64)
        return float(row @ row)


def scan_operator(settings, energies: np.ndarray, sample_mu: np.ndarray):
    """E0 (the settings', else the sample's mean spectrum's), the normalization windows and
    the edge operator of a scan: what every step that normalizes its spectra shares.

    Parameters
    ----------
    settings : AnalysisSettings
        Its ``normalization`` and ``fit.energy_range`` are read.
    energies : numpy.ndarray
        (n_energy,) the distinct energies, eV.
    sample_mu : numpy.ndarray
        (n_energy, n_sample) the sample pixels' mu.

    Returns
    -------
    (float, Windows, EdgeOperator)
    """
    norm = settings.normalization
    e0 = norm.e0
    if e0 is None:
        e0 = find_e0(energies, np.nanmean(sample_mu, axis=1))
    windows = edge_windows(
        energies,
        e0,
        pre=norm.pre_edge,
        post=norm.post_edge,
        post_order=norm.post_edge_order,
        fit=settings.fit.energy_range,
    )
    return e0, windows, EdgeOperator.build(energies, windows)


def make_plan(settings, refs: Sequence[Reference], selected: Frames, source: Source) -> Plan:
    """The plan of a stack: E0 and windows, the edge operator, the references on the fit
    energies and the principal components of the sample pixels (for clusters).

    Parameters
    ----------
    settings : AnalysisSettings
        Its ``normalization``, ``fit``, ``features`` and ``mask`` sections are read.
    refs : sequence of Reference
        The references of the fit.
    selected : Frames
        The usable frames and their energy groups.
    source : Source
        What the blocks read, with the sample pixels' mu.

    Returns
    -------
    Plan
    """
    energies, sample_mu = selected.unique, source.sample_mu
    e0, windows, operator = scan_operator(settings, energies, sample_mu)
    basis = reference_matrix(list(refs), energies, windows.fit)[operator.fit_index]
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
    post_rows = larch_rows(energies, windows.post)
    touched[post_rows] = 1.0
    jump = np.zeros(n)  # mean mu of the post-edge window less the pre-edge's: the edge seen
    for rows, sign in ((post_rows, 1.0), (pre_rows, -1.0)):
        if rows.size:
            jump[rows] += sign / rows.size
    functionals = np.vstack([operator.coefficients, embed.T, jump, touched])
    pre_fit = operator.pre_design_fit
    return Plan(
        order=source.order,
        group_starts=selected.starts,
        group_counts=selected.counts,
        energies=energies,
        mode=source.mode,
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


def block_mu(source, rows: slice, plan: Plan, corrections) -> np.ndarray:
    """The mu (n_energy, P) of the image rows ``rows``, float32, frames averaged per energy:
    a view of the source when nothing needs doing.

    Parameters
    ----------
    source : array_like
        (n, ny, nx) frames the plan's ``order`` indexes.
    rows : slice
        Image rows of the block.
    plan : Plan
        Gives the order, the energy groups and the mode.
    corrections : tuple
        (dark, flat, i0) of ``source``.

    Returns
    -------
    numpy.ndarray
        (n_energy, rows x nx) float32.
    """
    mu, start, n_pixels = block_columns(source, rows, plan, corrections)
    return mu[:, start : start + n_pixels]


def block_columns(source, rows: slice, plan: Plan, corrections) -> tuple[np.ndarray, int, int]:
    """The mu of the image rows ``rows`` as columns of a C-contiguous float32 array: the
    whole source (n_energy, ny x nx) when nothing needs doing (no copy), else the block's
    corrected, averaged copy.

    Parameters
    ----------
    source : array_like
        (n, ny, nx) frames the plan's ``order`` indexes.
    rows : slice
        Image rows of the block.
    plan : Plan
        Gives the order, the energy groups and the mode.
    corrections : tuple
        (dark, flat, i0) of ``source``.

    Returns
    -------
    mu : numpy.ndarray
        (n_energy, N) float32, C-contiguous.
    start, n_pixels : int
        The block's columns of ``mu``.
    """
    dark, flat, i0 = corrections
    order = plan.order
    n_source, _, nx = source.shape
    n_pixels = (rows.stop - rows.start) * nx
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
        return source.reshape(n_source, -1), rows.start * nx, n_pixels
    block = np.array(source[:, rows] if identity else source[order, rows], dtype=np.float32)
    correct_block(block, order, rows, corrections, plan.mode)
    mu = average_groups(block.reshape(block.shape[0], -1), plan.group_starts, plan.group_counts)
    return np.ascontiguousarray(mu), 0, n_pixels
