"""A soft X-ray stack in eV (Li K, 55 eV) through the one orchestration: with its unit given it is
mapped in eV, without it the values cannot tell eV from keV and the error says how to give it."""

import numpy as np
import pytest
from helpers.stxm_files import Truth, write_sdf

from xanes_stream.errors import AnalysisError
from xanes_stream.io.stacks import read_stack
from xanes_stream.pipeline.scan import analyze_scan
from xanes_stream.spectra.references import Reference

E = np.linspace(45.0, 70.0, 61)


def _mu(e0: float, line: float) -> np.ndarray:
    step = 1.0 / (1.0 + np.exp(-(E - e0) / 0.6))
    return step + line * np.exp(-0.5 * ((E - e0 - 1.0) / 0.8) ** 2)


@pytest.fixture(scope="module")
def li_k(tmp_path_factory):
    """Two lithium phases (edges 54.5 and 56.5 eV) mixed left to right, as raw counts in SDF."""
    refs = [Reference("a", E, _mu(54.5, 0.8), True), Reference("b", E, _mu(56.5, 0.2), True)]
    ny, nx = 16, 20
    share = np.broadcast_to(np.linspace(0.0, 1.0, nx), (ny, nx))
    mu = (1 - share)[None] * refs[0].mu[:, None, None] + share[None] * refs[1].mu[:, None, None]
    od = 0.1 + 0.8 * mu  # thickness 0.8, a flat background of 0.1
    od[:, :2, :] = 0.0  # two empty rows: the brightest pixels give I0
    i0 = np.full(E.size, 3000.0)
    truth = Truth(E, od, i0, np.arange(nx) * 0.03, np.arange(ny) * 0.03)
    path = write_sdf(tmp_path_factory.mktemp("lik"), "lik", truth)
    return read_stack(path, i0="bright"), refs, share


def test_li_k_stack_mapped_in_ev(li_k):
    stack, refs, share = li_k
    maps = analyze_scan(
        stack.frames, stack.energies, refs, i0=stack.i0, energy_units=stack.energy_units
    )
    np.testing.assert_allclose(maps.energies, E, atol=5e-4)  # 45-70 eV, not 45-70 keV
    b = maps.fractions[1][2:]
    inside = np.isfinite(b)
    assert inside.mean() > 0.8
    np.testing.assert_allclose(b[inside], share[2:][inside], atol=0.05)


def test_li_k_stack_without_its_unit_is_an_error_with_the_how_to(li_k):
    stack, refs, _ = li_k
    with pytest.raises(AnalysisError, match="could be eV .* --energy-units eV.keV"):
        analyze_scan(stack.frames, stack.energies, refs, i0=stack.i0)
