"""``fraction_errors``: the 1-sigma standard error of each fraction per pixel, in the block pass.

The fit is linear in the pixel's mu on its active set, so the coefficients' variance is the
noise's propagated through it (:func:`xanes_stream.spectra.uncertainty.fraction_errors`), then
through ``f = c / sum c`` for ``sum_to_one: normalize``. The noise variance is

- measured, when ``analyze(noise=...)`` gives it at every energy: propagated through the
  whole linear map from mu, the pre-edge line and the edge step of the normalized model
  included;
- otherwise estimated per pixel and energy from the residual, ``r^2 / d_e`` (``d_e`` the
  share of the noise at ``e`` the residual keeps), which follows noise that differs between
  energies. For the ``normalized`` model the pre-edge line's noise, which the residual
  cannot show energy by energy, is added as one factor per pixel: the ratio of the
  fractions' variance with and without it under white noise (the approximation).

For the ``normalized`` model the edge step's own error is a scale common to every coefficient:
it cancels exactly in ``c / sum c``; with ``sum_to_one: none`` it is added as
``c_i^2 var(step) / step^2``; with ``constrain`` it is left out (first order: a sum-to-one
fit absorbs most of a common scale). The degrees of freedom of an active set smaller than
all references are not corrected for (a few percent at 50 fit energies).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xanes_stream.spectra.uncertainty import fraction_errors


@dataclass(frozen=True)
class ErrorPlan:
    """What the block pass needs for ``fraction_errors``, decided once per stack."""

    design: np.ndarray  # (n_fit, k) the fitted design (R, or PR for optical density)
    gram: np.ndarray  # (k, k)
    model: np.ndarray  # (n_fit, q) the full model the residual is taken against
    share: np.ndarray  # (n_fit,) d_e: r^2 / share estimates the noise variance
    measured: np.ndarray | None  # (n,) measured variance of mu on every energy
    full_design: np.ndarray  # (n, k) L'D: the fit's map from mu on every energy
    constrained: bool
    normalize: bool
    step_norm: float | None  # ||s||^2 (or s'Vs measured) for sum_to_one none, normalized model
    scaled: bool  # the fitted spectra are mu / step (the normalized model)

    def errors(
        self, mu_fit: np.ndarray, z: np.ndarray, coefficients: np.ndarray, step: np.ndarray
    ) -> np.ndarray:
        """(k, P) standard errors of the block's fractions.

        ``mu_fit`` (n_fit, P) the block's mu on the fit energies, ``z`` the model's
        coefficients (``mu_fit ~ model @ z``), ``coefficients`` the raw fit, ``step`` the
        edge step."""
        options = dict(constrained=self.constrained, normalize=self.normalize, scale_variance=None)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            inverse2 = 1.0 / (step.astype(np.float64) ** 2) if self.scaled else None
            if self.measured is not None:
                if self.step_norm is not None:
                    options["scale_variance"] = self.step_norm * inverse2
                return fraction_errors(
                    coefficients,
                    self.full_design,
                    self.gram,
                    variance=self.measured,
                    pixel_scale=inverse2,
                    **options,
                )
            residual = self.model @ z
            np.subtract(mu_fit, residual, out=residual)
            residual *= residual
            residual /= self.share[:, None]
            full = self.full_design if self.scaled else None
            if self.scaled:
                residual *= inverse2.astype(residual.dtype)
            if self.step_norm is not None:
                options["scale_variance"] = self.step_norm * residual.mean(axis=0)
            return fraction_errors(
                coefficients,
                self.design,
                self.gram,
                residual_variance=residual,
                full_design=full,
                **options,
            )


def error_plan(plan, settings, variance: np.ndarray | None) -> ErrorPlan:
    """The error model of a stack's fit.

    Parameters
    ----------
    plan : Plan
        The stack's plan (with its ``background`` for the optical-density model).
    settings : AnalysisSettings
        ``fit.sum_to_one``.
    variance : numpy.ndarray or None
        (n,) the measured noise variance of mu per energy; None: from each pixel's residual.

    Returns
    -------
    ErrorPlan
    """
    fit = plan.operator.fit_index
    n = plan.energies.size
    od = plan.background
    select = np.eye(n)[fit]
    if od is None:
        design = plan.basis.astype(np.float64)
        gram = plan.gram
        model = plan.model
        line = plan.model[:, :2].astype(np.float64)
        to_fitted = select - line @ plan.operator.coefficients[:2]  # L: mu -> y * step
        hat = design @ np.linalg.pinv(gram) @ design.T
        residual_map = to_fitted - hat @ to_fitted
        full_design = to_fitted.T @ design  # (n, k): c = M (L'D)' mu / step
    else:
        design, gram, model = od.projected, od.gram, od.model
        X = od.model.astype(np.float64)
        residual_map = (np.eye(X.shape[0]) - X @ np.linalg.pinv(X)) @ select
        full_design = select.T @ design  # PR already projects the background
    share = np.sum(residual_map**2, axis=1)
    step_norm = None
    if od is None and settings.fit.sum_to_one == "none":
        s = plan.operator.coefficients[2]
        step_norm = float(s @ s if variance is None else s @ (variance * s))
    return ErrorPlan(
        design=design.astype(np.float64),
        gram=np.asarray(gram, dtype=np.float64),
        model=np.asarray(model, dtype=np.float32),
        share=np.maximum(share, 1e-6).astype(np.float32),
        measured=None if variance is None else np.asarray(variance, dtype=np.float64),
        full_design=full_design,
        constrained=settings.fit.sum_to_one == "constrain",
        normalize=settings.fit.sum_to_one == "normalize",
        step_norm=step_norm,
        scaled=od is None,
    )
