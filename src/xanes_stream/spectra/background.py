"""A smooth background under the references, fitted with them and projected out.

The optical-density model fits ``mu = R t + B b`` on the fit energies: ``R`` the
edge-normalized references, ``t >= 0`` their edge-step scales and ``B`` a few smooth terms
(a constant, a line, Victoreen-like ``E^-3`` and ``E^-4`` falloffs) with free coefficients
``b``. Minimising over ``b`` first leaves the references' problem on projected quantities:
with ``P = I - B (B'B)^-1 B'``, ``t`` solves the Gram problem ``(R'PR, R'P mu)`` and then
``b = (B'B)^-1 B' (mu - R t)``. Both are linear in ``mu``, so a block pass applies them as
functionals.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: The background terms, by name: each a function of E / E0.
BACKGROUND_TERMS = {
    "constant": lambda r: np.ones_like(r),
    "linear": lambda r: (r - 1.0) * 100.0,
    "e-3": lambda r: r**-3,
    "e-4": lambda r: r**-4,
}


def background_design(energies: np.ndarray, e0: float, terms: Sequence[str]) -> np.ndarray:
    """The background's design matrix on ``energies``: one column per term.

    Parameters
    ----------
    energies : numpy.ndarray
        (n,) eV.
    e0 : float
        The edge energy (eV) the terms are scaled to (``E / E0``).
    terms : sequence of str
        Names from :data:`BACKGROUND_TERMS`.

    Returns
    -------
    numpy.ndarray
        (n, len(terms)) float64.
    """
    ratio = np.asarray(energies, dtype=np.float64) / float(e0)
    if not terms:
        return np.zeros((ratio.size, 0))
    return np.stack([BACKGROUND_TERMS[name](ratio) for name in terms], axis=1)


def projected_problem(
    references: np.ndarray, design: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The references' problem with the background minimised out.

    Parameters
    ----------
    references : numpy.ndarray
        (n, k) references on the fit energies.
    design : numpy.ndarray
        (n, m) background terms on the same energies.

    Returns
    -------
    projected : numpy.ndarray
        (n, k) ``P R``: ``t`` minimises ``||P mu - P R t||``, Gram ``R'PR = (PR)'(PR)``, and
        ``h = (PR)' mu``.
    pseudo_inverse : numpy.ndarray
        (m, n) ``(B'B)^-1 B'`` (a pseudo-inverse, so collinear terms are harmless):
        ``b = pseudo_inverse @ (mu - R t)``.
    projector : numpy.ndarray
        (n, n) ``P``.
    """
    n = references.shape[0]
    pseudo_inverse = np.linalg.pinv(design) if design.shape[1] else np.zeros((0, n))
    projector = np.eye(n) - design @ pseudo_inverse
    return projector @ references, pseudo_inverse, projector
