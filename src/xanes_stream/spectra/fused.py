"""One compiled pass over a block of pixels: edge normalization, the linear-combination fit,
the goodness of fit, E0, the white line and the cluster features, each spectrum read once.

The numpy path (:func:`xanes_stream.pipeline.analyze._analyze_block`) is the reference: it
reads a block from memory several times (the linear functionals, the residual, the E0 and
white-line windows). :func:`fused_block` makes the same maps in one pass over tiles of
:data:`TILE` pixels: a tile's spectra (every energy, ~100 kB) are read from memory once, by the
matrix product of the linear functionals, and stay in the core's cache for every later step
(the fit, the residual, the pre-edge scatter, E0, the white line). It holds no GIL, so threads
run blocks side by side.

The matrix products go to the BLAS that SciPy ships (``sgemm``, on the tile in place: no copy)
and the rest is numba, with the inner loops running over a tile's pixels so that they
vectorize. Arrays and plain numbers in, arrays out (the maps are written into arrays the caller
owns, at ``offset``); :mod:`xanes_stream.pipeline.fused` turns a plan and settings into these
arguments. Every compiled function lives in this one file, so that numba's on-disk cache
(``cache=True``), which tracks only the file of a function, never keeps a stale callee.

Where the two paths differ on purpose: a pixel's non-finite values are filled (and counted)
when that pixel has any, not when any pixel of its block has (the same maps, unless a pixel's
only bad values lie at energies no map reads); ADMM's stopping rule and penalty balancing look
at the tile's finite pixels, not the whole block's, so its fractions agree with the numpy
path's to ADMM's tolerance, not to float precision.
"""

from __future__ import annotations

from itertools import combinations

import llvmlite.binding
import numba
import numpy as np
from numba import types
from numba.extending import get_cython_function_address

from xanes_stream.spectra.fit import _subset_operator

#: Pixels per tile: a tile's spectra (n_energy x TILE float32) stay in the core's cache.
TILE = 256

#: Fit methods (``method``) and edge methods (``edge_method``) of :func:`fused_block`.
LSTSQ, NNLS, ADMM = 0, 1, 2
DERIVATIVE, HALF_HEIGHT, NO_EDGE = 0, 1, 2

# SciPy's BLAS sgemm, by a symbol name (not an address), so that the compiled code can be cached
llvmlite.binding.add_symbol(
    "xanes_stream_sgemm", get_cython_function_address("scipy.linalg.cython_blas", "sgemm")
)
_sgemm = types.ExternalFunction("xanes_stream_sgemm", types.void(*(types.voidptr,) * 13))

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")


def solver_tables(gram: np.ndarray, method: int, sum_to_one: bool):
    """The subset operators of the exact solvers, in the order :func:`~xanes_stream.spectra.
    fit.solve` tries them.

    Parameters
    ----------
    gram : numpy.ndarray
        (k, k) Gram matrix of the references.
    method : int
        :data:`LSTSQ`, :data:`NNLS` or :data:`ADMM`.
    sum_to_one : bool
        The sum-to-one constraint.

    Returns
    -------
    operators : numpy.ndarray
        (S, k, k) float64: ``c = operators[s] @ h + offsets[s]`` is the least squares on the
        s-th support (the last is every reference).
    offsets : numpy.ndarray
        (S, k) float64.
    """
    k = gram.shape[0]
    supports = (
        [s for size in range(1, k + 1) for s in combinations(range(k), size)]
        if method == NNLS
        else [tuple(range(k))]
    )
    pairs = [_subset_operator(gram, s, sum_to_one) for s in supports]
    operators = np.ascontiguousarray([p[0] for p in pairs], dtype=np.float64)
    offsets = np.ascontiguousarray([p[1] for p in pairs], dtype=np.float64)
    return operators, offsets


