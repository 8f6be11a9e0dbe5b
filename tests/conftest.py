"""Shared fixtures: phantom stacks with known chemistry, made once per session."""

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


def core(phantom, min_thickness=0.3):
    """Pixels well inside particles, where fractions are meaningful."""
    return phantom.particles & (phantom.thickness > min_thickness * phantom.thickness.max())


def fraction_errors(maps, phantom, inside):
    names = [r.name for r in phantom.references]
    fitted = np.stack([maps.fraction(n) for n in names])
    return np.abs(fitted - phantom.fractions)[:, inside]
