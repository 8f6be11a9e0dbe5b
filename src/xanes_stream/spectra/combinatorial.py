"""Combinatorial fitting over a reference library (XMIDAS, seed 004): every set of 1..k
references fitted to the region's mean (or binned) spectra, ranked by reduced chi-square; the
best set is then fitted per pixel.

All sets of one size are solved at once from the library's Gram matrix (batched k x k
pseudo-inverses). The non-negative fit of a set is exact without iterating: it is the best
non-negative unconstrained solution over the set's subsets (as in spectra/fit.py), and those
subsets are sets of smaller size already solved, so a pass over sizes finds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from math import comb

import numpy as np

from xanes_stream.errors import AnalysisError
from xanes_stream.spectra.decomposition import SpectraStack
from xanes_stream.spectra.fit import residual_metrics, solve
from xanes_stream.spectra.library import library_matrix
from xanes_stream.spectra.references import Reference

_BLOCK = 262_144  # pixels fitted at a time
MAX_COMBINATIONS = 200_000


@dataclass
class CombinatorialFit:
    """The best set of library entries for a region, fitted per pixel (:func:`combinatorial_fit`).

    ``fractions`` (m, ny, nx) and ``r_factor`` (ny, nx) float32 (NaN where a spectrum is not
    finite); ``spectrum`` and ``fit`` (1, n_used): the region's mean and its fit on
    ``energies`` (those every entry covers); ``ranking`` the table of every set
    (:func:`rank_combinations`); ``metadata`` JSON-able facts (best references, weights, ...).
    """

    fractions: np.ndarray
    r_factor: np.ndarray
    spectrum: np.ndarray
    fit: np.ndarray
    ranking: dict[str, np.ndarray]
    energies: np.ndarray
    metadata: dict = field(default_factory=dict)


def estimate_noise(spectra: np.ndarray) -> float:
    """Noise standard deviation of spectra from second differences along energy (robust: the
    median of their squares; edge curvature makes it an upper bound).

    Parameters
    ----------
    spectra : numpy.ndarray
        (n, P) spectra.

    Returns
    -------
    float
        The noise (1 sigma) of one value.
    """
    d2 = spectra[:-2] - 2 * spectra[1:-1] + spectra[2:]
    return float(np.sqrt(np.median(d2**2) / (6 * 0.4549)))  # median of chi2(1) is 0.4549


def _all_sets(n_library: int, max_size: int) -> list[np.ndarray]:
    """Index arrays (C_m, m) of every set of m library entries, m = 1..max_size, lexicographic."""
    return [
        np.array(list(combinations(range(n_library), m)), dtype=np.intp).reshape(-1, m)
        for m in range(1, max_size + 1)
    ]


def _drop_one(sets: np.ndarray, smaller: np.ndarray) -> np.ndarray:
    """Rows in ``smaller`` (sets of m - 1) of every set (C, m) without its member j: (C, m)."""
    where = {tuple(row): i for i, row in enumerate(smaller)}
    m = sets.shape[1]
    return np.array(
        [[where[tuple(np.delete(row, j))] for j in range(m)] for row in sets], dtype=np.intp
    ).reshape(-1, m)


def _nnls_all_sets(G: np.ndarray, h: np.ndarray, sets: list[np.ndarray]):
    """Exact NNLS of every set for every spectrum.

    Returns per size: objective ``c'Gc - 2c'h`` (C_m, P), the coefficients of its members
    (C_m, m, P) (zero where NNLS drops a member).
    """
    objectives, solutions = [], []
    for m, idx in enumerate(sets, start=1):
        gram = G[idx[:, :, None], idx[:, None, :]]  # (C, m, m)
        hs = h[idx]  # (C, m, P)
        c = np.linalg.pinv(gram, hermitian=True) @ hs
        objective = -np.einsum("cmp,cmp->cp", c, hs)
        feasible = (c >= 0).all(axis=1)
        objective = np.where(feasible, objective, np.inf)
        c = np.where(feasible[:, None, :], c, 0.0)
        if m == 1:
            zero = objective > 0  # the empty fit (all zero) is better
            objective = np.where(zero, 0.0, objective)
            c = np.where(zero[:, None, :], 0.0, c)
        else:
            drop = _drop_one(idx, sets[m - 2])
            for j in range(m):
                sub_objective = objectives[-1][drop[:, j]]
                better = sub_objective < objective
                if not better.any():
                    continue
                sub_c = np.insert(solutions[-1][drop[:, j]], j, 0.0, axis=1)
                objective = np.where(better, sub_objective, objective)
                c = np.where(better[:, None, :], sub_c, c)
        objectives.append(objective)
        solutions.append(c)
    return objectives, solutions


def rank_combinations(
    spectrum: np.ndarray,
    energies: np.ndarray,
    library: Sequence[Reference],
    max_size: int = 3,
    *,
    noise: float | None = None,
) -> dict[str, np.ndarray]:
    """Every set of 1..``max_size`` library entries fitted (non-negative least squares) to
    ``spectrum`` (n,), or to each column of (n, P) with the sums of squares pooled, best first.

    The library is put on the energies all its entries cover. Reduced chi-square is
    ``RSS / (P (n - m) noise^2)`` with ``noise`` estimated by :func:`estimate_noise` when None
    (the ranking does not depend on it); R-factor is ``RSS / sum(y^2)``. Ties (a member that
    NNLS drops leaves the RSS of the smaller set) rank the smaller set first.

    Parameters
    ----------
    spectrum : numpy.ndarray
        (n,) or (n, P) normalized spectra.
    energies : numpy.ndarray
        (n,) eV.
    library : sequence of Reference
        The entries.
    max_size : int
        Largest set.
    noise : float, optional
        Spectrum noise for chi-square; None: estimated.

    Returns
    -------
    dict of str to numpy.ndarray
        Table columns: ``rank``, ``references`` (names joined by " + "), ``members`` (library
        indices, ","-joined), ``size``, ``n_active`` (members with weight > 0), ``weights``
        (mean NNLS weights, "+"-joined), ``weight_sum``, ``chi2_red``, ``r_factor``, ``rss``.
    """
    library = list(library)
    y = np.asarray(spectrum, dtype=np.float64)
    y = y[:, None] if y.ndim == 1 else y
    energies = np.asarray(energies, dtype=np.float64)
    if y.shape[0] != energies.size:
        raise AnalysisError(f"spectrum has {y.shape[0]} energies, not {energies.size}")
    if not 1 <= max_size <= len(library):
        raise AnalysisError(f"max_size must be 1..{len(library)} (library size), got {max_size}")
    total = sum(comb(len(library), m) for m in range(1, max_size + 1))
    if total > MAX_COMBINATIONS:
        raise AnalysisError(f"{total} combinations is too many (max {MAX_COMBINATIONS})")
    matrix, used = library_matrix(library, energies)
    y = y[used]
    y = y[:, np.isfinite(y).all(axis=0)]
    n, n_spectra = y.shape
    if n_spectra == 0:
        raise AnalysisError("no finite spectrum to fit")
    noise = estimate_noise(y) if noise is None else float(noise)
    G = matrix.T @ matrix
    h = matrix.T @ y
    yy = np.einsum("ep,ep->p", y, y)
    sets = _all_sets(len(library), max_size)
    objectives, solutions = _nnls_all_sets(G, h, sets)

    names = np.array([r.name for r in library])
    rows = {
        k: [] for k in ("references", "members", "size", "n_active", "weights", "weight_sum", "rss")
    }
    for idx, objective, c in zip(sets, objectives, solutions, strict=True):
        rss = np.maximum(yy[None, :] + objective, 0.0).sum(axis=1)
        weights = c.mean(axis=2)  # (C, m)
        rows["references"] += [" + ".join(names[row]) for row in idx]
        rows["members"] += [",".join(map(str, row)) for row in idx]
        rows["size"].append(np.full(idx.shape[0], idx.shape[1]))
        rows["n_active"].append((weights > 0).sum(axis=1))
        rows["weights"] += ["+".join(f"{w:.4f}" for w in row) for row in weights]
        rows["weight_sum"].append(weights.sum(axis=1))
        rows["rss"].append(rss)
    table = {
        "references": np.array(rows["references"]),
        "members": np.array(rows["members"]),
        "weights": np.array(rows["weights"]),
        **{k: np.concatenate(rows[k]) for k in ("size", "n_active", "weight_sum", "rss")},
    }
    dof = np.maximum(n - table["size"], 1) * n_spectra
    table["chi2_red"] = table["rss"] / (dof * max(noise, 1e-300) ** 2)
    table["r_factor"] = table["rss"] / max(float(yy.sum()), 1e-300)
    order = np.lexsort((table["size"], table["chi2_red"]))
    ranked = {k: v[order] for k, v in table.items()}
    return {"rank": np.arange(1, order.size + 1), **ranked}


def _bin_spectra(spectra: np.ndarray, shape, mask: np.ndarray, binning: int) -> np.ndarray:
    """Mean spectra (n, B) of b x b blocks of masked pixels (blocks at least half masked)."""
    ny, nx = shape
    by, bx = ny // binning, nx // binning
    cube = spectra.reshape(-1, ny, nx)[:, : by * binning, : bx * binning]
    weight = mask[: by * binning, : bx * binning].astype(np.float64)
    values = np.where(weight > 0, cube, 0.0)
    sums = values.reshape(-1, by, binning, bx, binning).sum(axis=(2, 4))
    counts = weight.reshape(by, binning, bx, binning).sum(axis=(1, 3))
    keep = counts >= 0.5 * binning * binning
    return (sums[:, keep] / counts[keep]).astype(np.float64)


def combinatorial_fit(
    stack: SpectraStack,
    library: Sequence[Reference],
    max_size: int = 3,
    mask: np.ndarray | None = None,
    *,
    binning: int | None = None,
    noise: float | None = None,
) -> CombinatorialFit:
    """Rank every set of 1..``max_size`` library entries on the masked region, then fit the
    best set to every pixel (exact NNLS, fractions scaled to sum to one).

    The ranking fits the mean normalized spectrum of the masked pixels, or with ``binning`` the
    mean spectra of ``binning`` x ``binning`` blocks (pooled chi-square), see
    :func:`rank_combinations`.

    Parameters
    ----------
    stack : SpectraStack
        Normalized spectra with their energies and mask.
    library : sequence of Reference
        The entries.
    max_size : int
        Largest set.
    mask : numpy.ndarray, optional
        (ny, nx) bool region; default: the stack's mask.
    binning : int, optional
        Rank on ``binning`` x ``binning`` block means instead of the region's mean.
    noise : float, optional
        Spectrum noise for chi-square; None: estimated.

    Returns
    -------
    CombinatorialFit
    """
    library = list(library)
    mask = stack.mask if mask is None else mask
    n, ny, nx = stack.spectra.shape
    spectra = stack.spectra.reshape(n, -1)
    finite = np.isfinite(spectra).all(axis=0)
    region = finite if mask is None else finite & np.asarray(mask, dtype=bool).ravel()
    if not region.any():
        raise AnalysisError("no finite masked pixel to fit")
    matrix, used = library_matrix(library, stack.energies)
    mean = spectra[:, region].astype(np.float64).mean(axis=1)
    if binning and binning > 1:
        target = _bin_spectra(spectra, (ny, nx), region.reshape(ny, nx), binning)
        if target.shape[1] == 0:
            raise AnalysisError(f"no {binning}x{binning} block is at least half masked")
    else:
        target = mean[:, None]
    ranking = rank_combinations(target, stack.energies, library, max_size, noise=noise)
    names = [r.name for r in library]
    members = [int(i) for i in str(ranking["members"][0]).split(",")]
    best_names = [names[i] for i in members]
    basis = matrix[:, members]
    gram = basis.T @ basis

    k = len(members)
    fractions = np.full((k, ny * nx), np.nan, dtype=np.float32)
    r_factor = np.full(ny * nx, np.nan, dtype=np.float32)
    rows = np.flatnonzero(used)
    rows = slice(rows[0], rows[-1] + 1) if np.all(np.diff(rows) == 1) else rows
    for start in range(0, ny * nx, _BLOCK):  # column slices: no gathering copies
        pixels = slice(start, start + _BLOCK)
        good = finite[pixels]
        y = np.where(good, spectra[rows, pixels], 0.0).astype(np.float32)
        c = solve(gram, basis.T.astype(np.float32) @ y, "nnls")
        rss, total = residual_metrics(y, basis, c)
        with np.errstate(divide="ignore", invalid="ignore"):
            fractions[:, pixels] = np.where(good, c / c.sum(axis=0), np.nan)
            r_factor[pixels] = np.where(good, rss / total, np.nan)
    mean_c = solve(gram, basis.T @ mean[used][:, None], "nnls")
    return CombinatorialFit(
        fractions=fractions.reshape(k, ny, nx),
        r_factor=r_factor.reshape(ny, nx),
        spectrum=mean[used][None].astype(np.float32),
        fit=(basis @ mean_c)[:, 0][None].astype(np.float32),
        ranking=ranking,
        energies=stack.energies[used],
        metadata={
            "references": best_names,
            "weights": mean_c[:, 0].tolist(),
            "max_size": max_size,
            "n_combinations": int(ranking["rank"].size),
            "binning": binning,
            "fitted_spectra": int(target.shape[1]),
            "library": names,
        },
    )