def admm_rho(gram: np.ndarray, rho: float | None) -> float:
    """ADMM's starting penalty: ``rho``, else sqrt(lambda_min lambda_max) of ``gram`` (as
    :func:`~xanes_stream.spectra.fit.solve`).

    Parameters
    ----------
    gram : numpy.ndarray
        (k, k) Gram matrix.
    rho : float or None
        The penalty given.

    Returns
    -------
    float
    """
    if rho is not None:
        return float(rho)
    eigenvalues = np.linalg.eigvalsh(gram)
    return float(np.sqrt(max(eigenvalues[0], 1e-12 * eigenvalues[-1]) * eigenvalues[-1]))


@_jit
def _gemm(b, a, row0, col0, nt, c, blas):
    """``c[:, :nt] = b @ a[row0 : row0 + K, col0 : col0 + nt]`` (float32, C order), on ``a``
    in place; ``blas`` is the scratch of :func:`_blas_scratch`."""
    ints, chars, scalars = blas
    ints[0] = nt
    ints[1] = b.shape[0]
    ints[2] = b.shape[1]
    ints[3] = a.shape[1]
    ints[4] = b.shape[1]
    ints[5] = c.shape[1]
    # column-major view: c' (nt x m) = a' (nt x K, ld = a's row) @ b' (K x m)
    _sgemm(
        chars.ctypes,
        chars.ctypes,
        ints[0:].ctypes,
        ints[1:].ctypes,
        ints[2:].ctypes,
        scalars.ctypes,
        a[row0:, col0:].ctypes,
        ints[3:].ctypes,
        b.ctypes,
        ints[4:].ctypes,
        scalars[1:].ctypes,
        c.ctypes,
        ints[5:].ctypes,
    )


@_jit
def _blas_scratch():
    ints = np.empty(6, np.int32)
    chars = np.full(1, 78, np.uint8)  # "N": no transpose
    scalars = np.zeros(2, np.float32)
    scalars[0] = 1.0
    return ints, chars, scalars


@_jit
def _fill(buf, j):
    """Fill pixel ``j``'s non-finite values in place as
    :func:`~xanes_stream.pipeline.frames.fill_bad` does; returns how many there were."""
    n = buf.shape[0]
    first_good = -1
    for e in range(n):
        if np.isfinite(buf[e, j]):
            first_good = e
            break
    bad = 0
    last = -1
    for e in range(n):
        if np.isfinite(buf[e, j]):
            last = e
        else:
            bad += 1
            if last >= 0:
                buf[e, j] = buf[last, j]
            elif first_good >= 0:
                buf[e, j] = buf[first_good, j]
            else:
                buf[e, j] = 0.0
    return bad


@_jit
def _apply_support(operators, offsets, s, h64, nt, constrain, c):
    """``c = operators[s] @ h (+ offsets[s])`` for the tile's pixels."""
    k = h64.shape[0]
    for kk in range(k):
        ck = c[kk]
        start = offsets[s, kk] if constrain else 0.0
        for j in range(nt):
            ck[j] = start
        for ll in range(k):
            o = operators[s, kk, ll]
            hl = h64[ll]
            for j in range(nt):
                ck[j] += o * hl[j]


@_jit
def _solve_exact(operators, offsets, gram, h, nt, constrain, nnls, coef, scratch, best_obj):
    """Least squares (the last support) or exact NNLS over every support, per pixel, in
    float64 as :func:`~xanes_stream.spectra.fit.solve`."""
    k = h.shape[0]
    n_sets = operators.shape[0]
    h64 = scratch[:k]
    c = scratch[k : 2 * k]
    best = scratch[2 * k : 3 * k]
    for kk in range(k):
        hk = h[kk]
        dk = h64[kk]
        for j in range(nt):
            dk[j] = hk[j]
    if not nnls:
        _apply_support(operators, offsets, n_sets - 1, h64, nt, constrain, c)
        for kk in range(k):
            ck = c[kk]
            out = coef[kk]
            for j in range(nt):
                out[j] = ck[j]
        return
    for j in range(nt):
        best_obj[j] = np.inf if constrain else 0.0
    for kk in range(k):
        bk = best[kk]
        for j in range(nt):
            bk[j] = 0.0
    for s in range(n_sets):
        _apply_support(operators, offsets, s, h64, nt, constrain, c)
        for j in range(nt):
            feasible = True
            objective = 0.0
            for kk in range(k):
                ck = c[kk, j]
                feasible = feasible and ck >= 0.0
                if constrain:
                    gc = 0.0
                    for ll in range(k):
                        gc += gram[kk, ll] * c[ll, j]
                    objective += ck * (gc - 2.0 * h64[kk, j])
                else:
                    objective -= ck * h64[kk, j]
            if feasible and objective < best_obj[j]:
                best_obj[j] = objective
                for kk in range(k):
                    best[kk, j] = c[kk, j]
    if constrain:
        _apply_support(operators, offsets, n_sets - 1, h64, nt, constrain, c)
        for j in range(nt):
            if not np.isfinite(best_obj[j]):  # no feasible support: the constrained lstsq
                for kk in range(k):
                    best[kk, j] = c[kk, j]
    for kk in range(k):
        bk = best[kk]
        out = coef[kk]
        for j in range(nt):
            out[j] = bk[j]


