"""Self-absorption (over-absorption) of fluorescence XANES: Larch's ``fluo_corr``.

A thick or concentrated sample measured in fluorescence damps its white line: the absorber's
own absorption shortens the depth the beam probes as mu rises through the edge. In the thick
limit the measured fluorescence, edge-normalized, is

    m(E) = n(E) (1 + alpha) / (alpha + n(E)),
    alpha = (mu_tot(E_f) sin(phi) / sin(theta) + mu_tot(E_below))
            / (mu_tot(E_above) - mu_tot(E_below))

with ``n`` the true normalized absorption, ``phi`` the incident and ``theta`` the exit angle
(to the sample surface), ``mu_tot`` the sample's total absorption at the fluorescence line
``E_f`` and 10 eV below and above the edge (the FLUO method of D. Haskel; Booth and Bridges).
Larch's ``fluo_corr`` inverts it on the raw spectrum, ``mu_corr = mu alpha / (alpha + 1 -
norm)``, and normalizes ``mu_corr`` again; so do :func:`correct_self_absorption` and the
pipeline. Everything here takes arrays and plain numbers; the cross sections come from the
caller (the pipeline reads them from ``xraydb``).
"""

from __future__ import annotations

import numpy as np

from xanes_stream.errors import AnalysisError

__all__ = ["absorption_ratio", "correct_self_absorption", "self_absorbed"]


def absorption_ratio(
    mu_fluorescence: float,
    mu_below: float,
    mu_above: float,
    incident_angle: float = 45.0,
    exit_angle: float = 45.0,
) -> float:
    """The FLUO method's ``alpha``: the background absorption over the absorber's edge jump.

    Parameters
    ----------
    mu_fluorescence : float
        Total absorption of the sample (any consistent unit, e.g. cm^2/g) at the fluorescence
        line's energy.
    mu_below, mu_above : float
        Total absorption of the sample just below and just above the edge (Larch: 10 eV
        either side of the tabulated edge energy).
    incident_angle, exit_angle : float
        Angles of the incident beam and of the detected fluorescence to the sample surface,
        in degrees (Larch's ``anginp``, ``angout``); clipped below at 1e-7 rad as Larch does.

    Returns
    -------
    float
        ``alpha = (mu_fluorescence sin(incident) / sin(exit) + mu_below) / (mu_above - mu_below)``.

    Raises
    ------
    AnalysisError
        If the edge jump is not positive or a value is not finite: the correction is then
        undefined for this sample and edge.
    """
    values = np.array([mu_fluorescence, mu_below, mu_above, incident_angle, exit_angle], float)
    if not np.all(np.isfinite(values)):
        raise AnalysisError("self-absorption: the cross sections and angles must be finite")
    jump = mu_above - mu_below
    if not jump > 0:
        raise AnalysisError(
            "self-absorption: the sample absorbs no more above the edge than below it "
            f"(mu below {mu_below:.4g}, above {mu_above:.4g}); check the element and edge"
        )
    ratio = np.sin(max(1e-7, np.deg2rad(incident_angle))) / np.sin(
        max(1e-7, np.deg2rad(exit_angle))
    )
    return float((mu_fluorescence * ratio + mu_below) / jump)


def correct_self_absorption(mu: np.ndarray, norm: np.ndarray, alpha: float) -> np.ndarray:
    """Larch's ``fluo_corr`` correction of fluorescence spectra, every pixel at once.

    Parameters
    ----------
    mu : numpy.ndarray
        (n_energy,) or (n_energy, n_pixels) measured fluorescence (over I0), uncorrected.
    norm : numpy.ndarray
        Same shape: ``mu`` edge-normalized, ``(mu - pre_edge_line) / edge_step``.
    alpha : float
        From :func:`absorption_ratio`.

    Returns
    -------
    numpy.ndarray
        ``mu alpha / (alpha + 1 - norm)``, in the dtype of ``mu`` (float64 for integers);
        NaN where ``norm >= 1 + alpha`` (a measured value no thick sample of this
        composition can give: the correction has no solution there). Normalize it again
        with the same windows to get the corrected normalized spectrum.
    """
    mu = np.asarray(mu)
    dtype = mu.dtype if np.issubdtype(mu.dtype, np.floating) else np.float64
    denominator = np.subtract(alpha + 1.0, norm, dtype=dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.multiply(mu, alpha, dtype=dtype)
        out /= denominator
    out[~(denominator > 0)] = np.nan
    return out


def self_absorbed(norm: np.ndarray, alpha: float) -> np.ndarray:
    """The forward model: what a thick sample of true normalized spectra ``norm`` gives.

    Parameters
    ----------
    norm : numpy.ndarray
        True normalized absorption, any shape (1 above the edge, 0 below).
    alpha : float
        From :func:`absorption_ratio`.

    Returns
    -------
    numpy.ndarray
        ``norm (1 + alpha) / (alpha + norm)``: the damped normalized fluorescence, 1 where
        ``norm`` is 1; :func:`correct_self_absorption` undoes it exactly.
    """
    norm = np.asarray(norm, dtype=np.float64)
    return norm * (1.0 + alpha) / (alpha + norm)
