"""Energy calibration: the energy offset between a scan and its references, and a foil's.

Sign convention (one for the whole package): a reference shift ``s`` means the reference's
absorption measured at ``E_ref`` is used at ``E_ref + s`` on the scan's energy axis, i.e. the
reference on the scan's energies is ``mu_ref(E - s)``. A scan read 2 eV too high against its
references needs ``s = +2``. A foil's correction is the other way round: it is *added to the
scan's energies* (``known E0 - measured E0``).

Modes of :func:`fit_energy_shift`:

``data``
    one shift for every reference (the scan against the references, like Larch's
    ``lincombo_fit(vary_e0=True)``); a bounded scalar search after a coarse grid.
``references``
    one shift per reference (like PyXAS's ``shift_reference_energy``); bounded least squares
    started from the ``data`` grid's best and a coordinate-wise grid, so a local minimum next to
    the start is not taken.

Each candidate shift is scored by the residual of a non-negative least-squares fit of the
spectrum with the shifted references (free scale: the fractions need not sum to one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.optimize import least_squares, minimize_scalar, nnls

from xanes_stream.spectra.normalize import find_e0

ShiftMode = Literal["data", "references"]

#: A shift this close (eV) to the bound counts as having reached it.
_BOUND_TOLERANCE = 0.05
#: A reference with less than this share of the fit's sum has no measurable shift of its own.
_MIN_SHARE = 0.02


@dataclass(frozen=True)
class ShiftFit:
    """The result of :func:`fit_energy_shift`.

    ``shifts`` is (1,) for ``data``, (k,) for ``references``, eV, in the module's sign
    convention; ``at_bound`` says which reached ``+-max_shift`` (the true offset may be beyond);
    ``determined`` which the spectrum constrains (a reference it hardly contains does not; its
    shift is the share-weighted mean of the others'); ``fractions`` (k,) the non-negative fit at
    the shifts, summing to one; ``rss`` its residual sum of squares.
    """

    shifts: np.ndarray
    at_bound: np.ndarray
    determined: np.ndarray
    fractions: np.ndarray
    rss: float


def shifted_references(
    energy: np.ndarray,
    ref_energies: Sequence[np.ndarray],
    ref_mus: Sequence[np.ndarray],
    shifts: np.ndarray,
) -> np.ndarray:
    """The references moved by ``shifts`` and interpolated onto ``energy``.

    Parameters
    ----------
    energy : numpy.ndarray
        (n,) eV, the scan's.
    ref_energies, ref_mus : sequence of numpy.ndarray
        Each reference's energies (eV, increasing) and normalized absorption.
    shifts : numpy.ndarray
        (k,) or (1,) eV: reference ``j`` is used at ``E_ref + shifts[j]``.

    Returns
    -------
    numpy.ndarray
        (n, k): ``mu_ref_j(energy - shifts[j])``, held at the end values beyond a reference.
    """
    shifts = np.broadcast_to(np.asarray(shifts, dtype=np.float64), (len(ref_mus),))
    return np.stack(
        [
            np.interp(energy - s, e, m)
            for s, e, m in zip(shifts, ref_energies, ref_mus, strict=True)
        ],
        axis=1,
    )


def _nnls_fit(basis: np.ndarray, spectrum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    coefficients, _ = nnls(basis, spectrum)
    return coefficients, spectrum - basis @ coefficients


def fit_energy_shift(
    energy: np.ndarray,
    spectrum: np.ndarray,
    ref_energies: Sequence[np.ndarray],
    ref_mus: Sequence[np.ndarray],
    mode: ShiftMode,
    max_shift: float,
    *,
    grid_step: float = 0.25,
) -> ShiftFit:
    """The energy shift(s) of the references that best fit one normalized spectrum.

    Parameters
    ----------
    energy : numpy.ndarray
        (n,) eV of ``spectrum`` (e.g. a scan's fit energies).
    spectrum : numpy.ndarray
        (n,) edge-normalized absorption (e.g. the mean of a scan's thick pixels).
    ref_energies, ref_mus : sequence of numpy.ndarray
        The k references, edge-normalized, each on its own energies (eV).
    mode : {"data", "references"}
        One shift for all references, or one each.
    max_shift : float
        Bound (eV, > 0): shifts are searched in ``[-max_shift, max_shift]``.
    grid_step : float
        Spacing (eV) of the coarse grid the search starts from.

    Returns
    -------
    ShiftFit
        The shifts, in the module's sign convention (``E_ref + s`` is used).
    """
    energy = np.asarray(energy, dtype=np.float64)
    spectrum = np.asarray(spectrum, dtype=np.float64)
    good = np.isfinite(spectrum)
    energy, spectrum = energy[good], spectrum[good]
    k = len(ref_mus)
    if mode not in ("data", "references"):
        raise ValueError(f"mode must be 'data' or 'references', got {mode!r}")
    if not max_shift > 0:
        raise ValueError(f"max_shift must be > 0, got {max_shift}")
    if energy.size < k + 2:
        raise ValueError(f"{energy.size} finite energies cannot fit {k} reference shifts")

    def residual(shifts: np.ndarray) -> np.ndarray:
        basis = shifted_references(energy, ref_energies, ref_mus, shifts)
        return _nnls_fit(basis, spectrum)[1]

    def rss(shifts) -> float:
        r = residual(np.atleast_1d(shifts))
        return float(r @ r)

    n_grid = max(3, int(np.ceil(2 * max_shift / grid_step)) + 1)
    grid = np.linspace(-max_shift, max_shift, n_grid)
    step = grid[1] - grid[0]
    common = grid[int(np.argmin([rss(s) for s in grid]))]
    if mode == "data" or k == 1:
        lo, hi = max(-max_shift, common - step), min(max_shift, common + step)
        found = minimize_scalar(rss, bounds=(lo, hi), method="bounded", options={"xatol": 1e-3})
        shifts = np.array([found.x if found.fun <= rss(common) else common])
        if mode == "references":
            shifts = np.repeat(shifts, k)
    else:
        start = np.full(k, common)
        for _ in range(2):  # coordinate-wise grid: each reference's shift with the others held
            for j in range(k):
                trial = np.repeat(start[None, :], grid.size, axis=0)
                trial[:, j] = grid
                start[j] = grid[int(np.argmin([rss(t) for t in trial]))]
        found = least_squares(
            residual,
            start,
            bounds=(-max_shift, max_shift),
            diff_step=1e-3 / max_shift,
            xtol=1e-6,
        )
        shifts = found.x if rss(found.x) <= rss(start) else start
    basis = shifted_references(energy, ref_energies, ref_mus, shifts)
    coefficients, r = _nnls_fit(basis, spectrum)
    total = coefficients.sum()
    fractions = coefficients / total if total > 0 else np.full(k, np.nan)
    determined = np.ones(shifts.size, dtype=bool)
    if mode == "references" and k > 1 and total > 0:
        determined = fractions >= _MIN_SHARE
        if determined.any() and not determined.all():
            shares = fractions[determined]
            shifts = shifts.copy()
            shifts[~determined] = float(shares @ shifts[determined] / shares.sum())
    at_bound = determined & (np.abs(shifts) >= max_shift - _BOUND_TOLERANCE)
    return ShiftFit(
        shifts=np.asarray(shifts, dtype=np.float64),
        at_bound=at_bound,
        determined=determined,
        fractions=fractions,
        rss=float(r @ r),
    )


def foil_energy_offset(
    energy: np.ndarray,
    signal: np.ndarray,
    known_e0: float,
    *,
    kind: Literal["absorption", "transmission"] = "absorption",
) -> tuple[float, float]:
    """The correction to add to a scan's energies so a foil's edge lands on its known E0.

    Parameters
    ----------
    energy : numpy.ndarray
        (n,) eV as the scan read them, one per foil reading (any order, repeats averaged).
    signal : numpy.ndarray
        (n,) the foil's absorption (e.g. ``ln(I1/I2)``), or its transmission ``I2/I1`` when
        ``kind`` is ``transmission`` (then ``-ln`` is taken).
    known_e0 : float
        The foil's tabulated edge energy (eV), e.g. 8333.0 for Ni metal.
    kind : {"absorption", "transmission"}
        What ``signal`` is.

    Returns
    -------
    (float, float)
        ``(known_e0 - measured_e0, measured_e0)`` in eV; measured E0 by
        :func:`~xanes_stream.spectra.normalize.find_e0` (largest derivative), refined to the
        steepest point of a cubic spline through the readings within two steps of it. The
        precision is set by the energy step: about 0.1-0.2 eV for a smooth edge on 1 eV
        steps, 0.3 eV for a metal foil's shouldered edge (finer steps across the edge help).
    """
    energy = np.asarray(energy, dtype=np.float64).ravel()
    signal = np.asarray(signal, dtype=np.float64).ravel()
    if energy.shape != signal.shape:
        raise ValueError(f"{energy.size} energies for {signal.size} foil readings")
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = -np.log(signal) if kind == "transmission" else signal
    good = np.isfinite(energy) & np.isfinite(mu)
    energy, mu = energy[good], mu[good]
    unique, inverse = np.unique(energy, return_inverse=True)
    mu = np.bincount(inverse, mu) / np.bincount(inverse)
    if unique.size < 5:
        raise ValueError(f"{unique.size} usable foil readings: E0 needs at least 5 energies")
    e0 = find_e0(unique, mu)
    i = int(np.searchsorted(unique, e0))
    lo, hi = unique[max(i - 2, 0)], unique[min(i + 2, unique.size - 1)]
    fine = np.linspace(lo, hi, 2001)  # sub-step: the cubic spline's steepest point near it
    e0 = float(fine[np.argmax(CubicSpline(unique, mu)(fine, 1))])
    return float(known_e0 - e0), e0