@_jit
def _inverse(a):
    """Inverse of a small matrix (Gauss-Jordan with partial pivoting)."""
    k = a.shape[0]
    m = a.copy()
    inv = np.eye(k)
    for col in range(k):
        pivot = col
        for r in range(col + 1, k):
            if abs(m[r, col]) > abs(m[pivot, col]):
                pivot = r
        if pivot != col:
            for c in range(k):
                m[col, c], m[pivot, c] = m[pivot, c], m[col, c]
                inv[col, c], inv[pivot, c] = inv[pivot, c], inv[col, c]
        d = m[col, col]
        for c in range(k):
            m[col, c] /= d
            inv[col, c] /= d
        for r in range(k):
            if r != col:
                f = m[r, col]
                for c in range(k):
                    m[r, c] -= f * m[col, c]
                    inv[r, c] -= f * inv[col, c]
    return inv


@_jit
def _system(gram, rho):
    """``inv(G + rho I)`` in float32, ADMM's x-update."""
    shifted = gram.copy()
    for kk in range(gram.shape[0]):
        shifted[kk, kk] += rho
    return _inverse(shifted).astype(np.float32)


@_jit
def _project(v, j, simplex, sorted_):
    """Column ``j`` of ``v`` onto the simplex (or the non-negative orthant), in place, as
    :func:`~xanes_stream.spectra.fit.project_simplex`."""
    k = v.shape[0]
    if not simplex:
        for kk in range(k):
            if v[kk, j] < 0.0:
                v[kk, j] = 0.0
        return
    for kk in range(k):  # insertion sort, descending
        x = v[kk, j]
        i = kk
        while i > 0 and sorted_[i - 1] < x:
            sorted_[i] = sorted_[i - 1]
            i -= 1
        sorted_[i] = x
    css = np.float32(0.0)
    theta = np.float32(0.0)
    for i in range(k):
        css += sorted_[i]
        candidate = (css - np.float32(1.0)) / np.float32(i + 1)
        if sorted_[i] - candidate > 0:
            theta = candidate
    for kk in range(k):
        v[kk, j] = max(v[kk, j] - theta, np.float32(0.0))


