"""PCA denoising of absorption spectra: the energy-space principal components of a sample of
pixels, how many of them rise above the noise, and their projector.

The components come from the mean-centred spectra of a bounded sample of pixels (the
analysis' sample), through the small n_energy x n_energy Gram, never an SVD of the whole
stack. Every pixel is then replaced by the sample mean plus its projection on the first ``k``
components (:meth:`Projection.apply`), a rank-k operator applied block by block.

Choosing ``k`` ("auto", :func:`noise_rank`): the singular values of a matrix of white noise
fill the Marchenko-Pastur bulk, whose top edge is ``sigma (sqrt(n) + sqrt(P))`` for an
n x P matrix. The noise level ``sigma`` is estimated from the median singular value, which
belongs to the bulk when, as here, most of the n_energy components are noise alone:
``sigma = median(s) / sqrt(P mu_beta)``, ``mu_beta`` the median of the Marchenko-Pastur law of
aspect ratio ``beta = n / P``. A component counts when its singular value exceeds the edge by
``margin`` (5 %): Poisson noise is not quite white (its variance differs between pixels and
energies), which widens the bulk a little beyond the white-noise edge. Gavish & Donoho's
optimal threshold (``omega(beta) median(s)``, about 35 % above the edge at these shapes) was
tried first and left out a weak but real component (the third reference's), which the fit's
fractions need.

Known limit: on registered frames the rule keeps too many components. Bilinear shifts smooth
each frame's noise by a different amount and leave small misregistration at edges, so the
scree has no flat bulk (a 96 x 96 three-reference phantom at 2,000 counts with 0.5 px drift:
"auto" keeps 18, no gain; 6 would lower the median fraction error 1.4x). Give ``k`` there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xanes_stream.errors import AnalysisError


@dataclass(frozen=True)
class Projection:
    """Mean + first ``k`` principal components of a set of spectra.

    Attributes
    ----------
    mean : numpy.ndarray
        (n_energy,) the sample mean spectrum.
    components : numpy.ndarray
        (n_energy, k) orthonormal principal components, largest first.
    singular_values : numpy.ndarray
        Every singular value of the centred sample, largest first (the scree).
    explained : float
        Fraction of the centred sample's variance the ``k`` components hold.
    """

    mean: np.ndarray
    components: np.ndarray
    singular_values: np.ndarray
    explained: float

    @property
    def k(self) -> int:
        """The number of components kept."""
        return self.components.shape[1]

    def apply(self, mu: np.ndarray) -> np.ndarray:
        """Spectra projected on the mean + the components: ``m + V V' (mu - m)``.

        Parameters
        ----------
        mu : numpy.ndarray
            (n_energy, P) spectra, finite.

        Returns
        -------
        numpy.ndarray
            (n_energy, P), a new array of ``mu``'s floating dtype (float32 stays float32).
        """
        dtype = mu.dtype if np.issubdtype(mu.dtype, np.floating) else np.float64
        v = self.components.astype(dtype)
        m = self.mean.astype(dtype)[:, None]
        out = v @ (v.T @ (mu - m))
        out += m
        return out


def principal_components(spectra: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, principal components and singular values of mean-centred spectra.

    Parameters
    ----------
    spectra : numpy.ndarray
        (n_energy, P) spectra of P pixels, finite; P at least 2.

    Returns
    -------
    mean : numpy.ndarray
        (n_energy,) float64.
    components : numpy.ndarray
        (n_energy, r) orthonormal columns, r = min(n_energy, P), by singular value.
    singular_values : numpy.ndarray
        (r,) largest first.
    """
    x = np.asarray(spectra, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise AnalysisError("denoising needs the spectra of at least two pixels")
    if not np.all(np.isfinite(x)):
        raise AnalysisError("denoising needs finite spectra: fill bad values first")
    mean = x.mean(axis=1)
    centred = x - mean[:, None]
    eigenvalues, vectors = np.linalg.eigh(centred @ centred.T)  # small: n_energy x n_energy
    r = min(x.shape)
    eigenvalues, vectors = eigenvalues[::-1][:r], vectors[:, ::-1][:, :r]
    return mean, vectors, np.sqrt(np.clip(eigenvalues, 0.0, None))


def noise_rank(singular_values: np.ndarray, shape: tuple[int, int], margin: float = 1.05) -> int:
    """How many singular values rise above the noise: above ``margin`` times the
    Marchenko-Pastur edge of white noise at the level the median singular value gives (see
    the module's docstring).

    Parameters
    ----------
    singular_values : numpy.ndarray
        The scree of the centred matrix (all min(shape) of them).
    shape : tuple of int
        (n_energy, n_pixels) of that matrix.
    margin : float
        Factor above the edge a component must reach.

    Returns
    -------
    int
        The number of leading singular values above the threshold, at least 1.
    """
    s = np.sort(np.asarray(singular_values, dtype=np.float64))[::-1]
    n, p = sorted(shape)
    sigma = np.median(s) / np.sqrt(p * marchenko_pastur_median(n / p))
    above = s > margin * sigma * (np.sqrt(n) + np.sqrt(p))
    return max(1, s.size if above.all() else int(np.argmin(above)))


def marchenko_pastur_median(beta: float) -> float:
    """The median of the Marchenko-Pastur law of aspect ratio ``beta`` (0 < beta <= 1, unit
    variance): the median eigenvalue of ``X X' / P`` for an n x P white-noise ``X``,
    ``beta = n / P``.

    Parameters
    ----------
    beta : float
        n / P, at most 1.

    Returns
    -------
    float
    """
    lo, hi = (1 - np.sqrt(beta)) ** 2, (1 + np.sqrt(beta)) ** 2
    # x = lo + (hi - lo) sin^2(t): the integrand is smooth in t, even for beta 1 (x from 0)
    edges = np.linspace(0.0, np.pi / 2, 4_001)
    t = 0.5 * (edges[1:] + edges[:-1])
    x = lo + (hi - lo) * np.sin(t) ** 2
    weight = (hi - lo) ** 2 * 2 * (np.sin(t) * np.cos(t)) ** 2 / (2 * np.pi * beta * x)
    cdf = np.concatenate([[0.0], np.cumsum(weight)])
    median_t = np.interp(0.5, cdf / cdf[-1], edges)
    return float(lo + (hi - lo) * np.sin(median_t) ** 2)


def pca_projection(spectra: np.ndarray, components: int | str = "auto") -> Projection:
    """The denoising projection of a sample of spectra.

    Parameters
    ----------
    spectra : numpy.ndarray
        (n_energy, P) absorption spectra of sample pixels, finite.
    components : int or "auto"
        Components to keep; ``"auto"``: :func:`noise_rank` of the scree.

    Returns
    -------
    Projection
    """
    mean, vectors, s = principal_components(spectra)
    if components == "auto":
        k = noise_rank(s, np.shape(spectra))
    elif isinstance(components, int | np.integer) and not isinstance(components, bool):
        if components < 1:
            raise AnalysisError(f"denoising keeps at least one component, not {components}")
        if components > s.size:
            raise AnalysisError(
                f"denoising asked for {components} components, but the spectra have only "
                f"{s.size} (one per energy at most)"
            )
        k = int(components)
    else:
        raise AnalysisError(f"denoise components must be a number or 'auto', not {components!r}")
    total = float(np.sum(s**2))
    explained = float(np.sum(s[:k] ** 2) / total) if total > 0 else 1.0
    return Projection(mean, vectors[:, :k], s, explained)
