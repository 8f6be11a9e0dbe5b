"""Which fit model suits a stack: the edge-normalized one, or the optical-density one.

Edge normalization needs a post-edge: a stretch of energies above the edge, free of other
edges, where the spectrum is flat enough to read the edge step off. A K-edge scan that runs
well past the edge has one; an L2,3 scan (the L2 line sits where the post-edge would be) has
not, and normalizing distorts each pixel differently (fractions biased, no warning from the
per-pixel R-factor). The optical-density model fits mu itself (references scaled by thickness
plus a smooth background) and needs no post-edge. (A K-edge scan that stops just above the
edge keeps the references' shape, so it passes this check: its fractions hold, its thickness
is read off the white line; the optical-density model is the one for its thickness.)

Both models are fitted to one spectrum, the mean mu of the thicker half of the stack's pixel
sample, and their R-factors compared on the same footing: ``sum (mu - model)^2 / sum (mu -
baseline)^2`` on the fit energies, the baseline being each model's own non-chemical part (the
pre-edge line, the fitted background). The normalized model is kept unless it fits at least
:data:`WORSE_BY` times worse than the optical-density one and worse than :data:`POOR_FIT`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from xanes_stream.errors import AnalysisError
from xanes_stream.pipeline.od_fit import background_plan, fit_optical_density
from xanes_stream.spectra.fit import solve

#: the normalized model is judged distorting when its R-factor is this many times the
#: optical-density model's (K-edge scans with a post-edge: 15-55 times; an L2,3 stack: 300
#: to 2000; the optical-density model's extra background terms always fit a little better) ...
WORSE_BY = 100.0
#: ... and above this (a mean spectrum fitted worse than 0.2 %: not a noise-free fit)
POOR_FIT = 2e-3


@dataclasses.dataclass(frozen=True)
class ModelChoice:
    """The model a stack is fitted with, and the evidence."""

    model: str  # "normalized" or "optical_density"
    r_factor_normalized: float
    r_factor_optical_density: float
    reason: str

    def as_dict(self) -> dict:
        """For the maps' metadata."""
        return dataclasses.asdict(self)


def _sum_squares(values: np.ndarray) -> float:
    return float(np.sum(np.asarray(values, dtype=np.float64) ** 2))


def compare_models(plan, settings, sample_mu: np.ndarray) -> ModelChoice:
    """Fit the normalized and the optical-density model to the stack's mean spectrum.

    Parameters
    ----------
    plan : Plan
        The stack's (normalized) plan.
    settings : AnalysisSettings
        ``fit.background`` (the optical-density model's terms) and ``fit.method``.
    sample_mu : numpy.ndarray
        (n_energy, P) mu of the stack's pixel sample.

    Returns
    -------
    ModelChoice
        The model that suits the stack (``normalized`` unless it fits clearly worse) and
        both R-factors.
    """
    step = plan.functionals[2] @ sample_mu
    thick = np.isfinite(step) & (step >= np.nanmedian(step))
    mean = np.nanmean(sample_mu[:, thick] if thick.any() else sample_mu, axis=1)[:, None]
    mean = mean.astype(np.float64)
    fit = plan.operator.fit_index
    mu_fit = mean[fit, 0]

    linear = plan.functionals.astype(np.float64) @ mean
    pre, edge_step = linear[:2], linear[2]
    h = (linear[3 : 3 + plan.k] - plan.basis_pre @ pre) / edge_step
    c = solve(plan.gram, h, settings.fit.method)
    model = plan.model.astype(np.float64)
    baseline = model[:, :2] @ pre
    normalized_fit = baseline + model[:, 2:] @ (c * edge_step)
    r_normalized = _sum_squares(mu_fit - normalized_fit[:, 0]) / _sum_squares(
        mu_fit - baseline[:, 0]
    )

    od_plan = background_plan(plan, settings)
    _, rss, total, _, _ = fit_optical_density(
        mean.astype(np.float32), od_plan, fit, settings, None, _residuals
    )
    r_od = float(rss[0] / total[0])

    worse = r_normalized / max(r_od, 1e-12)
    if r_normalized > POOR_FIT and worse >= WORSE_BY:
        return ModelChoice(
            "optical_density",
            r_normalized,
            r_od,
            f"edge normalization distorts this stack: the normalized model fits the mean "
            f"spectrum {worse:.1f} times worse than the optical-density model (R-factor "
            f"{r_normalized:.3g} vs {r_od:.3g}); no post-edge free of other edges?",
        )
    return ModelChoice(
        "normalized",
        r_normalized,
        r_od,
        f"the normalized model fits the mean spectrum (R-factor {r_normalized:.3g}; "
        f"optical density {r_od:.3g})",
    )


def fit_model(plan, settings, sample_mu: np.ndarray, notes: list[str]) -> tuple[str, dict]:
    """The model a stack is fitted with (``settings.fit.model``, ``auto`` decided here) and the
    evidence for the maps' metadata; the choice, or a warning, goes into ``notes``.

    Raises
    ------
    AnalysisError
        With ``model: normalized`` and ``model_check: refuse``, where edge normalization
        distorts the stack.
    """
    asked = settings.fit.model
    if asked == "optical_density":
        return asked, {"asked": asked}
    try:
        choice = compare_models(plan, settings, sample_mu)
    except (AnalysisError, np.linalg.LinAlgError, ValueError, ZeroDivisionError) as exc:
        if asked == "auto":
            notes.append(
                f"fit model: normalized (the optical-density model could not be tried: {exc})"
            )
        return "normalized", {"asked": asked}
    evidence = {"asked": asked, **choice.as_dict()}
    del evidence["model"]
    if (
        asked == "auto"
        and choice.model == "optical_density"
        and (settings.fit.sum_to_one == "constrain")
    ):
        notes.append(
            f"warning: {choice.reason}; kept the normalized model: sum_to_one 'constrain' "
            "cannot hold in the optical-density model"
        )
        return "normalized", evidence
    if asked == "auto":
        notes.append(f"fit model: {choice.model}: {choice.reason}")
        return choice.model, evidence
    if choice.model == "optical_density":
        advice = f"{choice.reason}: fit.model optical_density (or auto) fits mu itself"
        if settings.fit.model_check == "refuse":
            raise AnalysisError(f"refused (fit.model_check: refuse): {advice}")
        notes.append(f"warning: {advice}")
    return "normalized", evidence


def _residuals(mu, model, z, weights):
    residual = mu.astype(np.float64) - model.astype(np.float64) @ z.astype(np.float64)
    return np.einsum("ep,ep->p", residual, residual), None