@_jit
def _admm(gram, h, nt, simplex, iterations, rho, tolerance, z, work):
    """ADMM of :func:`~xanes_stream.spectra.fit.solve` on the tile's pixels (float32), its
    stopping rule and penalty balancing over the tile's finite pixels."""
    k = h.shape[0]
    alpha = np.float32(1.6)
    beta = np.float32(1.0) - alpha
    u = work[:k]
    x = work[k : 2 * k]
    old = work[2 * k : 3 * k]
    relaxed = work[3 * k : 4 * k]
    sorted_ = np.empty(k, np.float32)
    for kk in range(k):
        for j in range(nt):
            z[kk, j] = 0.0
            u[kk, j] = 0.0
    system = _system(gram, rho)
    for iteration in range(iterations):
        r32 = np.float32(rho)
        for kk in range(k):
            xk = x[kk]
            for j in range(nt):
                xk[j] = 0.0
            for ll in range(k):
                a = system[kk, ll]
                hl = h[ll]
                zl = z[ll]
                ul = u[ll]
                for j in range(nt):
                    xk[j] += a * (hl[j] + r32 * (zl[j] - ul[j]))
        for kk in range(k):
            xk = x[kk]
            zk = z[kk]
            uk = u[kk]
            ok = old[kk]
            rk = relaxed[kk]
            for j in range(nt):
                ok[j] = zk[j]
                rk[j] = alpha * xk[j] + beta * zk[j]
                zk[j] = rk[j] + uk[j]
        if simplex:
            for j in range(nt):
                _project(z, j, simplex, sorted_)
        else:  # the non-negative orthant
            for kk in range(k):
                zk = z[kk]
                for j in range(nt):
                    zk[j] = max(zk[j], np.float32(0.0))
        for kk in range(k):
            zk = z[kk]
            uk = u[kk]
            rk = relaxed[kk]
            for j in range(nt):
                uk[j] += rk[j] - zk[j]
        if not (iteration % 5 == 4 or iteration == iterations - 1):
            continue
        primal = 0.0
        dual = 0.0
        scale = 0.0
        dual_norm = 0.0
        for j in range(nt):
            p = 0.0
            d = 0.0
            s = 0.0
            w = 0.0
            for kk in range(k):
                p += (x[kk, j] - z[kk, j]) ** 2
                d += (z[kk, j] - old[kk, j]) ** 2
                s += z[kk, j] ** 2
                w += u[kk, j] ** 2
            if np.isfinite(p + d + s + w):  # a NaN pixel must not keep the tile iterating
                primal = max(primal, p)
                dual = max(dual, d)
                scale = max(scale, s)
                dual_norm = max(dual_norm, w)
        primal = np.sqrt(primal)
        dual = rho * np.sqrt(dual)
        scale = max(np.sqrt(scale), 1e-12)
        dual_scale = rho * max(np.sqrt(dual_norm), scale)
        if primal < tolerance * scale and dual < tolerance * dual_scale:
            break
        if primal > 10 * dual or dual > 10 * primal:
            factor = 2.0 if primal > dual else 0.5
            rho *= factor
            f32 = np.float32(factor)
            for kk in range(k):
                uk = u[kk]
                for j in range(nt):
                    uk[j] /= f32
            system = _system(gram, rho)


@_jit
def _vertex(x0, x1, x2, y0, y1, y2):
    """Sub-grid position of a maximum from a parabola through 3 points, in float32 as
    :func:`~xanes_stream.spectra.features._vertex`."""
    u0 = np.float32(x0 - x1)
    u2 = np.float32(x2 - x1)
    v0 = y0 - y1
    v2 = y2 - y1
    a = (v0 / u0 - v2 / u2) / (u0 - u2)
    offset = -(v0 / u0 - a * u0) / (np.float32(2.0) * a)
    if not a < 0:
        offset = np.float32(0.0)
    if np.isnan(offset):
        offset = np.float32(0.0)
    offset = min(max(offset, u0), u2)
    return np.float32(x1 + np.float64(offset))


@_jit
def _argmax_vertex(values, centres, nt, index, best, out, positive):
    """Per pixel, the first maximum of ``values[1:-1]`` refined by :func:`_vertex`; NaN where
    ``positive`` and the maximum is not above zero."""
    rows = values.shape[0]
    first = values[1]
    for j in range(nt):
        best[j] = first[j]
        index[j] = 0
    for r in range(2, rows - 1):
        vr = values[r]
        for j in range(nt):
            v = vr[j]
            if v > best[j]:
                best[j] = v
                index[j] = r - 1
    for j in range(nt):
        i = index[j]
        e = _vertex(
            centres[i],
            centres[i + 1],
            centres[i + 2],
            values[i, j],
            values[i + 1, j],
            values[i + 2, j],
        )
        if positive and not values[i + 1, j] > 0:
            e = np.float32(np.nan)
        out[j] = e


