"""The one orchestration of a scan's analysis: the fit (or the volume's, slice by slice) and the
analyses beyond it that the settings enable.

The CLI (``xanes-stream analyze``), the live service and replay all call :func:`analyze_scan`;
none of them assembles these steps itself. Where the references and the library come from
(files, Tiled, the bundled spectra) is the caller's business: here they are
:class:`~xanes_stream.spectra.references.Reference` objects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from xanes_stream.errors import AnalysisError
from xanes_stream.pipeline.analyze import BlockRunner, analyze
from xanes_stream.pipeline.first_look import first_look
from xanes_stream.pipeline.product_runner import run_products
from xanes_stream.pipeline.results import Maps
from xanes_stream.pipeline.settings import AnalysisSettings, load_settings
from xanes_stream.pipeline.volume import analyze_volume
from xanes_stream.spectra.energies import Units, to_ev
from xanes_stream.spectra.references import Reference

__all__ = ["VOLUME_PRODUCTS_NOTE", "analyze_scan", "volume_scan_settings"]

#: The note a volume's maps carry when analyses beyond the fit that run on 2-D scans only were
#: asked for (those registered with ``volumes=True``, the topography, run on volumes too).
VOLUME_PRODUCTS_NOTE = "analyses beyond the fit run on 2-D scans, not volumes"


def analyze_scan(
    frames,
    energies: np.ndarray,
    references: Sequence[Reference],
    *,
    settings: AnalysisSettings | dict | None = None,
    library: Sequence[Reference] | None = None,
    dark: np.ndarray | None = None,
    flat: np.ndarray | None = None,
    i0: np.ndarray | None = None,
    mode: str = "transmission",
    shifts: np.ndarray | None = None,
    progress: Callable | bool | None = None,
    load_model: Callable | None = None,
    noise: np.ndarray | None = None,
    blocks: BlockRunner | None = None,
    energy_offset: float | None = None,
    energy_units: Units = "auto",
) -> Maps:
    """Chemical maps of one scan, with the products its settings enable.

    Parameters
    ----------
    frames : array_like
        (n_frames, ny, nx) images of a 2-D scan, or (n_energy, nz, ny, nx) volumes of a 3-D
        XANES scan (a numpy array or an h5py dataset, read slab by slab).
    energies : numpy.ndarray
        (n_frames,) energies in ``energy_units``: ``"eV"``, ``"keV"``, or ``"auto"`` (the
        values tell it where they can; see :func:`~xanes_stream.spectra.energies.in_kev`).
    references : sequence of Reference
        The spectra the pixels are fitted with; empty: a first look
        (:func:`~xanes_stream.pipeline.first_look.first_look`, 2-D scans only).
    settings : AnalysisSettings, dict or None
        Analysis settings (None: the defaults).
    library : sequence of Reference, optional
        The library for combinatorial fitting and for matching components; None: the
        references.
    dark, flat, i0 : numpy.ndarray, optional
        Corrections, as for :func:`~xanes_stream.pipeline.analyze.analyze`.
    mode : str
        ``transmission``, ``fluorescence`` or ``absorbance``.
    shifts : numpy.ndarray, optional
        (n_frames, 2) shifts when the frames are registered already (the live service
        registers them as they arrive); registration is then not run again.
    progress : callable, bool or None
        Progress reporting, as :func:`~xanes_stream.pipeline.analyze.analyze` (2-D) or
        :func:`~xanes_stream.pipeline.volume.analyze_volume` (3-D) take it.
    load_model : callable, optional
        ``load_model(path, trusted)`` for the analyses that read a model file (the ML
        fractions); the pipeline reads no files itself (``xanes_stream.io.models.load_model``).
    noise : numpy.ndarray, optional
        (n_frames,) each frame's measured optical-density standard error (the live
        accumulator's, from several exposures per energy; NaN: not known): the reduced
        chi-square of a 2-D scan uses it, as :func:`~xanes_stream.pipeline.analyze.analyze`
        says; volumes ignore it.
    blocks : callable, optional
        Runs a 2-D scan's block pass elsewhere (a Dask cluster; see
        :data:`~xanes_stream.pipeline.analyze.BlockRunner`).
    energy_offset : float, optional
        eV added to the energies before the analysis (a foil's known minus measured E0,
        :func:`~xanes_stream.spectra.calibration.foil_energy_offset`), as
        :func:`~xanes_stream.pipeline.analyze.analyze` takes it; the products see the moved
        energies too. Not for volumes.

    Returns
    -------
    Maps
        The maps, with ``products`` filled for a 2-D scan. A volume is mapped slice by slice,
        unregistered and without clusters (volumes are aligned when reconstructed, and the
        clusters of separate slices would not match); its maps carry
        :data:`VOLUME_PRODUCTS_NOTE` when products were asked for.
    """
    settings = load_settings(settings)
    if getattr(frames, "ndim", None) == 4:
        if not references:
            raise AnalysisError(
                "no references: a 3-D scan needs at least one reference spectrum (a first look "
                "without references is for 2-D scans)"
            )
        if energy_offset is not None:
            raise AnalysisError("an energy offset (foil calibration) is for 2-D scans only")
        energies = to_ev(np.asarray(energies, dtype=np.float64), energy_units)
        return _analyze_volume(frames, energies, references, settings, mode, progress)
    fit = analyze if references else _first_look
    maps = fit(
        frames,
        energies,
        references,
        dark=dark,
        flat=flat,
        i0=i0,
        mode=mode,
        settings=settings,
        shifts=shifts,
        progress=progress,
        noise=noise,
        blocks=blocks,
        energy_offset=energy_offset,
        energy_units=energy_units,
    )
    energies = to_ev(np.asarray(energies, dtype=np.float64), energy_units)
    if energy_offset is not None:
        energies = energies + float(energy_offset)
    if settings.products.enabled():
        maps.products = run_products(
            frames,
            energies,
            maps,
            settings,
            list(library) if library is not None else list(references),
            dark=dark,
            flat=flat,
            i0=i0,
            mode=mode,
            shifts=shifts,
            load_model=load_model,
            energy_units="eV",
        )
    return maps


def _first_look(frames, energies, references, *, noise=None, **inputs) -> Maps:
    """The first look of a scan without references (``noise`` has no fit to weigh)."""
    return first_look(frames, energies, **inputs)


def volume_scan_settings(settings: AnalysisSettings) -> AnalysisSettings:
    """The settings a 3-D scan is analysed with: unregistered, without clusters (wherever the
    slabs are fitted: in this process or on a cluster)."""
    registration = settings.registration.model_copy(update={"method": "none"})
    mask = settings.mask.model_copy(update={"n_clusters": 0})
    return settings.model_copy(update={"registration": registration, "mask": mask})


def _analyze_volume(volumes, energies, references, settings, mode, progress) -> Maps:
    """A 3-D scan's maps: slice by slice, unregistered, without clusters."""
    maps = analyze_volume(
        volumes,
        energies,
        references,
        mode=mode,
        settings=volume_scan_settings(settings),
        progress=bool(progress) if not callable(progress) else progress,
    )
    if set(settings.products.enabled()) - set(maps.products):
        maps.metadata["notes"].append(VOLUME_PRODUCTS_NOTE)
    return maps
