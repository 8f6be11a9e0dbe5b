"""Standard errors of fitted fractions from the fit's covariance on each pixel's active set.

A Gram-form fit on an active set (the references with a nonzero coefficient) is linear in the
fitted spectrum: ``c = A y + v``, ``A = M D'`` (``D`` the fitted design on the fit energies,
``M`` the least squares on the set, with the sum-to-one constraint when imposed). With
``y``'s noise independent between energies, of variance ``V_e``,
``var(c_i) = sum_e A_ie^2 V_e``, and the fractions ``f = c / sum c`` (Jacobian
``J = (I - f 1') / sum c``) have ``var(f_i) = sum_e (A_ie - f_i a_e)^2 V_e / (sum c)^2``,
``a_e = sum_j A_je``. ``V`` is either measured (one value per energy) or estimated per pixel
and energy from the residual, ``V_pe = r_pe^2 / d_e`` (``d_e`` the residual's share of the
noise at ``e``: ``1 - leverage`` for a projection), the heteroscedasticity-consistent
("sandwich") estimate, which stays right when the noise differs between energies (counting
noise in transmission grows as ``exp(mu)``). Pixels are grouped by active-set pattern (at most
``2^k``); each pattern costs three small matrix products over its pixels.
"""

from __future__ import annotations

import numpy as np

from xanes_stream.spectra.fit import _subset_operator


