"""Optical-density stacks with a known smooth background, for the optical-density fit and the
fraction errors: every pixel is ``thickness * (f R1 + (1 - f) R2) + background`` with the
bundled references (edge step 1) and Poisson noise of ``counts`` photons in the open beam."""

from dataclasses import dataclass

import numpy as np

from xanes_stream.io.references import bundled_reference
from xanes_stream.spectra.references import reference_matrix

NI_E0 = 8333.0


@dataclass
class ODPhantom:
    energies: np.ndarray  # (n,) eV
    od: np.ndarray  # (n, ny, nx) float32, measured -ln(I/I0)
    references: list
    fractions: np.ndarray  # (2, ny, nx) true
    thickness: np.ndarray  # (ny, nx) true edge step
    background: np.ndarray  # (n,) true background OD


def narrow_energies(top: float = 20.0) -> np.ndarray:
    """A Ni K-edge scan from 80 eV below E0 to only ``top`` eV above it (no post-edge)."""
    return np.concatenate([np.arange(8250.0, 8320.0, 5.0), np.arange(8320.0, NI_E0 + top + 0.5)])


def od_phantom(
    shape=(48, 48),
    counts: float | None = 20_000.0,
    seed: int = 0,
    energies: np.ndarray | None = None,
    constant: float = 0.4,
    victoreen: float = 1.2,
) -> ODPhantom:
    """The phantom; ``counts=None``: no noise. Fractions ramp 0.1-0.9 along x, thickness
    0.3-1.2 along y; the background is ``constant + victoreen * (E / E0)^-3``."""
    energies = narrow_energies() if energies is None else energies
    refs = [bundled_reference("NiO"), bundled_reference("LiNiO2")]
    basis = reference_matrix(refs, energies, (energies[0], energies[-1]))
    ny, nx = shape
    f = np.broadcast_to(np.linspace(0.1, 0.9, nx)[None, :], shape)
    thickness = np.broadcast_to(np.linspace(0.3, 1.2, ny)[:, None], shape)
    fractions = np.stack([f, 1 - f])
    background = constant + victoreen * (energies / NI_E0) ** -3
    t = (fractions * thickness).reshape(2, -1)
    od = (basis @ t + background[:, None]).reshape(-1, ny, nx)
    if counts is not None:
        rng = np.random.default_rng(seed)
        od = -np.log(np.maximum(rng.poisson(counts * np.exp(-od)), 1) / counts)
    return ODPhantom(energies, od.astype(np.float32), refs, fractions, thickness, background)
