"""Reference-free decomposition of normalized spectra: SVD scree, PCA/NMF/ICA/SVD/FA component
maps and spectra (scikit-learn), and Pearson matching of component spectra to a library.

Models are fitted on a bounded random sample of the masked pixels, then every pixel is
projected: NMF by exact non-negative least squares on the component spectra (spectra/fit.py),
the others by their linear ``transform``, in blocks of pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from xanes_stream.errors import AnalysisError
from xanes_stream.spectra.fit import MAX_NNLS_REFERENCES, solve
from xanes_stream.spectra.library import library_matrix
from xanes_stream.spectra.references import Reference

Method = Literal["pca", "nmf", "ica", "svd", "fa"]
METHODS: tuple[str, ...] = ("pca", "nmf", "ica", "svd", "fa")

_BLOCK = 262_144  # pixels projected at a time


class SpectraStack(Protocol):
    """Edge-normalized spectra of every pixel, as the pipeline's ``NormalizedStack`` holds them:
    ``spectra`` (n_energy, ny, nx) on ``energies`` (eV), ``e0`` (eV), ``mask`` (ny, nx) or None."""

    energies: np.ndarray
    spectra: np.ndarray
    e0: float
    mask: np.ndarray | None


@dataclass
class Decomposition:
    """Components of normalized spectra found by :func:`decompose`.

    ``maps`` (k, ny, nx) float32 (NaN where a spectrum is not finite), ``components`` (k, n)
    float32 spectra on ``energies`` (None when not known), ``scree`` a table (component,
    singular_value, cumulative_energy) and ``metadata`` JSON-able facts (k, estimate, ...).
    """

    method: str
    maps: np.ndarray
    components: np.ndarray
    scree: dict[str, np.ndarray]
    energies: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)


def _as_matrix(stack, mask) -> tuple[np.ndarray, tuple[int, int], np.ndarray | None, np.ndarray]:
    """Spectra as (n, P), the image shape, the energies (or None) and the usable pixels (P,)."""
    energies = None
    if hasattr(stack, "spectra"):  # a SpectraStack
        energies = stack.energies
        mask = stack.mask if mask is None else mask
        stack = stack.spectra
    stack = np.asarray(stack)
    if stack.ndim != 3:
        raise AnalysisError(f"spectra must be (n_energy, ny, nx), got shape {stack.shape}")
    n, ny, nx = stack.shape
    spectra = stack.reshape(n, ny * nx)
    finite = np.isfinite(spectra).all(axis=0)
    usable = finite if mask is None else finite & np.asarray(mask, dtype=bool).ravel()
    if usable.sum() < 2:
        raise AnalysisError("fewer than 2 usable (finite, masked) pixels")
    return spectra, (ny, nx), energies, usable


def _sample(usable: np.ndarray, max_pixels: int, seed: int) -> np.ndarray:
    inside = np.flatnonzero(usable)
    if inside.size <= max_pixels:
        return inside
    return np.sort(np.random.default_rng(seed).choice(inside, max_pixels, replace=False))


def scree(
    stack: SpectraStack | np.ndarray,
    mask: np.ndarray | None = None,
    *,
    max_pixels: int = 20_000,
    seed: int = 0,
) -> np.ndarray:
    """Singular values of the (uncentred) normalized spectra of the masked pixels.

    Parameters
    ----------
    stack : SpectraStack or numpy.ndarray
        Normalized spectra (n, ny, nx), or a stack holding them (its mask is the default).
    mask : numpy.ndarray, optional
        (ny, nx) bool: the pixels to use.
    max_pixels : int
        Random sample of the masked pixels to use at most.
    seed : int
        Seed of the sample.

    Returns
    -------
    numpy.ndarray
        The singular values, largest first.
    """
    spectra, _, _, usable = _as_matrix(stack, mask)
    sample = spectra[:, _sample(usable, max_pixels, seed)].astype(np.float64)
    return singular_values(sample)


def singular_values(x: np.ndarray) -> np.ndarray:
    """Singular values of a short wide matrix, from its n x n Gram.

    Parameters
    ----------
    x : numpy.ndarray
        (n, P) matrix.

    Returns
    -------
    numpy.ndarray
        min(n, P) singular values, largest first.
    """
    x = np.asarray(x, dtype=np.float64)
    eigenvalues = np.linalg.eigvalsh(x @ x.T if x.shape[0] <= x.shape[1] else x.T @ x)
    return np.sqrt(np.clip(eigenvalues[::-1], 0.0, None))


def estimate_components(
    singular_values: np.ndarray, shape: tuple[int, int], *, min_ratio: float = 0.035
) -> int:
    """Number of significant components of a scree.

    A component counts when its singular value is above both the noise floor of Gavish &
    Donoho's optimal hard threshold for unknown white noise, ``omega(beta) * median(s)``, and
    ``min_ratio`` times the first (the mean spectrum's). The second criterion ignores real but
    chemically negligible structure that normalization and registration leave in the spectra
    (a component of 3.5 % of the mean moves fractions by about as much as the fit's own error).

    Parameters
    ----------
    singular_values : numpy.ndarray
        The scree.
    shape : tuple of int
        (n_energy, n_pixels) of the matrix it came from.
    min_ratio : float
        Floor relative to the first singular value.

    Returns
    -------
    int
        At least 1.
    """
    s = np.sort(np.asarray(singular_values, dtype=np.float64))[::-1]
    n, p = shape
    beta = min(n, p) / max(n, p)
    omega = 0.56 * beta**3 - 0.95 * beta**2 + 1.82 * beta + 1.43
    significant = (s > omega * np.median(s)) & (s >= min_ratio * s[0])
    return max(1, int(np.argmin(significant)) if not significant.all() else s.size)


def decompose(
    stack: SpectraStack | np.ndarray,
    method: Method = "nmf",
    n_components: int | None = None,
    mask: np.ndarray | None = None,
    *,
    energies: np.ndarray | None = None,
    max_pixels: int = 20_000,
    min_ratio: float = 0.035,
    seed: int = 0,
) -> Decomposition:
    """Component maps and spectra of normalized spectra.

    ``n_components=None`` estimates it from the scree (:func:`estimate_components`). NMF
    component spectra are scaled to unit mean above the edge (E0 + 20 eV, or the last third of
    the energies) so its maps read as fractions; NMF components are ordered by edge position
    (where the spectrum first reaches half its step), the others by importance.

    Parameters
    ----------
    stack : SpectraStack or numpy.ndarray
        Normalized spectra (n, ny, nx), or a stack holding them (with energies, E0, mask).
    method : {"pca", "nmf", "ica", "svd", "fa"}
        The scikit-learn model.
    n_components : int, optional
        k; None: from the scree.
    mask : numpy.ndarray, optional
        (ny, nx) bool: pixels the model is fitted on (default: the stack's mask).
    energies : numpy.ndarray, optional
        (n,) eV, when ``stack`` is an array.
    max_pixels : int
        Pixels the model is fitted on at most (a random sample).
    min_ratio : float
        Scree floor relative to the first singular value.
    seed : int
        Seed of the sample and the model.

    Returns
    -------
    Decomposition
    """
    if method not in METHODS:
        raise AnalysisError(f"unknown decomposition method {method!r}; use one of {METHODS}")
    e0 = getattr(stack, "e0", None)
    spectra, (ny, nx), stack_energies, usable = _as_matrix(stack, mask)
    energies = stack_energies if energies is None else np.asarray(energies, dtype=np.float64)
    sample = spectra[:, _sample(usable, max_pixels, seed)].astype(np.float64)
    singular = singular_values(sample)
    estimate = estimate_components(singular, sample.shape, min_ratio=min_ratio)
    k = estimate if n_components is None else int(n_components)
    if not 1 <= k <= min(sample.shape):
        raise AnalysisError(f"n_components must be 1..{min(sample.shape)}, got {k}")

    model, components = _fit(method, sample.T, k, seed)
    maps = np.full((k, ny * nx), np.nan, dtype=np.float32)
    for start in range(0, spectra.shape[1], _BLOCK):  # column slices: no gathering copies
        pixels = slice(start, start + _BLOCK)
        block = spectra[:, pixels]
        good = np.isfinite(block).all(axis=0)
        weights = _project(method, model, components, np.where(good, block, 0.0))
        maps[:, pixels] = np.where(good, weights, np.nan)
    if method == "nmf":
        components, maps = _scale_nmf(components, maps, energies, e0)

    energy = np.sqrt(np.cumsum(singular**2) / np.sum(singular**2))
    metadata = {
        "method": method,
        "n_components": k,
        "estimated_components": estimate,
        "fitted_pixels": int(sample.shape[1]),
        "masked_pixels": int(usable.sum()),
        "min_ratio": min_ratio,
    }
    if method in ("pca", "fa"):
        metadata["mean_spectrum"] = model.mean_.tolist()
    if method == "pca":
        metadata["explained_variance_ratio"] = model.explained_variance_ratio_.tolist()
    if method == "nmf":
        metadata["reconstruction_error"] = float(model.reconstruction_err_)
        # the maps are exact NNLS on the components, however far the factorization went
        metadata["converged"] = bool(model.n_iter_ < model.max_iter)
    return Decomposition(
        method=method,
        maps=maps.reshape(k, ny, nx),
        components=components.astype(np.float32),
        scree={
            "component": np.arange(1, singular.size + 1),
            "singular_value": singular,
            "cumulative_energy": energy,
        },
        energies=None if energies is None else np.asarray(energies),
        metadata=metadata,
    )


def _fit(method: str, x: np.ndarray, k: int, seed: int):
    """The fitted scikit-learn model and its component spectra (k, n) on samples ``x`` (P, n)."""
    from sklearn import decomposition as skd  # slow to import: only when decomposing

    if method == "nmf":
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        model = skd.NMF(k, init="nndsvda", max_iter=300, tol=1e-3, random_state=seed)
        with warnings.catch_warnings():  # said in the metadata (n_iter), not on the console
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(np.clip(x, 0.0, None))
        return model, model.components_.copy()
    if method == "pca":
        model = skd.PCA(k, random_state=seed).fit(x)
        return model, model.components_.copy()
    if method == "svd":
        if k >= x.shape[1]:
            raise AnalysisError(f"truncated SVD needs n_components < {x.shape[1]}, got {k}")
        model = skd.TruncatedSVD(k, algorithm="arpack", random_state=seed).fit(x)
        return model, model.components_.copy()
    if method == "ica":
        model = skd.FastICA(k, whiten="unit-variance", max_iter=1000, random_state=seed).fit(x)
        return model, model.mixing_.T.copy()
    model = skd.FactorAnalysis(k, random_state=seed).fit(x)
    return model, model.components_.copy()


def _project(method: str, model, components: np.ndarray, spectra: np.ndarray) -> np.ndarray:
    """Component weights (k, P) of spectra (n, P)."""
    if method == "nmf":
        gram = components @ components.T
        h = (components.astype(np.float32) @ spectra).astype(np.float64)
        how = "nnls" if components.shape[0] <= MAX_NNLS_REFERENCES else "admm"
        return solve(gram, h, how).astype(np.float32)
    if method in ("pca", "svd"):  # linear: one product, no float64 copy of the pixels
        weights = components.astype(np.float32) @ spectra
        if method == "pca":
            weights -= (components @ model.mean_).astype(np.float32)[:, None]
        return weights
    return model.transform(spectra.T).T.astype(np.float32)


def _scale_nmf(components, maps, energies, e0):
    """Unit mean above the edge for every component spectrum; order by edge position."""
    n = components.shape[1]
    if energies is not None and e0 is not None and np.any(energies > e0 + 20):
        above = energies > e0 + 20
    else:
        above = np.arange(n) >= 2 * n // 3
    scale = components[:, above].mean(axis=1)
    scale = np.where(scale > 0, scale, 1.0)
    components = components / scale[:, None]
    maps = maps * scale[:, None].astype(np.float32)
    half = np.argmax(components >= 0.5, axis=1)
    order = np.argsort(half, kind="stable")
    return components[order], maps[order]


def match_components(
    component_spectra: np.ndarray,
    energies: np.ndarray,
    library: Sequence[Reference],
) -> dict[str, np.ndarray]:
    """Pearson's r of every component spectrum with every library entry, best first per component.

    Correlation is taken on the energies every library entry covers.

    Parameters
    ----------
    component_spectra : numpy.ndarray
        (k, n) spectra.
    energies : numpy.ndarray
        (n,) eV.
    library : sequence of Reference
        The entries to match.

    Returns
    -------
    dict of str to numpy.ndarray
        A table: ``component`` (0-based), ``rank`` (1 = best), ``reference``, ``pearson_r``.
    """
    components = np.atleast_2d(np.asarray(component_spectra, dtype=np.float64))
    energies = np.asarray(energies, dtype=np.float64)
    if components.shape[1] != energies.size:
        raise AnalysisError(
            f"component spectra have {components.shape[1]} energies, not {energies.size}"
        )
    matrix, used = library_matrix(list(library), energies)
    r = _pearson(components[:, used], matrix.T)  # (k, L)
    order = np.argsort(-r, axis=1, kind="stable")
    k, n_lib = r.shape
    names = np.array([ref.name for ref in library])
    return {
        "component": np.repeat(np.arange(k), n_lib),
        "rank": np.tile(np.arange(1, n_lib + 1), k),
        "reference": names[order].ravel(),
        "pearson_r": np.take_along_axis(r, order, axis=1).ravel(),
    }


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of every row of ``a`` with every row of ``b``."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    a /= np.linalg.norm(a, axis=1, keepdims=True) + 1e-300
    b /= np.linalg.norm(b, axis=1, keepdims=True) + 1e-300
    return a @ b.T
