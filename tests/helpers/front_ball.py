"""A ball whose reaction front is a sphere: NiO (Ni2+) in the core turning into LiNiO2 (Ni3+)
across a spherical shell, so the edge energy rises through the shell."""

import numpy as np

from xanes_stream.io.references import bundled_reference
from xanes_stream.sim.phantom import ni_edge_energies, unit_step_spectrum

N = 36
CENTRE = np.array([17.6, 17.3, 17.8])
BALL = 16.0  # radius of the particle (voxels)
FRONT = 8.0  # radius of the reaction front
WIDTH = 1.2  # width of the front (voxels)


def front_volume(seed: int = 3, noise: float = 0.004):
    """(n_energy, N, N, N) optical density, the LiNiO2 fraction and the distance to the centre."""
    energies = ni_edge_energies(2.0)
    refs = [bundled_reference("NiO"), bundled_reference("LiNiO2")]
    z, y, x = np.mgrid[:N, :N, :N].astype(float)
    r = np.sqrt((z - CENTRE[0]) ** 2 + (y - CENTRE[1]) ** 2 + (x - CENTRE[2]) ** 2)
    ball = r < BALL
    oxidized = 0.5 * (1 + np.tanh((r - FRONT) / WIDTH))  # reduced core, oxidized rim
    fractions = np.stack([1 - oxidized, oxidized]) * ball
    unit = np.stack([unit_step_spectrum(ref, energies) for ref in refs], axis=1)  # (n, 2)
    scale = (energies / energies[0]) ** -2.8
    od = 0.05 * scale[:, None, None, None] * (1 + 0.5 * ball)[None]
    od = od + np.einsum("ek,kzyx->ezyx", unit, fractions)
    od += np.random.default_rng(seed).normal(0, noise, od.shape)
    return od.astype(np.float32), energies, refs, r, ball
