"""Edge normalization: pre-edge line, post-edge polynomial, edge step; after Larch's ``pre_edge``.

Everything here is linear in mu, so the whole normalization of a block of pixels is a small
matrix product (:class:`EdgeOperator`): that is what makes it fast over 10^6 spectra.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xanes_stream.errors import NormalizationError

#: Energies are centred on E0 and scaled by this (eV) in the polynomial fits, for conditioning.
_SCALE = 100.0


@dataclass(frozen=True)
class EdgeWindows:
    """Absolute energy windows (eV) of one scan's edge normalization and fit."""

    e0: float
    pre: tuple[float, float]
    post: tuple[float, float]
    post_order: int
    fit: tuple[float, float]

    def as_dict(self) -> dict:
        return {
            "e0": self.e0,
            "pre_edge": list(self.pre),
            "post_edge": list(self.post),
            "post_edge_order": self.post_order,
            "fit_range": list(self.fit),
        }


def find_e0(energy: np.ndarray, mu: np.ndarray) -> float:
    """E0 of one spectrum: the energy of the largest derivative, ignoring isolated glitches.

    Follows Larch's ``find_e0``: the derivative is smoothed lightly, the first and last 2% of
    points are ignored, and the maximum must have high-derivative neighbours on both sides.

    Parameters
    ----------
    energy : numpy.ndarray
        (n,) eV, increasing.
    mu : numpy.ndarray
        (n,) absorption.

    Returns
    -------
    float
        E0 in eV.
    """
    energy = np.asarray(energy, dtype=np.float64)
    mu = np.asarray(mu, dtype=np.float64)
    n = energy.size
    if n < 5:
        raise NormalizationError(f"need at least 5 energies to find E0, got {n}")
    dmu = np.gradient(mu, energy)
    dmu = np.convolve(np.pad(dmu, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")
    dmu[~np.isfinite(dmu)] = -np.inf
    nmin = max(1, min(3, n // 10), int(n * 0.02))
    inner = np.arange(nmin, n - nmin)
    high = dmu > 0.6 * dmu[inner].max()
    candidates = inner[high[inner - 1] & high[inner] & high[np.minimum(inner + 1, n - 1)]]
    if candidates.size == 0:
        candidates = inner
    return float(energy[candidates[np.argmax(dmu[candidates])]])


def _round5(value: float) -> float:
    return 5.0 * round(value / 5.0)


def edge_windows(
    energy: np.ndarray,
    e0: float,
    *,
    pre: tuple[float, float] | None = None,
    post: tuple[float, float] | None = None,
    post_order: int | None = None,
    fit: tuple[float, float] | None = None,
) -> EdgeWindows:
    """Absolute windows for a scan; ``pre``/``post`` are relative to E0, as in Larch.

    Defaults follow Larch's ``pre_edge``: pre = (second energy - E0 rounded to 5 eV, half of
    that), post = (min(25, norm2/15), last energy - E0), post-edge polynomial order 2 when the
    post-edge window is wider than 300 eV, 1 when wider than 30 eV, else 0. ``fit`` is absolute
    and defaults to the whole scan.

    Parameters
    ----------
    energy : numpy.ndarray
        (n,) eV of the scan.
    e0 : float
        Edge energy (eV).
    pre, post : (float, float), optional
        Windows relative to E0 (eV); None: Larch's defaults.
    post_order : int, optional
        Post-edge polynomial order; None: from the window's width.
    fit : (float, float), optional
        Absolute fit range (eV); None: the whole scan.

    Returns
    -------
    EdgeWindows
    """
    energy = np.asarray(energy, dtype=np.float64)
    lo, hi = float(energy[0]), float(energy[-1])
    if not lo < e0 < hi:
        raise NormalizationError(f"E0 {e0:.1f} eV lies outside the scan ({lo:.1f}-{hi:.1f} eV)")
    if pre is None:
        ie0 = int(np.argmin(np.abs(energy - e0)))
        step = 5.0 if ie0 > 20 else 2.0
        pre1 = max(step * round((energy[min(1, energy.size - 1)] - e0) / step), lo - e0)
        pre = (pre1, 0.5 * pre1)
    if post is None:
        norm2 = min(_round5(hi - e0), hi - e0)
        norm1 = min(min(25.0, _round5(norm2 / 15.0)), norm2 - 10.0)
        post = (norm1, norm2)
    pre = (min(pre), max(pre))
    post = (min(post), max(post))
    if post_order is None:
        width = post[1] - post[0]
        post_order = 2 if width >= 300 else 1 if width >= 30 else 0
    windows = EdgeWindows(
        e0=float(e0),
        pre=(e0 + pre[0], e0 + pre[1]),
        post=(e0 + post[0], e0 + post[1]),
        post_order=int(post_order),
        fit=(lo, hi) if fit is None else (float(min(fit)), float(max(fit))),
    )
    _check_points(energy, windows)
    return windows


def _in_window(energy: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    return (energy >= window[0] - 1e-6) & (energy <= window[1] + 1e-6)


def larch_rows(energy: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Indices of a pre- or post-edge window as Larch picks them.

    From the last energy at or below the start to the energy nearest the end, end excluded,
    and at least two points.

    Parameters
    ----------
    energy : numpy.ndarray
        (n,) eV.
    window : (float, float)
        Absolute window (eV).

    Returns
    -------
    numpy.ndarray
        Row indices.
    """
    start = max(int(np.searchsorted(energy, window[0] + 1e-9, side="right")) - 1, 0)
    stop = int(np.argmin(np.abs(energy - window[1])))
    if stop - start < 2:
        stop = min(energy.size, start + 2)
    return np.arange(start, stop)


def _check_points(energy: np.ndarray, windows: EdgeWindows) -> None:
    n_pre = int((_in_window(energy, windows.pre)).sum())
    n_post = int((_in_window(energy, windows.post)).sum())
    n_fit = int(_in_window(energy, windows.fit).sum())
    if n_pre < 2:
        raise NormalizationError(
            f"pre-edge window {windows.pre[0]:.1f}-{windows.pre[1]:.1f} eV holds {n_pre} energies;"
            " need 2 (set normalization.pre_edge)"
        )
    if n_post < windows.post_order + 1:
        raise NormalizationError(
            f"post-edge window {windows.post[0]:.1f}-{windows.post[1]:.1f} eV holds {n_post} "
            f"energies; need {windows.post_order + 1} (set normalization.post_edge)"
        )
    if n_fit < 2:
        raise NormalizationError(
            f"fit range {windows.fit[0]:.1f}-{windows.fit[1]:.1f} eV holds {n_fit} energies"
        )


@dataclass(frozen=True)
class EdgeOperator:
    """The edge normalization of one scan as matrices acting on mu (n_energy, n_pixels).

    ``coefficients @ mu`` gives, per pixel, the pre-edge line (offset and slope in the scaled
    energy) and the edge step; :meth:`apply` turns a block of mu into normalized spectra on the
    fit energies.
    """

    windows: EdgeWindows
    energy: np.ndarray
    coefficients: np.ndarray  # (3, n_energy): pre offset, pre slope, edge step
    fit_index: slice  # the fit energies: a contiguous window
    pre_design_fit: np.ndarray  # (n_fit, 2): pre-edge line at the fit energies

    @classmethod
    def build(cls, energy: np.ndarray, windows: EdgeWindows) -> EdgeOperator:
        energy = np.asarray(energy, dtype=np.float64)
        x = (energy - windows.e0) / _SCALE
        n = energy.size
        pre_rows = larch_rows(energy, windows.pre)
        post_rows = larch_rows(energy, windows.post)
        pre_design = np.stack([np.ones(n), x], axis=1)  # line at every energy
        pre_op = np.zeros((2, n))
        pre_op[:, pre_rows] = np.linalg.pinv(pre_design[pre_rows])
        # Post-edge polynomial fitted to (mu - pre_line); its value at E0 (x = 0) is the step.
        post_design = np.vander(x[post_rows], windows.post_order + 1, increasing=True)
        select_post = np.zeros((post_rows.size, n))
        select_post[np.arange(post_rows.size), post_rows] = 1.0
        minus_pre = select_post - pre_design[post_rows] @ pre_op
        step_op = np.linalg.pinv(post_design)[0] @ minus_pre
        fit_rows = np.flatnonzero(_in_window(energy, windows.fit))
        fit_index = slice(int(fit_rows[0]), int(fit_rows[-1]) + 1)
        return cls(
            windows=windows,
            energy=energy,
            coefficients=np.vstack([pre_op, step_op]),
            fit_index=fit_index,
            pre_design_fit=pre_design[fit_index],
        )

    @property
    def fit_energy(self) -> np.ndarray:
        return self.energy[self.fit_index]

    def apply(self, mu: np.ndarray, out_dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
        """Normalized spectra on the fit energies (n_fit, P) and the edge step (P,)."""
        dtype = np.result_type(mu.dtype, out_dtype)
        coefs = self.coefficients.astype(dtype) @ mu
        step = coefs[2]
        norm = mu[self.fit_index] - self.pre_design_fit.astype(dtype) @ coefs[:2]
        with np.errstate(divide="ignore", invalid="ignore"):
            norm /= step
        return norm.astype(out_dtype, copy=False), step.astype(out_dtype, copy=False)

    def curves(self, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pre-edge line and post-edge curve at every energy, shape (n_energy, P)."""
        mu = np.asarray(mu, dtype=np.float64)
        x = (self.energy - self.windows.e0) / _SCALE
        pre_design = np.stack([np.ones_like(x), x], axis=1)
        pre = pre_design @ (self.coefficients[:2] @ mu)
        post_rows = larch_rows(self.energy, self.windows.post)
        vander = np.vander(x[post_rows], self.windows.post_order + 1, increasing=True)
        post_coefs = np.linalg.pinv(vander) @ (mu - pre)[post_rows]
        post = pre + np.vander(x, self.windows.post_order + 1, increasing=True) @ post_coefs
        return pre, post


@dataclass(frozen=True)
class Normalized:
    """Result of :func:`normalize` on whole spectra (every energy)."""

    norm: np.ndarray
    step: np.ndarray
    pre_edge: np.ndarray
    post_edge: np.ndarray


def normalize(energy: np.ndarray, mu: np.ndarray, windows: EdgeWindows) -> Normalized:
    """Edge-normalize spectra ``mu`` of shape (n_energy,) or (n_energy, P) at every energy.

    Parameters
    ----------
    energy : numpy.ndarray
        (n_energy,) eV.
    mu : numpy.ndarray
        (n_energy,) or (n_energy, P) absorption.
    windows : EdgeWindows
        From :func:`edge_windows`.

    Returns
    -------
    Normalized
        The normalized spectra, edge step and pre- and post-edge curves.
    """
    mu = np.asarray(mu, dtype=np.float64)
    squeeze = mu.ndim == 1
    mu2 = mu[:, None] if squeeze else mu
    op = EdgeOperator.build(energy, windows)
    step = op.coefficients[2] @ mu2
    pre, post = op.curves(mu2)
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = (mu2 - pre) / step
    if squeeze:
        return Normalized(norm[:, 0], step[0], pre[:, 0], post[:, 0])
    return Normalized(norm, step, pre, post)
