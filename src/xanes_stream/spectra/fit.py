"""Per-pixel linear-combination fitting of spectra against references, vectorised over pixels.

Every solver works in Gram form: with the references as columns of ``R`` (n_energy, k) and the
spectra as columns of ``Y`` (n_energy, P), ``G = R.T @ R`` is shared by all pixels and
``h = R.T @ Y`` is one matrix product. The constrained problems then cost O(k) per pixel:

- ``lstsq``: unconstrained least squares;
- ``nnls``: exact non-negative least squares, by enumerating active sets (the optimum is the
  best feasible unconstrained solution over some support, so this is exact, not clipped);
- ``admm``: the alternating direction method of multipliers (Boyd et al. 2011), bounded
  iterations, for noisy data and for many references;
- ``sum_to_one`` adds the equality constraint to any of them.
"""

from __future__ import annotations

from itertools import combinations
from typing import Literal

import numpy as np

from xanes_stream.errors import FitError

FitMethod = Literal["lstsq", "nnls", "admm"]

#: Above this many references the exact active-set enumeration becomes costly.
MAX_NNLS_REFERENCES = 10


def _subset_operator(
    G: np.ndarray, subset: tuple[int, ...], sum_to_one: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(M, v) with ``c = M @ h + v`` the least squares on ``subset`` (others zero), Gram form."""
    k = G.shape[0]
    idx = list(subset)
    G_inv = np.linalg.pinv(G[np.ix_(idx, idx)])
    M = np.zeros((k, k))
    v = np.zeros(k)
    if sum_to_one:
        ones = np.ones(len(idx))
        g1 = G_inv @ ones
        denom = ones @ g1
        if abs(denom) < 1e-300:
            raise FitError("references are degenerate: sum-to-one constraint cannot be met")
        # c = G_inv h - g1 (1'G_inv h - 1) / denom
        M[np.ix_(idx, idx)] = G_inv - np.outer(g1, ones @ G_inv) / denom
        v[idx] = g1 / denom
    else:
        M[np.ix_(idx, idx)] = G_inv
    return M, v


def _solve_subset(G, h, subset, sum_to_one) -> np.ndarray:
    M, v = _subset_operator(G, subset, sum_to_one)
    return M.astype(h.dtype) @ h + v.astype(h.dtype)[:, None]


def solve(
    G: np.ndarray,
    h: np.ndarray,
    method: FitMethod = "nnls",
    *,
    sum_to_one: bool = False,
    admm_iterations: int = 200,
    admm_rho: float | None = None,
    admm_tolerance: float = 1e-4,
) -> np.ndarray:
    """Coefficients (k, P) minimising ``||R c - y||^2`` per pixel, given ``G`` and ``h``.

    Parameters
    ----------
    G : numpy.ndarray
        (k, k) Gram matrix ``R' R`` of the references.
    h : numpy.ndarray
        (k, P) ``R' y`` per pixel.
    method : {"lstsq", "nnls", "admm"}
        Unconstrained, exact non-negative, or iterative non-negative least squares.
    sum_to_one : bool
        Constrain the coefficients to sum to one.
    admm_iterations, admm_rho, admm_tolerance
        ADMM's iteration cap, penalty (None: from G) and stopping tolerance.

    Returns
    -------
    numpy.ndarray
        (k, P) coefficients.
    """
    k = G.shape[0]
    if method == "lstsq":
        return _solve_subset(G, h, tuple(range(k)), sum_to_one)
    if method == "nnls":
        if k > MAX_NNLS_REFERENCES:
            raise FitError(
                f"exact nnls enumerates 2^k supports; {k} references is too many "
                f"(max {MAX_NNLS_REFERENCES}): use fit.method='admm'"
            )
        return _nnls_enumerate(G, h, sum_to_one)
    if method == "admm":
        return _admm(G, h, sum_to_one, admm_iterations, admm_rho, admm_tolerance)
    raise FitError(f"unknown fit method {method!r}; use lstsq, nnls or admm")


def _nnls_enumerate(G: np.ndarray, h: np.ndarray, sum_to_one: bool) -> np.ndarray:
    """Exact (sum-to-one) NNLS: the best feasible least-squares solution over all supports."""
    out_dtype = h.dtype
    h = h.astype(np.float64)  # nearly collinear references: objectives differ by ~1e-6
    k, n_pixels = h.shape
    best = np.zeros_like(h)
    if sum_to_one:
        best_objective = np.full(n_pixels, np.inf, dtype=h.dtype)
    else:
        best_objective = np.zeros(n_pixels, dtype=h.dtype)  # the all-zero solution
    G_h = G.astype(h.dtype)
    for size in range(1, k + 1):
        for subset in combinations(range(k), size):
            M, v = _subset_operator(G, subset, sum_to_one)
            c = M.astype(h.dtype) @ h
            if sum_to_one:
                c += v.astype(h.dtype)[:, None]
                # objective c'Gc - 2c'h (relative to ||y||^2)
                objective = np.einsum("kp,kp->p", c, G_h @ c - 2 * h)
            else:
                objective = -np.einsum("kp,kp->p", c, h)  # = c'Gc - 2c'h at the optimum on S
            better = (np.min(c, axis=0) >= 0) & (objective < best_objective)
            best_objective = np.where(better, objective, best_objective)
            best = np.where(better, c, best)
    if sum_to_one:
        # With collinear references a support may be infeasible everywhere; fall back to lstsq.
        missing = ~np.isfinite(best_objective)
        if missing.any():
            best[:, missing] = _solve_subset(G, h[:, missing], tuple(range(k)), True)
    return best.astype(out_dtype, copy=False)


def project_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection of each column of ``v`` (k, P) onto the probability simplex.

    Parameters
    ----------
    v : numpy.ndarray
        (k, P) vectors.

    Returns
    -------
    numpy.ndarray
        (k, P), each column non-negative and summing to one.
    """
    k = v.shape[0]
    u = -np.sort(-v, axis=0)
    css = np.cumsum(u, axis=0) - 1.0
    ind = np.arange(1, k + 1, dtype=v.dtype)[:, None]
    cond = u - css / ind > 0
    rho = k - 1 - np.argmax(cond[::-1], axis=0)
    theta = np.take_along_axis(css, rho[None, :], axis=0) / (rho + 1).astype(v.dtype)
    return np.maximum(v - theta, 0.0)


def _admm(
    G: np.ndarray,
    h: np.ndarray,
    sum_to_one: bool,
    iterations: int,
    rho: float | None,
    tolerance: float,
) -> np.ndarray:
    """ADMM for min ||Rc - y||^2 with c >= 0 (and sum(c) = 1), in Gram form.

    Over-relaxed (alpha = 1.6) with Boyd's stopping rule on the primal and dual residuals and
    residual balancing of rho (each change re-inverts only a k x k matrix). rho starts at
    sqrt(lambda_min * lambda_max) of G unless given.
    """
    k = G.shape[0]
    eigenvalues = np.linalg.eigvalsh(G)
    if rho is None:
        rho = float(np.sqrt(max(eigenvalues[0], 1e-12 * eigenvalues[-1]) * eigenvalues[-1]))
    alpha = 1.6
    project = project_simplex if sum_to_one else (lambda v: np.maximum(v, 0.0))
    z = np.zeros_like(h)
    u = np.zeros_like(h)  # scaled dual variable
    system = np.linalg.inv(G + rho * np.eye(k)).astype(h.dtype)
    for iteration in range(iterations):
        x = system @ (h + rho * (z - u))
        relaxed = alpha * x + (1 - alpha) * z
        z_new = project(relaxed + u)
        u += relaxed - z_new
        if iteration % 5 == 4 or iteration == iterations - 1:
            primal = float(np.sqrt(np.max(np.sum((x - z_new) ** 2, axis=0))))
            dual = rho * float(np.sqrt(np.max(np.sum((z_new - z) ** 2, axis=0))))
            scale = max(float(np.sqrt(np.max(np.sum(z_new**2, axis=0)))), 1e-12)
            # absolute part (Boyd's eps_abs) in units of the solution: float32 stalls near 1e-5
            dual_scale = rho * max(float(np.sqrt(np.max(np.sum(u**2, axis=0)))), scale)
            z = z_new
            if primal < tolerance * scale and dual < tolerance * dual_scale:
                break
            if primal > 10 * dual or dual > 10 * primal:
                factor = 2.0 if primal > dual else 0.5
                rho *= factor
                u /= factor
                system = np.linalg.inv(G + rho * np.eye(k)).astype(h.dtype)
        else:
            z = z_new
    return z


def residual_metrics(
    spectra: np.ndarray, references: np.ndarray, coefficients: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Residual sum of squares and sum of squared data per pixel, shape (P,) each.

    Parameters
    ----------
    spectra : numpy.ndarray
        (n_energy, P) data.
    references : numpy.ndarray
        (n_energy, k) reference columns.
    coefficients : numpy.ndarray
        (k, P) fitted coefficients.

    Returns
    -------
    rss, total : numpy.ndarray
        (P,) residual sum of squares and sum of squared data.
    """
    residual = references.astype(spectra.dtype) @ coefficients
    np.subtract(spectra, residual, out=residual)
    rss = np.einsum("ep,ep->p", residual, residual)
    total = np.einsum("ep,ep->p", spectra, spectra)
    return rss, total


def fit_spectra(
    spectra: np.ndarray,
    references: np.ndarray,
    method: FitMethod = "nnls",
    *,
    sum_to_one: bool = False,
    **solver_options,
) -> np.ndarray:
    """Fit spectra (n_energy, P) with reference columns (n_energy, k): coefficients (k, P).

    Parameters
    ----------
    spectra : numpy.ndarray
        (n_energy, P) spectra.
    references : numpy.ndarray
        (n_energy, k) reference columns.
    method : {"lstsq", "nnls", "admm"}
        As for :func:`solve`.
    sum_to_one : bool
        As for :func:`solve`.
    **solver_options
        Passed to :func:`solve`.

    Returns
    -------
    numpy.ndarray
        (k, P) coefficients.
    """
    references = np.asarray(references, dtype=np.float64)
    if references.ndim != 2 or references.shape[0] != spectra.shape[0]:
        raise FitError(
            f"references shape {references.shape} does not match spectra {spectra.shape}"
        )
    G = references.T @ references
    h = references.T.astype(spectra.dtype) @ spectra
    return solve(G, h, method, sum_to_one=sum_to_one, **solver_options)
