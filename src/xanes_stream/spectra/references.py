"""Reference spectra: the :class:`Reference` type and putting references on a scan's energies
(reading them from files is :mod:`xanes_stream.io.references`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from xanes_stream.errors import ReferenceError
from xanes_stream.spectra.normalize import edge_windows, find_e0, normalize


@dataclass(frozen=True)
class Reference:
    """One reference spectrum: energies in eV (sorted, unique) and its absorption."""

    name: str
    energy: np.ndarray
    mu: np.ndarray
    normalized: bool
    source: str = ""
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        energy = np.asarray(self.energy, dtype=np.float64)
        mu = np.asarray(self.mu, dtype=np.float64)
        if energy.ndim != 1 or energy.shape != mu.shape or energy.size < 3:
            raise ReferenceError(
                f"reference {self.name!r}: energy and mu must be 1-D of equal length >= 3"
            )
        good = np.isfinite(energy) & np.isfinite(mu)
        order = np.argsort(energy[good], kind="stable")
        energy, mu = energy[good][order], mu[good][order]
        energy, first = np.unique(energy, return_index=True)
        object.__setattr__(self, "energy", energy)
        object.__setattr__(self, "mu", mu[first])

    @property
    def energy_range(self) -> tuple[float, float]:
        return float(self.energy[0]), float(self.energy[-1])


def looks_normalized(energy: np.ndarray, mu: np.ndarray) -> bool:
    """Guess whether a spectrum is edge-normalized: ~0 before the edge and ~1 well after.

    Parameters
    ----------
    energy : numpy.ndarray
        (n,) eV.
    mu : numpy.ndarray
        (n,) absorption.

    Returns
    -------
    bool
    """
    n = mu.size
    head = np.median(mu[: max(3, n // 20)])
    tail = np.median(mu[-max(3, n // 10) :])
    return abs(head) < 0.1 and abs(tail - 1.0) < 0.25


def unit_step(reference: Reference) -> Reference:
    """The reference edge-normalized over its own measured range, with Larch's defaults.

    A reference's edge step is best measured over its full range (a XANES scan's short
    post-edge window holds white-line tails and oscillations), so raw references are
    normalized here, once, and the scan's pixels carry any window bias as a common factor.

    Parameters
    ----------
    reference : Reference
        Raw or normalized.

    Returns
    -------
    Reference
        Normalized (``reference`` itself when it already is).
    """
    if reference.normalized:
        return reference
    e0 = find_e0(reference.energy, reference.mu)
    norm = normalize(reference.energy, reference.mu, edge_windows(reference.energy, e0)).norm
    return Reference(
        reference.name, reference.energy, norm, True, reference.source, reference.metadata
    )


def reference_matrix(
    references: list[Reference], energies: np.ndarray, fit_range: tuple[float, float]
) -> np.ndarray:
    """The edge-normalized references on ``energies`` as columns of an (n_energy, k) matrix.

    Raises :class:`ReferenceError` when a reference does not cover ``fit_range`` (eV).

    Parameters
    ----------
    references : list of Reference
        Uniquely named references.
    energies : numpy.ndarray
        (n_energy,) eV.
    fit_range : (float, float)
        Absolute range (eV) every reference must cover.

    Returns
    -------
    numpy.ndarray
        (n_energy, k).
    """
    energies = np.asarray(energies, dtype=np.float64)
    names = [r.name for r in references]
    if len(set(names)) != len(names):
        raise ReferenceError(f"reference names must be unique, got {names}")
    columns = []
    for ref in references:
        lo, hi = ref.energy_range
        tolerance = 0.5
        if lo > fit_range[0] + tolerance or hi < fit_range[1] - tolerance:
            raise ReferenceError(
                f"reference {ref.name!r} covers {lo:.1f}-{hi:.1f} eV but the fit needs "
                f"{fit_range[0]:.1f}-{fit_range[1]:.1f} eV; give a wider reference or a "
                "narrower fit.energy_range"
            )
        normalized = unit_step(ref)
        columns.append(np.interp(energies, normalized.energy, normalized.mu))
    return np.stack(columns, axis=1)
