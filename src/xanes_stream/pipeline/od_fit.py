"""The optical-density model of the block pass: each pixel's mu (not edge-normalized) on the
fit energies fitted as ``sum_i t_i ref_i(E) + background(E)``.

The references are edge-normalized (step 1), so ``t_i`` is reference ``i``'s edge step;
``t >= 0`` for nnls and admm (free for lstsq), the background's coefficients free. The
background is minimised out first (:mod:`xanes_stream.spectra.background`), which leaves the
existing Gram solver on ``(R'PR, R'P mu)``; both the projected ``h`` and the background's
coefficients are functionals of ``mu``, applied like the plan's.

The maps of this model, on the fit energies ``E_f`` (``n_fit`` of them):

- ``thickness``: the fitted edge step ``sum_i t_i``;
- ``fractions``: ``t_i / sum t`` (``sum_to_one: normalize``) or ``t_i`` (``none``);
- ``error``: ``sqrt(rss / n_fit)``, ``rss = sum_f (mu_f - (R t + B b)_f)^2`` in optical density;
- ``r_factor``: ``rss / sum_f (mu_f - (B b)_f)^2``, relative to the part of mu the
  references are to explain (the fitted background removed);
- ``chi2_red``: ``rss / ((n_fit - k - m) sigma^2)`` with ``sigma^2`` the scatter of mu about
  the pre-edge line (or the measured per-energy noise, weighted, when given; ``m`` the
  background's terms).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xanes_stream.errors import AnalysisError
from xanes_stream.spectra.background import background_design, projected_problem
from xanes_stream.spectra.fit import solve


@dataclass(frozen=True)
class BackgroundPlan:
    """What the optical-density fit needs, decided once per stack."""

    terms: tuple[str, ...]
    gram: np.ndarray  # (k, k) R'PR
    projected: np.ndarray  # (n_fit, k) PR
    functionals: np.ndarray  # (k + m, n): (PR)' then (B'B)^-1 B', on every energy
    background_refs: np.ndarray  # (m, k) (B'B)^-1 B' R
    model: np.ndarray  # (n_fit, k + m) [R, B]
    design: np.ndarray  # (n_fit, m) B

    @property
    def m(self) -> int:
        """The number of background terms."""
        return self.design.shape[1]

    def dof(self, weights: np.ndarray, variance: np.ndarray, fit: slice) -> float:
        """The expected weighted residual sum of squares of noise alone (per-energy
        ``variance`` on every energy, ``weights`` on the fit energies): the chi-square's
        degrees of freedom. The residual is ``(I - X X^+) mu_fit``, ``X = [R, B]``."""
        model = self.model.astype(np.float64)
        residual = np.eye(model.shape[0]) - model @ np.linalg.pinv(model)
        dof = float(weights @ (residual**2 @ variance[fit]))
        return (
            dof if np.isfinite(dof) and dof > 0 else float(max(model.shape[0] - model.shape[1], 1))
        )


def background_plan(plan, settings) -> BackgroundPlan:
    """The optical-density fit of a stack's plan.

    Parameters
    ----------
    plan : Plan
        The stack's plan (its references on the fit energies and E0).
    settings : AnalysisSettings
        ``fit.background`` names the background's terms.

    Returns
    -------
    BackgroundPlan
    """
    terms = tuple(settings.fit.background)
    energy = plan.operator.fit_energy
    basis = plan.basis.astype(np.float64)
    k = basis.shape[1]
    if energy.size < k + len(terms) + 1:
        raise AnalysisError(
            f"the optical-density fit has {k} references and {len(terms)} background terms "
            f"but only {energy.size} fit energies: measure more energies or use fewer terms"
        )
    design = background_design(energy, plan.operator.windows.e0, terms)
    projected, pseudo_inverse, _ = projected_problem(basis, design)
    gram = projected.T @ projected
    if np.linalg.matrix_rank(gram) < k and settings.fit.method == "lstsq":
        raise AnalysisError(
            "a reference is a combination of the background terms on these energies: the "
            "optical-density fit cannot tell them apart (use fewer background terms)"
        )
    n, fit = plan.energies.size, plan.operator.fit_index
    functionals = np.zeros((k + len(terms), n))
    functionals[:k, fit] = projected.T
    functionals[k:, fit] = pseudo_inverse
    return BackgroundPlan(
        terms=terms,
        gram=gram,
        projected=projected,
        functionals=functionals.astype(np.float32),
        background_refs=(pseudo_inverse @ basis).astype(np.float32),
        model=np.hstack([basis, design]).astype(np.float32),
        design=design.astype(np.float32),
    )


def fit_optical_density(
    mu: np.ndarray, background: BackgroundPlan, fit: slice, settings, weights, residual_sums
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """The optical-density fit of a block's mu.

    Parameters
    ----------
    mu : numpy.ndarray
        (n, P) the block's mu on every energy.
    background : BackgroundPlan
        The fit's plan.
    fit : slice
        The fit energies.
    settings : AnalysisSettings
        ``fit.method`` and the ADMM options.
    weights : numpy.ndarray or None
        (n_fit,) ``1 / (sigma^2 dof)`` for a weighted chi-square.
    residual_sums : callable
        ``residual_sums(mu_fit, model, z, weights) -> (rss, weighted or None)``.

    Returns
    -------
    t, rss, total, weighted, z : numpy.ndarray
        (k, P) edge-step scales, (P,) residual sum of squares, (P,) sum of squares of mu
        less the fitted background, the weighted residual (None without weights), and
        (k + m, P) the model's coefficients ``[t; b]``.
    """
    k = background.gram.shape[0]
    linear = background.functionals @ mu
    t = solve(
        background.gram,
        linear[:k],
        settings.fit.method,
        admm_iterations=settings.fit.admm_iterations,
        admm_rho=settings.fit.admm_rho,
    ).astype(np.float32, copy=False)
    b = linear[k:] - background.background_refs @ t
    z = np.vstack([t, b])
    rss, weighted = residual_sums(mu[fit], background.model, z, weights)
    total, _ = residual_sums(mu[fit], background.design, b, None)
    return t, rss, total, weighted, z
