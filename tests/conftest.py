"""Fixtures of the whole suite: phantom stacks with known chemistry, made once per process
(each xdist worker makes its own)."""

import numpy as np
import pytest

from xanes_stream.sim.phantom import make_phantom


@pytest.fixture(scope="session")
def phantom2():
    """Two references (NiO, LiNiO2), 20,000 counts, sub-pixel drift."""
    return make_phantom((128, 128), references=("NiO", "LiNiO2"), drift=0.5, seed=11)


@pytest.fixture(scope="session")
def phantom3():
    """Three references (NiO, LiNiO2, Ni metal), 20,000 counts, sub-pixel drift."""
    return make_phantom((128, 128), references=("NiO", "LiNiO2", "Ni"), drift=0.5, seed=12)


@pytest.fixture(scope="session")
def small_phantom():
    """A quick 64 x 64 scan of three NiO/LiNiO2 particles, drift-free."""
    return make_phantom((64, 64), references=("NiO", "LiNiO2"), n_particles=3, drift=0, seed=7)


@pytest.fixture(scope="session")
def od_scan():
    """A drift-free optical-density stack (as the service keeps it) of a three-reference
    64 x 64 phantom, and its maps: (phantom, od, maps)."""
    from xanes_stream import analyze

    p = make_phantom((64, 64), references=("NiO", "LiNiO2", "Ni"), drift=0.0, seed=21)
    od = -np.log(p.transmission)
    settings = {"registration": {"method": "none"}}
    maps = analyze(od, p.energies, p.references, mode="absorbance", settings=settings)
    return p, od, maps
