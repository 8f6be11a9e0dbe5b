"""Phantoms built for one question: particles of pure kinds, and volumes of stacked phantoms."""

import numpy as np

from xanes_stream.sim.phantom import make_phantom


def kinds_phantom(references, shape=(96, 96), n_particles=6, seed=5):
    """Particles of pure chemistry: particle ``i`` is all reference ``labels % k`` (k references).

    Returns the phantom and the kind of each pixel (labels % k; 0 outside particles too).
    """
    k = len(references)
    p0 = make_phantom(shape, references=references, n_particles=n_particles, drift=0, seed=seed)
    kind = p0.labels % k
    fractions = np.stack([np.where(p0.particles, kind == j, 0) for j in range(k)]).astype(float)
    p = make_phantom(
        shape,
        references=references,
        n_particles=n_particles,
        drift=0,
        seed=seed,
        fractions_override=fractions,
    )
    return p, kind


#: the slices of :func:`volume_od`
VOLUME_SHAPE = (48, 48)


def volume_od(nz: int, empty: tuple[int, ...] = (), noise: bool = True):
    """(n_energy, nz, ny, nx) optical density of stacked 2-D phantoms, and the phantoms."""
    phantoms = [
        make_phantom(
            VOLUME_SHAPE,
            references=("NiO", "LiNiO2"),
            n_particles=0 if z in empty else 3,
            drift=0,
            seed=100 + z,
            noise=noise,
        )
        for z in range(nz)
    ]
    od = np.stack([-np.log(p.transmission) for p in phantoms], axis=1)
    return od.astype(np.float32), phantoms
