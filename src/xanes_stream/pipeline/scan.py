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
from xanes_stream.pipeline.analyze import analyze
from xanes_stream.pipeline.product_runner import run_products
from xanes_stream.pipeline.results import Maps
from xanes_stream.pipeline.settings import AnalysisSettings, load_settings
from xanes_stream.pipeline.volume import analyze_volume
from xanes_stream.spectra.references import Reference

__all__ = ["VOLUME_PRODUCTS_NOTE", "analyze_scan"]

#: The note a volume's maps carry when analyses beyond the fit were asked for.
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
) -> Maps:
    """Chemical maps of one scan, with the products its settings enable.

    Parameters
    ----------
    frames : array_like
        (n_frames, ny, nx) images of a 2-D scan, or (n_energy, nz, ny, nx) volumes of a 3-D
        XANES scan (a numpy array or an h5py dataset, read slab by slab).
    energies : numpy.ndarray
        (n_frames,) energies in eV (or keV, detected).
    references : sequence of Reference
        The spectra the pixels are fitted with.
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

    Returns
    -------
    Maps
        The maps, with ``products`` filled for a 2-D scan. A volume is mapped slice by slice,
        unregistered and without clusters (volumes are aligned when reconstructed, and the
        clusters of separate slices would not match); its maps carry
        :data:`VOLUME_PRODUCTS_NOTE` when products were asked for.
    """
    settings = load_settings(settings)
    if not references:
        raise AnalysisError("no references: give at least one reference spectrum")
    if getattr(frames, "ndim", None) == 4:
        return _analyze_volume(frames, energies, references, settings, mode, progress)
    maps = analyze(
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
    )
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
        )
    return maps


def _analyze_volume(volumes, energies, references, settings, mode, progress) -> Maps:
    """A 3-D scan's maps: slice by slice, unregistered, without clusters."""
    registration = settings.registration.model_copy(update={"method": "none"})
    mask = settings.mask.model_copy(update={"n_clusters": 0})
    maps = analyze_volume(
        volumes,
        energies,
        references,
        mode=mode,
        settings=settings.model_copy(update={"registration": registration, "mask": mask}),
        progress=bool(progress) if not callable(progress) else progress,
    )
    if settings.products.enabled():
        maps.metadata["notes"].append(VOLUME_PRODUCTS_NOTE)
    return maps
