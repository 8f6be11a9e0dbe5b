"""The energy calibration step of ``analyze``: references moved onto the scan's energy scale.

Called just before the plan is made (``fit.energy_shift``): the shifts are fitted on the mean
normalized spectrum of the thick pixels of analyze's pixel sample (those whose edge step
passes Otsu's threshold), with the scan's own edge normalization, by
:func:`~xanes_stream.spectra.calibration.fit_energy_shift`; the references come back moved
(``E_ref + s``), so the pixels are fitted with them. A shift that reaches
``fit.max_energy_shift`` is an :class:`~xanes_stream.errors.AnalysisError`: the maps would be
biased by what is left.
"""

from __future__ import annotations

import numpy as np

from xanes_stream.errors import AnalysisError
from xanes_stream.imaging.shift import unseen_fraction
from xanes_stream.pipeline.frames import Frames, Source
from xanes_stream.pipeline.plan import scan_operator
from xanes_stream.spectra.calibration import fit_energy_shift
from xanes_stream.spectra.masks import otsu_threshold
from xanes_stream.spectra.references import Reference, unit_step


def _inside(selected: Frames, shifts: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """Which sample pixels every frame saw (a registered frame's border holds what came in
    from outside; :func:`~xanes_stream.imaging.shift.unseen_fraction`)."""
    return unseen_fraction(shifts, shape)[selected.sample_y, selected.sample_x] == 0


def thick_mean_spectrum(
    settings, selected: Frames, source: Source, shifts: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The edge-normalized mean spectrum of the sample's thick pixels, on the fit energies.

    Parameters
    ----------
    settings : AnalysisSettings
        Its ``normalization`` and ``fit.energy_range`` are read (as the plan reads them).
    selected : Frames
        The usable frames (their distinct energies).
    source : Source
        The sample pixels' mu.
    shifts : numpy.ndarray, optional
        (n, 2) the frames' registration shifts: pixels they moved in from outside are left out.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The fit energies (eV) and the mean normalized spectrum on them.
    """
    energies, sample_mu = selected.unique, source.sample_mu
    _, _, operator = scan_operator(settings, energies, sample_mu)
    _, step = operator.apply(sample_mu, out_dtype=np.float64)
    threshold = otsu_threshold(step)
    thick = np.isfinite(step) & (step > (threshold if np.isfinite(threshold) else 0.0))
    thick &= np.all(np.isfinite(sample_mu), axis=0) & _inside(
        selected, shifts, source.frames.shape[1:]
    )
    if not thick.any():
        raise AnalysisError(
            "fit.energy_shift needs sample pixels with an absorption edge; none has a positive "
            "edge step"
        )
    mean = np.mean(sample_mu[:, thick], axis=1, dtype=np.float64)
    y, _ = operator.apply(mean[:, None], out_dtype=np.float64)
    return operator.fit_energy, y[:, 0]


def _moved(ref: Reference, shift: float) -> Reference:
    """``ref`` normalized and moved by ``shift`` eV, still covering its original range (the end
    values held over the ``|shift|`` it was moved away from)."""
    normalized = unit_step(ref)
    energy, mu = normalized.energy + shift, normalized.mu
    if shift > 0:
        energy, mu = np.r_[normalized.energy[0], energy], np.r_[mu[0], mu]
    elif shift < 0:
        energy, mu = np.r_[energy, normalized.energy[-1]], np.r_[mu, mu[-1]]
    metadata = {**ref.metadata, "energy_shift": float(shift)}
    return Reference(ref.name, energy, mu, True, ref.source, metadata)


def calibrate_references(
    settings,
    refs: list[Reference],
    selected: Frames,
    source: Source,
    notes: list[str],
    shifts: np.ndarray | None = None,
) -> tuple[list[Reference], dict[str, float]]:
    """The references moved by the energy shifts ``settings.fit.energy_shift`` asks for.

    Parameters
    ----------
    settings : AnalysisSettings
        ``fit.energy_shift`` (``none``: ``refs`` returned as they are) and
        ``fit.max_energy_shift``.
    refs : list of Reference
        The references of the fit.
    selected : Frames
        The usable frames.
    source : Source
        The sample pixels' mu.
    notes : list of str
        A note on the shifts found is appended.
    shifts : numpy.ndarray, optional
        (n, 2) the frames' registration shifts (:func:`thick_mean_spectrum`).

    Returns
    -------
    (list of Reference, dict)
        The references to fit with, and the shifts (eV): ``{"data": s}`` or one per
        reference name; empty when ``none``.
    """
    mode = settings.fit.energy_shift
    if mode == "none":
        return refs, {}
    limit = settings.fit.max_energy_shift
    energy, spectrum = thick_mean_spectrum(settings, selected, source, shifts)
    normalized = [unit_step(r) for r in refs]
    found = fit_energy_shift(
        energy, spectrum, [r.energy for r in normalized], [r.mu for r in normalized], mode, limit
    )
    if mode == "data":
        shifts = {"data": float(found.shifts[0])}
        moved = [_moved(r, shifts["data"]) for r in refs]
    else:
        shifts = {r.name: float(s) for r, s in zip(refs, found.shifts, strict=True)}
        moved = [_moved(r, shifts[r.name]) for r in refs]
    if found.at_bound.any():
        names = ", ".join(n for n, hit in zip(shifts, found.at_bound, strict=True) if hit)
        raise AnalysisError(
            f"the energy shift ({names}) reached fit.max_energy_shift = {limit:g} eV: the "
            "scan's and the references' energy scales differ by more than that, or the "
            "references do not match this sample; widen fit.max_energy_shift or check the "
            "energies"
        )
    text = ", ".join(f"{name} {value:+.2f} eV" for name, value in shifts.items())
    notes.append(f"energy calibration ({mode}): references used at E_ref + shift, shifts {text}")
    undetermined = [n for n, d in zip(shifts, found.determined, strict=True) if not d]
    if undetermined:
        notes.append(
            "the mean spectrum holds too little of "
            + ", ".join(undetermined)
            + " to measure its own energy shift; it takes the others' mean"
        )
    return moved, shifts