@_jit
def _half_height(src, row0, s0, design, energy, lin, nt, out):
    """E0 where each pixel's normalized spectrum first rises through 0.5, interpolated (as
    :func:`~xanes_stream.spectra.features.edge_energy`'s ``half_height``)."""
    for j in range(nt):
        inverse = np.float32(1.0) / lin[2, j]
        e0 = np.float32(np.nan)
        below = False
        previous = np.float32(0.0)
        for r in range(design.shape[0]):
            line = design[r, 0] * lin[0, j] + design[r, 1] * lin[1, j]
            y = (src[row0 + r, s0 + j] - line) * inverse
            if r > 0 and below and y >= 0.5:
                t = (np.float32(0.5) - previous) / (y - previous)
                t = min(max(t, np.float32(0.0)), np.float32(1.0))
                e_lo = energy[r - 1]
                e0 = np.float32(e_lo + np.float64(t) * (energy[r] - e_lo))
                break
            below = not y >= 0.5
            previous = y
        out[j] = e0


@_jit
def fused_block(
    mu,
    col0,
    n_pix,
    offset,
    functionals,
    basis_pre,
    pca_pre,
    pca_offset,
    model,
    fit_start,
    weights,
    method,
    operators,
    offsets,
    constrain,
    normalize,
    gram,
    admm_iterations,
    admm_rho0,
    admm_tolerance,
    edge_method,
    edge_row0,
    edge_matrix,
    edge_energy,
    peak_row0,
    peak_x,
    peak_energy,
    pre_row0,
    pre_x,
    jump_gain,
    free,
    max_bad,
    thickness,
    error,
    r_factor,
    chi2,
    edge,
    peak,
    snr,
    jump_map,
    fractions,
    valid,
    features,
):
    """Every per-pixel map of the pixels (columns) ``col0 .. col0 + n_pix`` of ``mu``.

    Parameters
    ----------
    mu : numpy.ndarray
        (n_energy, N) float32 absorption, C-contiguous; only the block's columns are read.
    col0, n_pix : int
        The block's first column and its number of pixels.
    offset : int
        Where the block's first pixel goes in the (flat) output maps.
    functionals : numpy.ndarray
        (3 + k + q + 2, n_energy) float32, C-contiguous: pre-edge offset and slope, edge step,
        R', P', the edge jump (as :class:`~xanes_stream.pipeline.plan.Plan`) and a row of
        ones (any non-finite value makes it non-finite).
    basis_pre, pca_pre : numpy.ndarray
        (k, 2), (q, 2) float32: R' and P' of the pre-edge line on the fit energies.
    pca_offset : numpy.ndarray
        (q,) float32: P' of the sample's mean spectrum.
    model : numpy.ndarray
        (n_fit, 2 + k) float32, C-contiguous: the pre-edge line's design and the references
        on the fit energies, which start at row ``fit_start`` of ``mu``.
    fit_start : int
        The first fit energy.
    weights : numpy.ndarray
        (n_fit,) float32 ``1 / (sigma^2 dof)`` (chi2 of the measured noise), or empty: chi2
        from the scatter about the pre-edge line.
    method : int
        :data:`LSTSQ`, :data:`NNLS` or :data:`ADMM`.
    operators, offsets : numpy.ndarray
        From :func:`solver_tables` (unused by ADMM).
    constrain, normalize : bool
        Sum to one in the fit; divide the fractions by their sum after it.
    gram : numpy.ndarray
        (k, k) float64 Gram matrix of the references.
    admm_iterations, admm_rho0, admm_tolerance : int, float, float
        ADMM's iteration cap, starting penalty (:func:`admm_rho`) and tolerance.
    edge_method : int
        :data:`DERIVATIVE`, :data:`HALF_HEIGHT` or :data:`NO_EDGE` (NaN).
    edge_row0 : int
        First row of ``mu`` the edge reads.
    edge_matrix : numpy.ndarray
        DERIVATIVE: (n_centres, 5) float32, the band of the smoothed derivative's matrix
        (:func:`~xanes_stream.spectra.features.derivative_operator`: row c holds the weights
        of energies c .. c + 4 of its rows); HALF_HEIGHT: (rows, 2)
        float32, the pre-edge line's design on the window's rows.
    edge_energy : numpy.ndarray
        float64 energies of the derivative's centres, or of the half-height rows.
    peak_row0 : int
        First row of the white line's padded window (its rows: ``peak_x.size``; none: NaN).
    peak_x, peak_energy : numpy.ndarray
        float32 scaled energy of the pre-edge line and float64 energies of those rows.
    pre_row0 : int
        First row of the pre-edge window.
    pre_x : numpy.ndarray
        (n_pre,) float32 scaled energies of the pre-edge window (fewer than 4: no scatter).
    jump_gain : float
        The edge jump's noise gain (``Plan.jump_noise_gain``).
    free : int
        Degrees of freedom of the pre-edge chi-square (n_fit - k).
    max_bad : float
        A pixel with more non-finite values is invalid.
    thickness, error, r_factor, chi2, edge, peak : numpy.ndarray
        (P,) float32 outputs.
    snr, jump_map : numpy.ndarray
        (P,) float32 edge signal-to-noise and edge jump (``functionals[-2]``), or empty
        (not made).
    fractions : numpy.ndarray
        (k, P) float32 outputs.
    valid : numpy.ndarray
        (P,) bool output.
    features : numpy.ndarray
        (q, P) float32 output: normalized spectra's principal-component scores.
    """
    n = mu.shape[0]
    m = functionals.shape[0]
    k = basis_pre.shape[0]
    n_fit = model.shape[0]
    weighted = weights.size > 0
    want_snr = snr.size > 0
    n_pre = pre_x.size
    need_pre = want_snr or not weighted
    nan = np.float32(np.nan)
    blas = _blas_scratch()
    buf = np.empty((n, TILE), np.float32)  # a tile with bad values, filled
    lin = np.empty((m, TILE), np.float32)
    h = np.empty((k, TILE), np.float32)
    coef = np.empty((k, TILE), np.float32)
    z = np.empty((2 + k, TILE), np.float32)
    pred = np.empty((n_fit, TILE), np.float32)
    scratch = np.empty((3 * k, TILE), np.float64)
    admm_work = np.empty((4 * k, TILE), np.float32)
    best_obj = np.empty(TILE, np.float64)
    rss = np.empty(TILE, np.float32)
    wrss = np.empty(TILE, np.float32)
    pre_var = np.empty(TILE, np.float32)
    edge_t = np.empty(TILE, np.float32)
    peak_t = np.empty(TILE, np.float32)
    best = np.empty(TILE, np.float32)
    index = np.empty(TILE, np.int64)
    bad = np.zeros(TILE, np.int64)
    smooth = np.empty((edge_matrix.shape[0], TILE), np.float32)
    peak_values = np.empty((peak_x.size, TILE), np.float32)
    g32 = gram.astype(np.float32)
    columns = (
        np.empty(TILE, np.bool_),
        np.empty(TILE, np.float32),
        np.empty(TILE, np.float32),
        np.empty(TILE, np.float32),
        np.empty(TILE, np.float32),
        np.empty(TILE, np.float32),
    )
    for t0 in range(0, n_pix, TILE):
        nt = min(TILE, n_pix - t0)
        # the one read of the tile: every linear functional
        src = mu
        s0 = col0 + t0
        _gemm(functionals, mu, 0, s0, nt, lin, blas)
        any_bad = False
        sentinel = lin[m - 1]
        for j in range(nt):
            bad[j] = 0
            if not np.isfinite(sentinel[j]):
                any_bad = True
        if any_bad:  # fill the tile's bad values in a copy, and read that instead
            for e in range(n):
                buf[e, :nt] = mu[e, s0 : s0 + nt]
            for j in range(nt):
                if not np.isfinite(sentinel[j]):
                    bad[j] = _fill(buf, j)
            src = buf
            s0 = 0
            _gemm(functionals, buf, 0, 0, nt, lin, blas)
        pre0 = lin[0]
        pre1 = lin[1]
        step = lin[2]

        # the fit of the normalized spectra, in Gram form
        for kk in range(k):
            hk = h[kk]
            rk = lin[3 + kk]
            b0 = basis_pre[kk, 0]
            b1 = basis_pre[kk, 1]
            for j in range(nt):
                hk[j] = (rk[j] - (b0 * pre0[j] + b1 * pre1[j])) * (np.float32(1.0) / step[j])
        if method == ADMM:
            _admm(
                gram, h, nt, constrain, admm_iterations, admm_rho0, admm_tolerance, coef, admm_work
            )
        else:
            _solve_exact(
                operators, offsets, gram, h, nt, constrain, method == NNLS, coef, scratch, best_obj
            )

        # the residual on the fit energies: mu - [A R] [pre; c step]
        z[0, :nt] = pre0[:nt]
        z[1, :nt] = pre1[:nt]
        for kk in range(k):
            zk = z[2 + kk]
            ck = coef[kk]
            for j in range(nt):
                zk[j] = ck[j] * step[j]
        _gemm(model, z, 0, 0, nt, pred, blas)
        for j in range(nt):
            rss[j] = 0.0
            wrss[j] = 0.0
        for e in range(n_fit):
            row = src[fit_start + e, s0 : s0 + nt]
            pe = pred[e]
            if weighted:
                w = weights[e]
                for j in range(nt):
                    d = row[j] - pe[j]
                    rss[j] += d * d
                    wrss[j] += w * (d * d)
            else:
                for j in range(nt):
                    d = row[j] - pe[j]
                    rss[j] += d * d

        # the scatter about the pre-edge line (variance of one point)
        if need_pre:
            for j in range(nt):
                pre_var[j] = 0.0 if n_pre >= 4 else nan
            if n_pre >= 4:
                for i in range(n_pre):
                    row = src[pre_row0 + i, s0 : s0 + nt]
                    x = pre_x[i]
                    for j in range(nt):
                        r_ = row[j] - (pre0[j] + x * pre1[j])
                        pre_var[j] += r_ * r_
                for j in range(nt):
                    pre_var[j] /= np.float32(n_pre - 2)

        # E0
        if edge_method == DERIVATIVE:
            for c in range(edge_matrix.shape[0]):  # the band: 5 energies per centre
                sc = smooth[c]
                for j in range(nt):
                    sc[j] = 0.0
                for t in range(5):
                    b = edge_matrix[c, t]
                    row = src[edge_row0 + c + t, s0 : s0 + nt]
                    for j in range(nt):
                        sc[j] += b * row[j]
            _argmax_vertex(smooth, edge_energy, nt, index, best, edge_t, True)
        elif edge_method == HALF_HEIGHT and edge_matrix.shape[0] >= 2:
            _half_height(src, edge_row0, s0, edge_matrix, edge_energy, lin, nt, edge_t)
        else:
            edge_t[:nt] = nan

        # the white line of mu less the pre-edge line's slope
        if peak_x.size >= 3:
            for r in range(peak_x.size):
                row = src[peak_row0 + r, s0 : s0 + nt]
                pr = peak_values[r]
                x = peak_x[r]
                for j in range(nt):
                    pr[j] = row[j] - x * pre1[j]
            _argmax_vertex(peak_values, peak_energy, nt, index, best, peak_t, False)
        else:
            peak_t[:nt] = nan

        # the maps, NaN where the pixel is not valid
        _write_maps(
            offset + t0,
            nt,
            lin,
            coef,
            h,
            g32,
            bad,
            max_bad,
            rss,
            wrss,
            weighted,
            pre_var,
            n_pre,
            free,
            jump_gain,
            n_fit,
            normalize,
            pca_pre,
            pca_offset,
            edge_t,
            peak_t,
            columns,
            thickness,
            error,
            r_factor,
            chi2,
            edge,
            peak,
            snr,
            jump_map,
            fractions,
            valid,
            features,
        )


