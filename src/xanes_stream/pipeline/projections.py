"""3D XANES from projections: a tomogram per energy, then :func:`analyze_volume` on the volumes.

Every energy is reconstructed about the same rotation centre, found once on the energy whose
projections absorb most (the white line, where the contrast is highest) unless
``tomography.center`` gives it or ``tomography.center_per_energy`` asks for one per energy. The
reconstructed volumes are absorption per voxel, analysed in ``absorbance`` mode.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

import numpy as np
from pydantic import Field

from xanes_stream.errors import AnalysisError, SettingsError
from xanes_stream.imaging.correct import check_mode
from xanes_stream.imaging.tomography import absorbance, find_center, reconstruct
from xanes_stream.pipeline.analyze import ReferencesLike
from xanes_stream.pipeline.results import Maps
from xanes_stream.pipeline.section import _Section
from xanes_stream.pipeline.settings import AnalysisSettings
from xanes_stream.pipeline.volume import analyze_volume

__all__ = ["TomographySettings", "analyze_projections", "reconstruct_energies", "split_settings"]

_CENTER_SLICES = 8


class TomographySettings(_Section):
    """How each energy's projections are reconstructed (the ``tomography:`` section of a
    settings file for a projections scan)."""

    method: Literal["fbp", "sart"] = "fbp"
    center: float | None = Field(
        None, description="detector column of the rotation axis; None: found from the data"
    )
    center_per_energy: bool = Field(False, description="find the centre at every energy")
    sart_iterations: int = Field(1, ge=1, le=100)
    filter_name: Literal["ramp", "shepp-logan", "cosine", "hamming", "hann"] = "ramp"


def split_settings(source: dict | None) -> tuple[dict, TomographySettings]:
    """A settings mapping split into the analysis's part and its ``tomography`` section.

    Parameters
    ----------
    source : dict or None
        Settings as a YAML file holds them.

    Returns
    -------
    (dict, TomographySettings)
        The mapping without ``tomography``, and that section validated.
    """
    source = dict(source or {})
    section = source.pop("tomography", None) or {}
    if not isinstance(section, dict):
        raise SettingsError("settings: tomography must be a mapping (method, center, ...)")
    try:
        return source, TomographySettings.model_validate(section)
    except ValueError as exc:
        raise SettingsError(f"invalid tomography settings: {exc}") from None


def _tomography(value: TomographySettings | dict | None) -> TomographySettings:
    if isinstance(value, TomographySettings):
        return value
    return split_settings({"tomography": value or {}})[1]


def _brightest(projections, mode: str) -> int:
    """The energy whose projections absorb most, from the first angle's central slices."""
    nz = projections.shape[2]
    z = np.unique(np.linspace(0, nz - 1, min(nz, _CENTER_SLICES)).round().astype(int))
    sample = np.asarray(projections[:, 0, z[0] : z[-1] + 1])
    totals = np.nansum(absorbance(sample, mode).reshape(sample.shape[0], -1), axis=1)
    return int(np.argmax(totals))


def reconstruct_energies(
    projections,
    angles: np.ndarray,
    *,
    mode: str = "transmission",
    tomography: TomographySettings | dict | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A volume per energy from (n_energy, n_angles, nz, nx) projections.

    Parameters
    ----------
    projections : array or h5py dataset, read one energy at a time.
    angles : (n_angles,) degrees.
    mode : what the projections hold (``transmission``: ``-ln`` taken; ``absorbance``).
    tomography : :class:`TomographySettings` or a dict of them.
    progress : called ``progress(done, n_energy)`` after each energy.

    Returns
    -------
    (volumes, centers)
        (n_energy, nz, nx, nx) float32 absorption, and the centre used at each energy.
    """
    check_mode(mode)
    tomo = _tomography(tomography)
    if getattr(projections, "ndim", None) != 4:
        raise AnalysisError(
            "projections must be (n_energy, n_angles, nz, nx), got shape "
            f"{getattr(projections, 'shape', None)}"
        )
    n, n_angles, nz, nx = projections.shape
    angles = np.asarray(angles, dtype=np.float64).ravel()
    if angles.size != n_angles:
        raise AnalysisError(f"{angles.size} angles for {n_angles} projections per energy")
    center = tomo.center
    if center is None and not tomo.center_per_energy:
        center = find_center(absorbance(projections[_brightest(projections, mode)], mode), angles)
    volumes = np.empty((n, nz, nx, nx), dtype=np.float32)
    centers = np.empty(n)
    for e in range(n):
        values = absorbance(projections[e], mode)
        centers[e] = find_center(values, angles) if center is None else center
        volumes[e] = reconstruct(
            values,
            angles,
            method=tomo.method,
            center=centers[e],
            sart_iterations=tomo.sart_iterations,
            filter_name=tomo.filter_name,
        )
        if progress is not None:
            progress(e + 1, n)
    return volumes, centers


def analyze_projections(
    projections,
    energies: np.ndarray,
    angles: np.ndarray,
    references: ReferencesLike,
    *,
    mode: Literal["transmission", "absorbance"] = "transmission",
    settings: AnalysisSettings | dict | None = None,
    tomography: TomographySettings | dict | None = None,
    progress: bool | Callable[[int, int], None] = False,
    chunk_slices: int = 8,
) -> Maps:
    """Chemical maps of a tomographic XANES scan: reconstruct each energy, fit the volumes.

    Parameters
    ----------
    projections : (n_energy, n_angles, nz, nx) array or h5py dataset of flat-corrected
        transmission (``transmission``) or absorption (``absorbance``).
    energies : (n_energy,) eV or keV.
    angles : (n_angles,) rotation angles in degrees, the same at every energy.
    references : as for :func:`~xanes_stream.pipeline.analyze.analyze`.
    settings : the volume analysis's, as for
        :func:`~xanes_stream.pipeline.volume.analyze_volume`.
    tomography : :class:`TomographySettings` or a dict of them (method, center, ...).
    progress : as for ``analyze_volume`` (slices of the fit); reconstruction is not counted.
    chunk_slices : as for ``analyze_volume``.

    Returns
    -------
    Maps
        As ``analyze_volume`` returns them, (k, nz, nx, nx) fractions; ``metadata["tomography"]``
        holds the method, the centres used and the reconstruction's seconds.
    """
    tomo = _tomography(tomography)
    started = time.perf_counter()
    if np.size(energies) != getattr(projections, "shape", (0,))[0]:
        raise AnalysisError(
            f"{np.size(energies)} energies for {getattr(projections, 'shape', (0,))[0]} "
            "energies of projections: they must match"
        )
    volumes, centers = reconstruct_energies(projections, angles, mode=mode, tomography=tomo)
    seconds = time.perf_counter() - started
    maps = analyze_volume(
        volumes,
        energies,
        references,
        mode="absorbance",
        settings=settings,
        progress=progress,
        chunk_slices=chunk_slices,
    )
    maps.metadata["tomography"] = {
        **tomo.model_dump(mode="json"),
        "centers": [float(c) for c in np.unique(centers)],
        "n_angles": int(np.size(angles)),
        "angle_range": [float(np.min(angles)), float(np.max(angles))],
        "projections_mode": mode,
        "seconds": seconds,
    }
    maps.metadata["timings"]["reconstruction"] = seconds
    return maps
