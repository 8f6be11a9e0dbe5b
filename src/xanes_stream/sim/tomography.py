"""Tomographic XANES with known chemistry: a 3-D phantom of particles, projected at every energy.

The phantom is spheres of material in an empty cylinder of view; every voxel's absorption at
energy E is ``density x (0.5 (E/E_0)^-2.8 + sum_k f_k unit_k(E))`` per pixel length, as in
:func:`~xanes_stream.sim.phantom.make_phantom`. Since absorption is linear in the maps, each
slice's ``density`` and ``density x f_k`` are projected once
(:func:`~xanes_stream.imaging.tomography.project`) and the projections of every energy are
their combinations. Projections are flat-corrected transmission with Poisson
noise at ``counts`` photons per open-beam pixel; the rotation axis can be planted off the
detector's centre (``center_offset``).

The file layout (:func:`write_projections`) follows DXchange (APS, and what TXMs write):
``/exchange/data`` (n_energy, n_angles, nz, nx) transmission, ``/exchange/theta`` (n_angles)
degrees, ``/exchange/energy`` (n_energy) eV, and the truth under ``/truth``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from xanes_stream.imaging.tomography import project, shift_columns
from xanes_stream.io.references import bundled_reference
from xanes_stream.sim.phantom import ni_edge_energies, unit_step_spectrum
from xanes_stream.spectra.references import Reference


@dataclass
class TomoPhantom:
    """A tomographic XANES scan and its ground truth.

    ``projections`` (n_energy, n_angles, nz, nx) transmission; ``fractions`` (k, nz, nx, nx);
    ``density`` (nz, nx, nx) edge step per voxel; ``labels`` the particle of each voxel (0:
    none); ``center`` the detector column of the rotation axis.
    """

    energies: np.ndarray
    angles: np.ndarray
    projections: np.ndarray
    references: list[Reference]
    fractions: np.ndarray
    density: np.ndarray
    labels: np.ndarray
    center: float
    metadata: dict = field(default_factory=dict)


def _spheres(rng, nz: int, n: int, n_particles: int, k: int):
    """Labels (nz, n, n) of non-touching spheres inside the cylinder of view, a density with a
    smooth rim, and one composition (k,) per sphere."""
    zz, yy, xx = np.mgrid[0:nz, 0:n, 0:n].astype(np.float64)
    c = n // 2
    labels = np.zeros((nz, n, n), dtype=np.int32)
    density = np.zeros((nz, n, n))
    compositions = (
        rng.dirichlet(np.ones(k), size=n_particles) if k > 1 else np.ones((n_particles, 1))
    )
    placed = 0
    for _ in range(1000):
        if placed == n_particles:
            break
        r = rng.uniform(0.12, 0.2) * n
        room = 0.45 * n - r
        if room <= 0:
            break
        cy, cx = c + rng.uniform(-room, room, size=2)
        if np.hypot(cy - c, cx - c) > room:
            continue
        cz = rng.uniform(r + 1, nz - r - 1) if nz > 2 * r + 2 else nz / 2
        d2 = (zz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2
        if (labels[d2 < (r + 2) ** 2] > 0).any():
            continue
        placed += 1
        inside = d2 < r**2
        labels[inside] = placed
        density[inside] = rng.uniform(0.03, 0.06)
    fractions = np.zeros((k, nz, n, n))
    for i in range(1, placed + 1):
        fractions[:, labels == i] = compositions[i - 1][:, None]
    return labels, density, fractions


def _radon_slices(maps: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """(m, nz, n, n) maps to their projections (m, n_angles, nz, n), the axis at n // 2."""
    m, nz, n, _ = maps.shape
    projections = project(maps.reshape(m * nz, n, n), angles)  # (n_angles, m * nz, n)
    return projections.reshape(angles.size, m, nz, n).transpose(1, 0, 2, 3)


def make_tomo_phantom(
    size: int = 32,
    nz: int | None = None,
    energies: np.ndarray | None = None,
    references: list[Reference] | tuple[str, ...] = ("NiO", "LiNiO2"),
    *,
    n_angles: int = 60,
    angle_range: float = 180.0,
    n_particles: int = 4,
    counts: float = 20_000.0,
    center_offset: float = 0.0,
    seed: int = 0,
    noise: bool = True,
) -> TomoPhantom:
    """A tomographic XANES scan of spheres of known composition (see the module's docstring).

    Parameters
    ----------
    size : nx (= ny) of the volume and of the detector.
    nz : slices (default ``size``).
    energies : eV (default: 20 across the Ni K-edge).
    references : reference spectra or bundled names; each sphere has one random composition.
    n_angles : projections per energy, evenly over ``angle_range`` degrees (end included when
        the range is 180, so the scan holds a 0/180 pair).
    counts : open-beam photons per pixel (Poisson noise); ``noise=False``: none.
    center_offset : pixels the rotation axis sits right of column ``size // 2``.
    """
    rng = np.random.default_rng(seed)
    nz = size if nz is None else int(nz)
    if energies is None:
        energies = np.linspace(ni_edge_energies()[0], ni_edge_energies()[-1], 20)
    energies = np.asarray(energies, dtype=np.float64)
    refs = [bundled_reference(r) if isinstance(r, str) else r for r in references]
    angles = np.linspace(0.0, angle_range, n_angles, endpoint=angle_range >= 180.0)
    labels, density, fractions = _spheres(rng, nz, size, n_particles, len(refs))

    basis = np.concatenate([density[None], fractions * density[None]])  # (1 + k, nz, n, n)
    sinograms = _radon_slices(basis, angles)
    unit = np.stack([unit_step_spectrum(r, energies) for r in refs], axis=1)  # (n_e, k)
    spectra = np.concatenate([0.5 * (energies / energies[0])[:, None] ** -2.8, unit], axis=1)
    od = np.einsum("ej,jazx->eazx", spectra, sinograms)
    if center_offset:
        od = shift_columns(od, center_offset).astype(np.float64)
    if noise:
        flat = rng.poisson(counts, size=od.shape).astype(np.float64)
        transmission = rng.poisson(counts * np.exp(-od)) / np.maximum(flat, 1.0)
        transmission = np.maximum(transmission, 0.5 / counts)  # no zero counts: -ln stays finite
    else:
        transmission = np.exp(-od)
    return TomoPhantom(
        energies=energies,
        angles=angles,
        projections=transmission.astype(np.float32),
        references=refs,
        fractions=fractions.astype(np.float32),
        density=density.astype(np.float32),
        labels=labels,
        center=size // 2 + float(center_offset),
        metadata={"counts": counts, "seed": seed, "center_offset": center_offset},
    )


def write_projections(phantom: TomoPhantom, path: str | Path) -> Path:
    """Write the phantom's projections in the DXchange layout (see the module's docstring)."""
    path = Path(path)
    with h5py.File(path, "w") as f:
        f.create_dataset("exchange/data", data=phantom.projections, compression="gzip")
        f.create_dataset("exchange/theta", data=phantom.angles)
        f.create_dataset("exchange/energy", data=phantom.energies)
        f["exchange/data"].attrs["signal"] = "transmission"
        truth = f.create_group("truth")
        truth.create_dataset("fractions", data=phantom.fractions, compression="gzip")
        truth.create_dataset("density", data=phantom.density, compression="gzip")
        truth.create_dataset("labels", data=phantom.labels, compression="gzip")
        truth.attrs["center"] = phantom.center
        truth.attrs["references"] = json.dumps([r.name for r in phantom.references])
        f.attrs["note"] = "synthetic tomographic XANES made by xanes-stream example-tomo"
    return path