@_jit
def _write_maps(
    o0,
    nt,
    lin,
    coef,
    h,
    g32,
    bad,
    max_bad,
    rss,
    wrss,
    weighted,
    pre_var,
    n_pre,
    free,
    jump_gain,
    n_fit,
    normalize,
    pca_pre,
    pca_offset,
    edge_t,
    peak_t,
    columns,
    thickness,
    error,
    r_factor,
    chi2,
    edge,
    peak,
    snr,
    jump_map,
    fractions,
    valid,
    features,
):
    """A tile's maps written at ``o0`` of the outputs, NaN where a pixel is not valid."""
    k = coef.shape[0]
    q = pca_pre.shape[0]
    m = lin.shape[0]
    nan = np.float32(np.nan)
    pre0 = lin[0]
    pre1 = lin[1]
    step = lin[2]
    ok, total, quadratic, gc, inverse, r_ = columns
    for j in range(nt):
        s = step[j]
        ok[j] = bad[j] <= max_bad and np.isfinite(s) and s != 0
        total[j] = 0.0
        quadratic[j] = 0.0
        inverse[j] = np.float32(1.0) / s
    for kk in range(k):
        ck = coef[kk]
        for j in range(nt):
            ok[j] = ok[j] and np.isfinite(ck[j])
            total[j] += ck[j]
    for kk in range(k):
        for j in range(nt):
            gc[j] = 0.0
        for ll in range(k):
            g = g32[kk, ll]
            cl = coef[ll]
            for j in range(nt):
                gc[j] += g * cl[j]
        ck = coef[kk]
        hk = h[kk]
        for j in range(nt):
            quadratic[j] += ck[j] * (np.float32(2.0) * hk[j] - gc[j])
    for j in range(nt):
        r_[j] = rss[j] * (inverse[j] * inverse[j])
    out = valid[o0 : o0 + nt]
    for j in range(nt):
        out[j] = ok[j]
    out = thickness[o0 : o0 + nt]
    for j in range(nt):
        out[j] = step[j] if ok[j] else nan
    out = error[o0 : o0 + nt]
    for j in range(nt):
        out[j] = np.sqrt(r_[j] / np.float32(n_fit)) if ok[j] else nan
    out = r_factor[o0 : o0 + nt]
    for j in range(nt):
        out[j] = r_[j] / (r_[j] + quadratic[j]) if ok[j] else nan
    out = chi2[o0 : o0 + nt]
    dof = np.float32(max(free, 1))
    for j in range(nt):
        if weighted:
            value = wrss[j]
        else:
            value = r_[j] / (dof * pre_var[j] / (step[j] * step[j]))
        out[j] = value if ok[j] else nan
    out = edge[o0 : o0 + nt]
    for j in range(nt):
        out[j] = edge_t[j] if ok[j] else nan
    out = peak[o0 : o0 + nt]
    for j in range(nt):
        out[j] = peak_t[j] if ok[j] else nan
    if snr.size > 0:
        out = snr[o0 : o0 + nt]
        gain = np.float32(jump_gain)
        jump = lin[m - 2]
        for j in range(nt):
            if n_pre >= 4:
                variance = pre_var[j] * gain
            else:
                variance = r_[j] * step[j] * step[j] / dof * gain
            out[j] = jump[j] / np.sqrt(variance) if ok[j] else nan
        out = jump_map[o0 : o0 + nt]
        for j in range(nt):
            out[j] = jump[j] if ok[j] else nan
    for kk in range(k):
        out = fractions[kk, o0 : o0 + nt]
        ck = coef[kk]
        for j in range(nt):
            value = ck[j] / total[j] if normalize else ck[j]
            out[j] = value if ok[j] else nan
    for qq in range(q):
        out = features[qq, o0 : o0 + nt]
        scores = lin[3 + k + qq]
        a0 = pca_pre[qq, 0]
        a1 = pca_pre[qq, 1]
        centre = pca_offset[qq]
        for j in range(nt):
            value = (scores[j] - (a0 * pre0[j] + a1 * pre1[j])) * inverse[j] - centre
            out[j] = value if ok[j] else nan
