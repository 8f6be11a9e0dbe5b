"""Self-absorption correction of fluorescence scans: its settings and its cross sections.

The sample's formula, the absorbing element, its edge and fluorescence line and the two angles
(:class:`SelfAbsorptionSettings`) become one number, the FLUO method's ``alpha``
(:func:`sample_alpha`), from the ``xraydb`` tables exactly as Larch's ``fluo_corr`` reads them;
the per-pixel correction is :func:`~xanes_stream.spectra.self_absorption.correct_self_absorption`,
applied by :mod:`~xanes_stream.pipeline.analyze` to each block's spectra before the fit.

The formula and the element are strings a start document may set: they are only ever looked
up in xraydb's tables of elements (never a path, a module or a type), and are checked to be a
chemical formula of known elements and an element symbol before anything reads them.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from xanes_stream.errors import AnalysisError
from xanes_stream.pipeline.section import FROM_DOCUMENTS, _Section
from xanes_stream.spectra.normalize import _SCALE, EdgeOperator
from xanes_stream.spectra.self_absorption import absorption_ratio, correct_self_absorption

__all__ = ["SelfAbsorptionSettings", "corrected_block", "sample_alpha", "scan_alpha"]

#: an element symbol, then an optional count; several of them, optionally parenthesized groups
_FORMULA = re.compile(r"^(?:[A-Z][a-z]?|\(|\)|\d+(?:\.\d+)?|\.\d+)+$")
_SYMBOL = re.compile(r"^[A-Z][a-z]?$")
#: 10 eV each side of the tabulated edge, as Larch's fluo_corr
_EDGE_OFFSET = 10.0

Edge = Literal["K", "L1", "L2", "L3", "M1", "M2", "M3", "M4", "M5"]
Line = Literal[
    "Ka", "Kb", "La", "Lb", "Lg", "Ka1", "Ka2", "Kb1", "La1", "La2", "Lb1", "Lb2,15", "Ma", "Mb"
]  # fmt: skip


@lru_cache(maxsize=1)
def _elements() -> frozenset[str]:
    import xraydb

    return frozenset(xraydb.atomic_symbol(z) for z in range(1, 99))


class SelfAbsorptionSettings(_Section):
    """Self-absorption (over-absorption) correction of fluorescence scans (Larch's
    ``fluo_corr``, the FLUO method): applied to each pixel's spectrum after edge normalization
    and before the fit, in ``fluorescence`` mode only."""

    enabled: bool = False
    formula: str | None = Field(
        None,
        max_length=64,
        description="the sample's chemical formula, e.g. NiO or Fe2O3 (stoichiometry only)",
        json_schema_extra=FROM_DOCUMENTS,  # only looked up in xraydb's element tables
    )
    element: str | None = Field(
        None,
        max_length=2,
        description="symbol of the absorbing element, e.g. Ni",
        json_schema_extra=FROM_DOCUMENTS,  # only looked up in xraydb's element tables
    )
    edge: Edge = "K"
    line: Line = Field("Ka", description="fluorescence line detected (a family: its mean)")
    incident_angle: float = Field(45.0, gt=0, le=90, description="beam to surface, degrees")
    exit_angle: float = Field(45.0, gt=0, le=90, description="detector to surface, degrees")

    @field_validator("formula")
    @classmethod
    def _formula(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not _FORMULA.match(value):
            raise ValueError(
                f"{value!r} is not a chemical formula: element symbols and counts, e.g. Fe2O3"
            )
        unknown = set(re.findall(r"[A-Z][a-z]?", value)) - _elements()
        if unknown:
            raise ValueError(f"formula {value!r} names no element {', '.join(sorted(unknown))}")
        from xraydb.chemparser import chemparse

        try:
            chemparse(value)
        except (ValueError, KeyError):
            raise ValueError(f"{value!r} is not a chemical formula xraydb can read") from None
        return value

    @field_validator("element")
    @classmethod
    def _element(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().capitalize()
        if not _SYMBOL.match(value) or value not in _elements():
            raise ValueError(f"{value!r} is not an element symbol (e.g. Ni, Fe)")
        return value

    @model_validator(mode="after")
    def _complete(self) -> SelfAbsorptionSettings:
        if not self.enabled:
            return self
        if self.formula is None or self.element is None:
            raise ValueError("the correction needs the sample's formula and absorbing element")
        if self.element not in re.findall(r"[A-Z][a-z]?", self.formula):
            raise ValueError(f"the formula {self.formula} holds no {self.element}")
        return self


def sample_alpha(settings: SelfAbsorptionSettings) -> tuple[float, dict]:
    """The FLUO method's ``alpha`` of the sample, from xraydb as Larch's ``fluo_corr`` does.

    ``xraydb.material_mu(formula, [E_line, E_edge - 10, E_edge + 10], density=1)``: the
    sample's total absorption (cm^2/g, density 1) at the fluorescence line and either side of
    the tabulated edge energy; then
    :func:`~xanes_stream.spectra.self_absorption.absorption_ratio`.

    Parameters
    ----------
    settings : SelfAbsorptionSettings
        Enabled, with a formula and an element.

    Returns
    -------
    alpha : float
    parameters : dict
        What was used, for the maps' metadata: the settings, the edge and line energies (eV),
        the three absorptions, ``alpha`` and the xraydb version.

    Raises
    ------
    AnalysisError
        If the element has no such edge or line in the tables, or the line lies above the
        edge.
    """
    import xraydb

    if settings.formula is None or settings.element is None:
        raise AnalysisError("self-absorption: give the sample's formula and absorbing element")
    element = settings.element
    edges = xraydb.xray_edges(element)
    if settings.edge not in edges:
        raise AnalysisError(f"self-absorption: {element} has no {settings.edge} edge in xraydb")
    e_edge = float(edges[settings.edge].energy)
    line = xraydb.xray_line(element, settings.line)
    e_line = float(line.energy) if line is not None else 0.0
    if not 0 < e_line < e_edge:
        raise AnalysisError(
            f"self-absorption: {element} has no {settings.line} line below its "
            f"{settings.edge} edge ({e_edge:.0f} eV) in xraydb; choose the line detected"
        )
    try:
        mu = xraydb.material_mu(
            settings.formula, [e_line, e_edge - _EDGE_OFFSET, e_edge + _EDGE_OFFSET], density=1
        )
    except (ValueError, KeyError) as exc:
        raise AnalysisError(
            f"self-absorption: xraydb cannot read the formula {settings.formula!r}: {exc}"
        ) from None
    mu_line, mu_below, mu_above = (float(v) for v in mu)
    alpha = absorption_ratio(
        mu_line, mu_below, mu_above, settings.incident_angle, settings.exit_angle
    )
    parameters = {
        **settings.model_dump(mode="json"),
        "edge_energy": e_edge,
        "line_energy": e_line,
        "mu_line": mu_line,
        "mu_below_edge": mu_below,
        "mu_above_edge": mu_above,
        "alpha": alpha,
        "method": "Larch fluo_corr (FLUO, Haskel; Booth and Bridges)",
        "xraydb_version": xraydb.__version__,
    }
    return alpha, parameters


def corrected_block(mu: np.ndarray, operator: EdgeOperator, alpha: float) -> np.ndarray:
    """A block of fluorescence spectra corrected for self-absorption, as Larch's ``fluo_corr``.

    Each pixel is edge-normalized with the scan's windows (``operator``), corrected
    (:func:`~xanes_stream.spectra.self_absorption.correct_self_absorption`) and returned as
    mu, to be normalized again with the same windows (the block pass does that through its
    linear functionals, as ``fluo_corr`` calls ``pre_edge`` on ``mu_corr``).

    Parameters
    ----------
    mu : numpy.ndarray
        (n_energy, P) float32 fluorescence over I0, every energy of the operator, finite.
    operator : EdgeOperator
        The scan's edge normalization.
    alpha : float
        From :func:`sample_alpha`.

    Returns
    -------
    numpy.ndarray
        (n_energy, P) float32, a new array; NaN where a pixel's value exceeds what a thick
        sample can give (or its edge step is zero).

    Notes
    -----
    Beyond the block itself this holds three (n_energy, P) float32 temporaries (the
    normalized spectra, the denominator and the result), ~39 MB for 100 energies at the
    default 32,768 pixels per block, per worker.
    """
    mu = np.asarray(mu, dtype=np.float32)
    coefficients = operator.coefficients.astype(np.float32) @ mu
    x = ((operator.energy - operator.windows.e0) / _SCALE).astype(np.float32)
    norm = mu - coefficients[0]
    norm -= np.multiply.outer(x, coefficients[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        norm /= coefficients[2]
    return correct_self_absorption(mu, norm, alpha)


def scan_alpha(
    settings: SelfAbsorptionSettings, mode: str, energies: np.ndarray | None = None
) -> tuple[float | None, dict | None, str | None]:
    """Whether and how a scan is corrected: ``alpha``, its parameters, and a note for people.

    Parameters
    ----------
    settings : SelfAbsorptionSettings
        The section of the analysis settings.
    mode : str
        The scan's mode; only ``fluorescence`` is corrected.
    energies : numpy.ndarray, optional
        The scan's energies (eV); the edge named must lie among them.

    Returns
    -------
    alpha : float or None
        None where the correction is off or not for this mode.
    parameters : dict or None
        For ``metadata["self_absorption"]`` (:func:`sample_alpha`).
    note : str or None
        What was done (or why not), None where the correction is off.

    Raises
    ------
    AnalysisError
        If the tables lack the edge or line, or the edge lies outside ``energies``.
    """
    if not settings.enabled:
        return None, None, None
    if mode != "fluorescence":
        return None, None, f"self-absorption not corrected: it is for fluorescence, not {mode}"
    alpha, parameters = sample_alpha(settings)
    if energies is not None:
        lo, hi = float(np.min(energies)), float(np.max(energies))
        if not lo <= parameters["edge_energy"] <= hi:
            raise AnalysisError(
                f"self-absorption: the {settings.element} {settings.edge} edge "
                f"({parameters['edge_energy']:.0f} eV) lies outside this scan "
                f"({lo:.0f}-{hi:.0f} eV); set self_absorption.element and edge to the scan's"
            )
    note = (
        f"spectra corrected for self-absorption (Larch's fluo_corr) of {settings.element} "
        f"{settings.edge} in {settings.formula}, {settings.line} line, angles "
        f"{settings.incident_angle:g}/{settings.exit_angle:g} deg: alpha = {alpha:.4g}; "
        "thickness is the corrected edge step"
    )
    return alpha, parameters, note