def active_patterns(coefficients: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The active-set pattern of each pixel as a bit code, and the distinct codes.

    Parameters
    ----------
    coefficients : numpy.ndarray
        (k, P) fitted coefficients.

    Returns
    -------
    codes : numpy.ndarray
        (U,) distinct codes (bit ``i`` set: reference ``i`` active).
    inverse : numpy.ndarray
        (P,) index into ``codes`` of each pixel's pattern.
    """
    k = coefficients.shape[0]
    bits = (1 << np.arange(k, dtype=np.int64))[:, None]
    pixel_codes = ((coefficients != 0) * bits).sum(axis=0)
    return np.unique(pixel_codes, return_inverse=True)


def fraction_errors(
    coefficients: np.ndarray,
    design: np.ndarray,
    gram: np.ndarray,
    *,
    residual_variance: np.ndarray | None = None,
    variance: np.ndarray | None = None,
    pixel_scale: np.ndarray | None = None,
    full_design: np.ndarray | None = None,
    constrained: bool = False,
    normalize: bool = False,
    scale_variance: np.ndarray | None = None,
) -> np.ndarray:
    """The 1-sigma standard error of each fraction, per pixel.

    Parameters
    ----------
    coefficients : numpy.ndarray
        (k, P) the fit's coefficients, before any normalisation to fractions.
    design : numpy.ndarray
        (n_fit, k) the fitted design ``D`` (``gram = D'D``).
    gram : numpy.ndarray
        (k, k) the fit's Gram matrix.
    residual_variance : numpy.ndarray, optional
        (n_fit, P) the noise variance per energy and pixel estimated from the residual,
        ``r^2 / d``.
    variance : numpy.ndarray, optional
        (n_fit,) the measured noise variance per energy (used when ``residual_variance`` is
        None), times ``pixel_scale`` (P,) per pixel if given.
    full_design : numpy.ndarray, optional
        (n, k) the fit's map from the measured spectrum on every energy, where the fitted
        spectrum is itself derived from it (an edge-normalized one): the residual's variance
        is scaled, per pixel, by the ratio of the fractions' white-noise variance through
        ``full_design`` to that through ``design``, for the noise the residual cannot show.
    constrained : bool
        The fit imposed sum-to-one.
    normalize : bool
        Fractions are ``c / sum(c)``: propagated through its Jacobian.
    scale_variance : numpy.ndarray, optional
        (P,) relative variance of a scale common to all coefficients (an edge step's), added
        as ``c_i^2 * scale_variance`` when not normalizing (it cancels in ``c / sum c``).

    Returns
    -------
    numpy.ndarray
        (k, P) float32; NaN where a pixel has no active reference.
    """
    gram = np.asarray(gram, dtype=np.float64)
    design = np.asarray(design, dtype=np.float64)
    k, n_pixels = coefficients.shape
    codes, inverse = active_patterns(coefficients)
    # the maps of every pattern present, and of the whole set (last) for pinned fractions
    subsets = [tuple(i for i in range(k) if code >> i & 1) for code in codes.tolist()]
    subsets.append(tuple(range(k)))
    maps = [
        _subset_operator(gram, subset, constrained)[0] if subset else None for subset in subsets
    ]
    rows = np.concatenate([_rows(M, design) for M in maps])  # (U+1)(2k+1) x n_fit
    c = coefficients.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        total = c.sum(axis=0)
        f = c / total
        if residual_variance is not None:
            q = (rows.astype(residual_variance.dtype) @ residual_variance).reshape(
                len(subsets), 2 * k + 1, n_pixels
            )
            if full_design is not None:  # noise the residual cannot show, as a ratio
                full = np.concatenate([_rows(M, full_design) for M in maps])
                ratio = _white(full.sum(axis=1), f, normalize, k) / _white(
                    rows.sum(axis=1), f, normalize, k
                )
                if normalize:  # one ratio per pixel, for the fractions together
                    q = q * ratio[:, None, :]
                else:  # one per reference
                    q[:, :k] *= ratio[:, :, None].astype(q.dtype)
        else:
            scale = 1.0 if pixel_scale is None else pixel_scale
            q = (rows @ variance).reshape(len(subsets), 2 * k + 1, 1) * scale
            q = np.broadcast_to(q, (len(subsets), 2 * k + 1, n_pixels))
        own = np.take_along_axis(q[:-1], inverse[None, None, :], axis=0)[0]
        var = _combine(own, c, f, total, normalize, scale_variance, k)
        held = c == 0
        if normalize:
            held |= (np.count_nonzero(c, axis=0) == 1)[None, :]
        # A bound that holds a fraction at 0 (or the only active one at 1) gives it no
        # variance on the active set: there the whole set's is reported.
        if held.any():
            var = np.where(held, _combine(q[-1], c, f, total, normalize, scale_variance, k), var)
        var[:, ~np.any(c != 0, axis=0)] = np.nan
    return np.sqrt(np.maximum(var, 0.0)).astype(np.float32)


def _rows(M: np.ndarray | None, design: np.ndarray) -> np.ndarray:
    """(2k + 1, n) the rows whose products with a variance give ``var(c)`` and the sums the
    Jacobian of ``c / sum c`` needs: ``A*A``, ``A*a`` and ``a*a`` with ``A = M D'``,
    ``a = 1'A``."""
    k = design.shape[1]
    if M is None:
        return np.zeros((2 * k + 1, design.shape[0]))
    A = M @ design.T
    a = A.sum(axis=0)
    return np.vstack([A * A, A * a, a * a])


def _combine(q, c, f, total, normalize, scale_variance, k) -> np.ndarray:
    """(k, P) variances from ``q`` (2k + 1, P): ``var(c_i) = q1_i``; normalized,
    ``var(f_i) = (q1_i - 2 f_i q2_i + f_i^2 q3) / (sum c)^2``."""
    q1, q2, q3 = q[:k], q[k : 2 * k], q[2 * k]
    if normalize:
        return (q1 - 2 * f * q2 + f * f * q3) / total**2
    if scale_variance is not None:
        return q1 + c * c * scale_variance
    return np.array(q1, dtype=np.float64)


def _white(sums: np.ndarray, f: np.ndarray, normalize: bool, k: int) -> np.ndarray:
    """Per pattern and pixel, (U+1, P) (normalized: ``sum_i`` of the fractions' variance
    times ``(sum c)^2``) or (U+1, k), under unit white noise, from the rows' sums."""
    table = sums.reshape(-1, 2 * k + 1)
    if not normalize:
        return table[:, :k]
    q1, q2, q3 = table[:, :k, None], table[:, k : 2 * k, None], table[:, 2 * k, None, None]
    return np.sum(q1 - 2 * f * q2 + f * f * q3, axis=1)
