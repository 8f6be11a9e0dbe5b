"""An L2,3-edge optical-density stack with a known truth, like a soft X-ray STXM's Fe L-edge:
two species whose L3 white lines sit 1.7 eV apart, the L2 edge 13 eV above L3, and no
post-edge free of other edges before the scan ends. Every pixel is ``thickness * (f R1 +
(1 - f) R2) + background`` (constant + E^-3) with Poisson noise."""

from dataclasses import dataclass

import numpy as np

from xanes_stream.spectra.references import Reference

L3, L2 = 707.0, 720.0


def _species(energies: np.ndarray, white_line: float) -> np.ndarray:
    """Edge steps 2/3 (L3) and 1/3 (L2) of total 1, each with a white line."""

    def step(at):
        return 0.5 + np.arctan((energies - at) / 0.4) / np.pi

    def line(at, width=0.6):
        return 1.0 / (1.0 + ((energies - at) / width) ** 2)

    return (
        2 / 3 * step(L3)
        + 1 / 3 * step(L2)
        + 3.0 * line(white_line)
        + 1.2 * line(white_line + L2 - L3 + 0.5, 0.9)
    )


@dataclass
class LEdgePhantom:
    energies: np.ndarray
    od: np.ndarray  # (n, ny, nx) float32
    references: list
    fractions: np.ndarray  # (2, ny, nx)
    thickness: np.ndarray  # (ny, nx)


def l_edge_phantom(shape=(40, 48), counts=5_000.0, seed=0) -> LEdgePhantom:
    """Fractions ramp 0.1-0.9 along x, thickness 0.2-1.0 along y, on a matrix background."""
    energies = np.concatenate([np.arange(700.0, 705.0, 0.5), np.arange(705.0, 730.01, 0.25)])
    refs = [
        Reference("Fe(II)", energies, _species(energies, 708.0), normalized=True),
        Reference("Fe(III)", energies, _species(energies, 709.7), normalized=True),
    ]
    ny, nx = shape
    f = np.broadcast_to(np.linspace(0.1, 0.9, nx)[None, :], shape)
    thickness = np.broadcast_to(np.linspace(0.2, 1.0, ny)[:, None], shape)
    fractions = np.stack([f, 1 - f])
    basis = np.stack([r.mu for r in refs], axis=1)
    background = 0.2 + 0.5 * (energies / L3) ** -3
    od = (basis @ (fractions * thickness).reshape(2, -1) + background[:, None]).reshape(-1, ny, nx)
    rng = np.random.default_rng(seed)
    od = -np.log(np.maximum(rng.poisson(counts * np.exp(-od)), 1) / counts)
    return LEdgePhantom(energies, od.astype(np.float32), refs, fractions, thickness)
