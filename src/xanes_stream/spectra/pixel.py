"""One spectrum at a time: a pixel's (or the mean's) normalized spectrum, its fit and the
reference components, with the same normalization and fit as :func:`xanes_stream.analyze`.

For looking at a spectrum, as PyXAS's ROI check does: arrays in, a :class:`SpectrumFit` out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from xanes_stream.errors import AnalysisError
from xanes_stream.spectra.fit import solve
from xanes_stream.spectra.normalize import EdgeOperator, EdgeWindows
from xanes_stream.spectra.references import Reference, reference_matrix


@dataclass(frozen=True)
class SpectrumFit:
    """A normalized spectrum on the fit energies, its linear-combination fit and the parts.

    ``components[j]`` is reference j times its fitted weight, so they sum to ``fit``;
    ``coefficients`` are the fractions as the maps give them (weights rescaled to sum to one
    under ``fit.sum_to_one = "normalize"``).
    """

    energies: np.ndarray  # (n_fit,) eV
    normalized: np.ndarray  # (n_fit,)
    fit: np.ndarray  # (n_fit,)
    components: np.ndarray  # (k, n_fit)
    coefficients: np.ndarray  # (k,) the fractions as the maps give them
    reference_names: list[str]
    r_factor: float
    edge_step: float

    def as_dict(self) -> dict:
        """The fit as plain lists and floats (NaN stays NaN: JSON writers such as the web
        view's turn it into null).

        Returns
        -------
        dict
            ``energies``, ``normalized``, ``fit``, ``components`` and ``fractions`` (by
            reference name), ``r_factor``, ``edge_step``.
        """
        return {
            "energies": self.energies.tolist(),
            "normalized": self.normalized.tolist(),
            "fit": self.fit.tolist(),
            "components": dict(zip(self.reference_names, self.components.tolist(), strict=True)),
            "fractions": dict(zip(self.reference_names, self.coefficients.tolist(), strict=True)),
            "r_factor": float(self.r_factor),
            "edge_step": float(self.edge_step),
        }


def windows_from(normalization: Mapping) -> EdgeWindows:
    """The :class:`EdgeWindows` of a maps' ``metadata["normalization"]``.

    Parameters
    ----------
    normalization : mapping
        ``e0``, ``pre_edge``, ``post_edge``, ``post_edge_order`` and ``fit_range``.

    Returns
    -------
    EdgeWindows
    """
    try:
        return EdgeWindows(
            e0=float(normalization["e0"]),
            pre=tuple(normalization["pre_edge"]),
            post=tuple(normalization["post_edge"]),
            post_order=int(normalization["post_edge_order"]),
            fit=tuple(normalization["fit_range"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise AnalysisError(f"normalization metadata is incomplete: {exc}") from None


def fit_normalized(
    normalized: np.ndarray,
    energies: np.ndarray,
    references: Sequence[Reference],
    *,
    method: str = "nnls",
    sum_to_one: str = "none",
    edge_step: float = float("nan"),
) -> SpectrumFit:
    """Fit one normalized spectrum (on ``energies``, eV) by the references, as analyze does.

    Parameters
    ----------
    normalized : numpy.ndarray
        (n_fit,) normalized spectrum.
    energies : numpy.ndarray
        (n_fit,) eV.
    references : sequence of Reference
        The fit's references; none (a first look): the fit, R-factor are NaN, no components.
    method : str
        As for :func:`~xanes_stream.spectra.fit.solve`.
    sum_to_one : {"none", "normalize", "constrain"}
        As the fit settings say.
    edge_step : float
        The pixel's edge step, reported as is.

    Returns
    -------
    SpectrumFit
    """
    energies = np.asarray(energies, dtype=np.float64)
    y = np.asarray(normalized, dtype=np.float64)
    if y.shape != energies.shape:
        raise AnalysisError(f"spectrum has {y.size} values for {energies.size} energies")
    if not references:  # a first look's pixel: its spectrum, nothing to fit it with
        nothing = np.full(y.shape, np.nan)
        return SpectrumFit(
            energies, y, nothing, np.empty((0, y.size)), np.empty(0), [], np.nan, edge_step
        )
    basis = reference_matrix(list(references), energies, (energies[0], energies[-1]))
    finite = np.isfinite(y)
    c = np.full(basis.shape[1], np.nan)
    if finite.sum() > basis.shape[1]:
        b = basis[finite]
        c = solve(b.T @ b, b.T @ y[finite][:, None], method, sum_to_one=sum_to_one == "constrain")
        c = c[:, 0]
    components = basis.T * c[:, None]
    fit = basis @ c
    fractions = c / c.sum() if sum_to_one == "normalize" else c  # as the maps rescale them
    with np.errstate(invalid="ignore", divide="ignore"):
        r = float(np.nansum((y - fit) ** 2) / np.nansum(y**2)) if finite.any() else float("nan")
    return SpectrumFit(
        energies, y, fit, components, fractions, [r.name for r in references], r, float(edge_step)
    )


def pixel_spectrum(
    frames: np.ndarray,
    energies: np.ndarray,
    y: int,
    x: int,
    references: Sequence[Reference],
    normalization: Mapping,
    *,
    energies_used: np.ndarray | None = None,
    method: str = "nnls",
    sum_to_one: str = "none",
) -> SpectrumFit:
    """The normalized spectrum of pixel (y, x) of an optical-density stack (n, ny, nx) and its
    fit, with the scan's normalization windows (``maps.metadata["normalization"]``).

    Frames are sorted by energy and repeated energies averaged, as in analyze; with
    ``energies_used`` (``maps.energies``) frames analyze dropped are left out too.

    Parameters
    ----------
    frames : numpy.ndarray
        (n, ny, nx) optical density.
    energies : numpy.ndarray
        (n,) eV.
    y, x : int
        The pixel.
    references : sequence of Reference
        The fit's references.
    normalization : mapping
        ``maps.metadata["normalization"]``.
    energies_used : numpy.ndarray, optional
        ``maps.energies``: the energies analyze kept.
    method, sum_to_one
        As for :func:`fit_normalized`.

    Returns
    -------
    SpectrumFit
    """
    frames = np.asarray(frames)
    energies = np.asarray(energies, dtype=np.float64).ravel()
    if frames.ndim != 3 or frames.shape[0] != energies.size:
        raise AnalysisError(f"frames {frames.shape} do not match {energies.size} energies")
    ny, nx = frames.shape[1:]
    if not (0 <= y < ny and 0 <= x < nx):
        raise AnalysisError(f"pixel ({y}, {x}) is outside the {ny} x {nx} image")
    mu = frames[:, y, x].astype(np.float64)
    keep = np.isfinite(energies)
    if energies_used is not None:
        keep &= np.isclose(energies[:, None], np.asarray(energies_used)[None, :]).any(axis=1)
    unique, inverse = np.unique(energies[keep], return_inverse=True)
    values = mu[keep]
    good = np.isfinite(values)
    sums = np.bincount(inverse[good], values[good], minlength=unique.size)
    counts = np.bincount(inverse[good], minlength=unique.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / counts
    ok = np.isfinite(mean)
    if ok.sum() < 5:
        raise AnalysisError(f"pixel ({y}, {x}) has {int(ok.sum())} usable energies; need 5")
    mean = np.interp(unique, unique[ok], mean[ok])  # fill as analyze does, from neighbours
    operator = EdgeOperator.build(unique, windows_from(normalization))
    norm, step = operator.apply(mean[:, None], out_dtype=np.float64)
    return fit_normalized(
        norm[:, 0],
        operator.fit_energy,
        references,
        method=method,
        sum_to_one=sum_to_one,
        edge_step=float(step[0]),
    )
