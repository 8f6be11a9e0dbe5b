"""3D XANES: :func:`~xanes_stream.pipeline.analyze.analyze` over a stack of reconstructed volumes.

Slices are read ``chunk_slices`` at a time (an HDF5 dataset is never read whole) and each z-slice
is analysed as a 2-D scan with one E0 for the whole volume, so the normalization windows, and
hence the maps, are the same in every slice. The quality mask is decided once on the whole
volume (a slice above the sample has no particles for Otsu to find).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

import numpy as np

from xanes_stream import __version__
from xanes_stream.errors import AnalysisError
from xanes_stream.imaging.correct import correct
from xanes_stream.pipeline.analyze import ReferencesLike, analyze, as_references
from xanes_stream.pipeline.product_runner import run_volume_products
from xanes_stream.pipeline.results import Maps
from xanes_stream.pipeline.settings import AnalysisSettings, load_settings
from xanes_stream.spectra.energies import to_ev
from xanes_stream.spectra.masks import quality_mask
from xanes_stream.spectra.normalize import find_e0

#: Per-voxel maps of a volume, besides the fractions.
VOLUME_MAPS = ("thickness", "error", "r_factor", "chi2_red", "edge_energy", "peak_energy")
_SAMPLE_SLICES = 8
_SAMPLE_PIXELS = 16_384


def _volume_settings(settings: AnalysisSettings | dict | None) -> AnalysisSettings:
    """Settings for the slices: per-slice registration and clusters are off unless asked for
    (volumes are aligned before reconstruction; clusters of separate slices do not match)."""
    if isinstance(settings, AnalysisSettings):
        return settings
    base: dict = {"registration": {"method": "none"}, "mask": {"n_clusters": 0}}
    for key, value in (settings or {}).items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return load_settings(base)


def _volume_e0(volumes, energies: np.ndarray, mode: str, seed: int) -> float:
    """E0 of the mean spectrum of a sample of voxels from a few slices spread along z (one
    slice in memory at a time)."""
    n, nz, ny, nx = volumes.shape
    rng = np.random.default_rng(seed)
    sums = np.zeros(n)
    counts = np.zeros(n)
    slices = np.unique(np.linspace(0, nz - 1, min(nz, _SAMPLE_SLICES)).round().astype(int))
    per_slice = max(1, _SAMPLE_PIXELS // slices.size)
    for z in slices:
        plane = np.asarray(volumes[:, int(z)]).reshape(n, -1)
        pick = rng.choice(ny * nx, size=min(ny * nx, per_slice), replace=False)
        values = plane[:, pick].astype(np.float64)
        del plane
        values = correct(values, mode, out=values)
        finite = np.isfinite(values)
        sums += np.where(finite, values, 0.0).sum(axis=1)
        counts += finite.sum(axis=1)
    unique, inverse = np.unique(energies, return_inverse=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.bincount(inverse, weights=sums) / np.bincount(inverse, weights=counts)
    if not np.isfinite(mean).all():
        raise AnalysisError("some energies have no finite values in the sampled slices")
    return find_e0(unique, mean)


def _progress_callback(progress, total: int):
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="3D XANES", unit="slice")
        return (lambda done, _total: bar.update(1)), bar.close
    if callable(progress):
        return progress, (lambda: None)
    return (lambda done, _total: None), (lambda: None)


def prepare_volume(
    volumes,
    energies: np.ndarray,
    references: ReferencesLike,
    *,
    mode: str = "absorbance",
    settings: AnalysisSettings | dict | None = None,
) -> tuple[np.ndarray, list, AnalysisSettings]:
    """The global pass before the slabs: checked shape, energies in eV, the references and the
    settings with the volume's one E0 (from a sample of voxels when not given).

    Returns ``(energies, references, settings)``: what :func:`analyze_slab` takes for every
    slab, so that slabs analysed anywhere (in this process or on Dask workers) agree.
    """
    if getattr(volumes, "ndim", None) != 4:
        raise AnalysisError(
            f"volumes must be (n_energy, nz, ny, nx), got shape {getattr(volumes, 'shape', None)}"
        )
    energies = np.asarray(energies, dtype=np.float64).ravel()
    n = volumes.shape[0]
    if energies.size != n:
        raise AnalysisError(f"{energies.size} energies for {n} volumes: they must match")
    energies = to_ev(energies)
    settings = _volume_settings(settings)
    if settings.normalization.e0 is None:
        e0 = _volume_e0(volumes, energies, mode, settings.mask.seed)
        normalization = settings.normalization.model_copy(update={"e0": e0})
        settings = settings.model_copy(update={"normalization": normalization})
    return energies, as_references(references), settings


def analyze_slab(
    slab: np.ndarray,
    energies: np.ndarray,
    references: list,
    *,
    mode: str,
    settings: AnalysisSettings,
    on_slice: Callable[[], None] | None = None,
) -> dict:
    """The per-voxel maps of a slab of z-slices (arrays in, arrays out; no global step).

    Parameters
    ----------
    slab : (n_energy, dz, ny, nx) array.
    energies, references, settings : as :func:`prepare_volume` returns them (one E0).
    mode : as for :func:`analyze_volume`.
    on_slice : called after each slice.

    Returns
    -------
    dict
        ``fractions`` (k, dz, ny, nx) (and ``fraction_errors`` with ``fit.errors``), each of
        :data:`VOLUME_MAPS` (dz, ny, nx) float32,
        ``spectra`` (dz, 2, n_fit) each slice's mean spectrum and its fit, ``energies`` and
        ``fit_energies`` of the fit, ``notes`` (list of str).
    """
    dz = slab.shape[1]
    out: dict = {"notes": set()}
    # every voxel's fit: the volume's mask is drawn once the whole volume is in (assemble_volume)
    keep = settings.mask.model_copy(update={"outside": "keep"})
    update: dict = {"mask": keep}
    if settings.fit.model == "auto":  # one model for every slice: not chosen slice by slice
        update["fit"] = settings.fit.model_copy(update={"model": "normalized"})
    settings = settings.model_copy(update=update)
    for j in range(dz):
        maps = analyze(np.asarray(slab[:, j]), energies, references, mode=mode, settings=settings)
        if j == 0:
            out["fractions"] = np.empty((len(references), dz, *maps.mask.shape), np.float32)
            for name in VOLUME_MAPS:
                out[name] = np.empty((dz, *maps.mask.shape), np.float32)
            out["spectra"] = np.empty((dz, 2, maps.fit_energies.size))
            out["mask"] = np.empty((dz, *maps.mask.shape), bool)
        out["mask"][j] = maps.mask  # the signal-to-noise mask is a voxel's own: slice by slice
        out["fractions"][:, j] = maps.fractions
        if maps.fraction_errors is not None:  # fit.errors
            if j == 0:
                out["fraction_errors"] = np.empty_like(out["fractions"])
            out["fraction_errors"][:, j] = maps.fraction_errors
        for name in VOLUME_MAPS:
            out[name][j] = getattr(maps, name)
        out["spectra"][j] = maps.mean_spectrum, maps.mean_fit
        out["notes"].update(maps.metadata["notes"])
        out["energies"], out["fit_energies"] = maps.energies, maps.fit_energies
        if on_slice is not None:
            on_slice()
    out["notes"] = sorted(out["notes"])
    return out


def assemble_volume(
    slabs,
    shape: tuple[int, int, int, int],
    references: list,
    *,
    mode: str,
    settings: AnalysisSettings,
    started: float,
    chunk_slices: int,
) -> Maps:
    """The volume's Maps from its slabs' :func:`analyze_slab` results, ``slabs`` an iterable
    of ``(z0, result)`` in any order: the whole-volume steps (the quality mask, the mean
    spectrum weighted by the mask) are done here, once."""
    n, nz, ny, nx = shape
    k = len(references)
    out = {name: np.full((nz, ny, nx), np.nan, dtype=np.float32) for name in VOLUME_MAPS}
    fractions = np.full((k, nz, ny, nx), np.nan, dtype=np.float32)
    errors = np.full_like(fractions, np.nan) if settings.fit.errors else None
    slice_masks = np.zeros((nz, ny, nx), dtype=bool)
    notes: set[str] = set()
    spectra = None
    fitted_energies = fit_energies = None
    for z0, slab in slabs:
        z1 = z0 + slab["fractions"].shape[1]
        fractions[:, z0:z1] = slab["fractions"]
        if errors is not None and "fraction_errors" in slab:
            errors[:, z0:z1] = slab["fraction_errors"]
        for name in VOLUME_MAPS:
            out[name][z0:z1] = slab[name]
        slice_masks[z0:z1] = slab["mask"]
        if spectra is None or spectra.shape[2] != slab["spectra"].shape[2]:
            spectra = np.full((nz, 2, slab["spectra"].shape[2]), np.nan)
        spectra[z0:z1] = slab["spectra"]
        notes.update(slab["notes"])
        fitted_energies, fit_energies = slab["energies"], slab["fit_energies"]
        del slab  # not held while the next slab is analysed
    if spectra is None:
        raise AnalysisError("no slices were analysed")

    if settings.mask.method == "snr":  # each voxel's own test, made in its slice
        mask = slice_masks
        thresholds = {
            "method": "snr",
            "min_snr": settings.mask.min_snr,
            "thickness": settings.mask.thickness_threshold,
            "r_factor": settings.mask.r_factor_threshold,
        }
    else:
        mask, t_thr, r_thr = quality_mask(
            out["thickness"],
            out["r_factor"],
            thickness_threshold=settings.mask.thickness_threshold,
            r_factor_threshold=settings.mask.r_factor_threshold,
        )
        thresholds = {"method": "otsu", "thickness": t_thr, "r_factor": r_thr}
    metadata = {
        "software": "xanes-stream",
        "version": __version__,
        "mode": mode,
        "references": [r.name for r in references],
        "settings": settings.model_dump(mode="json"),
        "method": "fit",
        "normalization": {"e0": settings.normalization.e0},
        "thresholds": thresholds,
        "notes": sorted(notes),
        "chunk_slices": chunk_slices,
        "shape": [n, nz, ny, nx],
        "timings": {"total": time.perf_counter() - started},
    }
    if settings.mask.outside == "nan":
        outside = ~mask
        for name in VOLUME_MAPS:
            if name != "thickness":  # kept: it shows what the mask judged
                out[name][outside] = np.nan
        for values in (fractions, errors):
            if values is not None:
                values[:, outside] = np.nan
    # the volume's mean spectrum: the slices', weighted by their pixels in the volume's mask
    weights = mask.reshape(nz, -1).sum(axis=1).astype(np.float64)
    usable = np.isfinite(spectra).all(axis=(1, 2)) & (weights > 0)
    if usable.any():
        total = weights[usable].sum()
        mean_spectrum, mean_fit = np.einsum("z,zij->ij", weights[usable], spectra[usable]) / total
    else:
        mean_spectrum = mean_fit = np.full(spectra.shape[2], np.nan)
    maps = Maps(
        reference_names=[r.name for r in references],
        fractions=fractions,
        mask=mask,
        clusters=np.zeros((nz, ny, nx), dtype=np.int8),  # slices' clusters would not match
        shifts=np.zeros((n, 2)),
        energies=fitted_energies,
        mean_spectrum=mean_spectrum,
        mean_fit=mean_fit,
        fit_energies=fit_energies,
        metadata=metadata,
        fraction_errors=errors,
        **out,
    )
    if settings.products.enabled():  # those that run on volumes (the topography)
        maps.products = run_volume_products(maps, settings, references)
    return maps


def analyze_volume(
    volumes,
    energies: np.ndarray,
    references: ReferencesLike,
    *,
    mode: Literal["absorbance", "transmission"] = "absorbance",
    settings: AnalysisSettings | dict | None = None,
    progress: bool | Callable[[int, int], None] = True,
    chunk_slices: int = 8,
) -> Maps:
    """Chemical maps of a 3D XANES scan, slice by slice.

    Parameters
    ----------
    volumes : (n_energy, nz, ny, nx) numpy array or h5py dataset of reconstructed absorption
        (``absorbance``) or transmission I/I0 (``transmission``, -ln taken).
    energies : (n_energy,) in eV or keV (detected).
    references : as for :func:`~xanes_stream.pipeline.analyze.analyze`.
    settings : as for ``analyze``; given as None or a dict, per-slice registration and
        clustering are off unless the dict turns them on. ``normalization.e0`` None: one E0
        from a sample of voxels of the whole volume.
    progress : True: a tqdm bar; a callable: called ``progress(done, nz)`` per slice.
    chunk_slices : z-slices read at once; memory beyond the maps is this many slices of the
        input plus one slice's analysis.

    Returns :class:`~xanes_stream.pipeline.results.Maps` with a z axis: ``fractions`` (k, nz,
    ny, nx), the
    other maps (nz, ny, nx); ``clusters`` are 0 (clusters of separate slices would not match),
    ``shifts`` 0, ``mean_spectrum`` and ``mean_fit`` the slices' weighted by their masks;
    ``products`` those of the enabled analyses that run on volumes (the topography).
    """
    started = time.perf_counter()
    if chunk_slices < 1:
        raise AnalysisError(f"chunk_slices must be at least 1, got {chunk_slices}")
    energies, refs, settings = prepare_volume(
        volumes, energies, references, mode=mode, settings=settings
    )
    nz = volumes.shape[1]
    on_slice, close = _progress_callback(progress, nz)
    done = [0]

    def tick() -> None:
        done[0] += 1
        on_slice(done[0], nz)

    def slabs():
        for z0 in range(0, nz, chunk_slices):
            chunk = volumes[:, z0 : min(z0 + chunk_slices, nz)]  # one read of a dataset
            for j in range(chunk.shape[1]):  # one slice's maps at a time beyond the volume's
                one = chunk[:, j : j + 1]
                yield (
                    z0 + j,
                    analyze_slab(one, energies, refs, mode=mode, settings=settings, on_slice=tick),
                )
            del chunk

    try:
        return assemble_volume(
            slabs(),
            tuple(volumes.shape),
            refs,
            mode=mode,
            settings=settings,
            started=started,
            chunk_slices=chunk_slices,
        )
    finally:
        close()
