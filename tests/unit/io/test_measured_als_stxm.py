"""The measured ALS 11.0.2.2 Fe L-edge STXM stack 71214098 (Breier et al. 2012; MIT, see its
README) read by the SDF reader, checked against what its README and files state."""

import numpy as np
import pytest
from helpers.measured import measured

from xanes_stream.io.stacks import read_stack
from xanes_stream.io.stxm_i0 import read_xsp
from xanes_stream.spectra.features import edge_energy

NAME = "als-stxm-fe-l-71214098"


@pytest.fixture(scope="module")
def stack():
    return read_stack(measured(NAME, "71214098.hdr"))


def test_axes_as_the_readme_states(stack):
    # README: 150 x 150 px (80 nm), 123 energies 700.0-730.4 eV, raw counts
    assert stack.frames.shape == (123, 150, 150) and stack.energy_units == "eV"
    assert stack.energies[0] == pytest.approx(700.0) and round(stack.energies[-1], 1) == 730.4
    assert np.all(np.diff(stack.energies) > 0)
    assert stack.pixel_size_um == pytest.approx(0.080, abs=1e-6)
    assert stack.dwell_ms == pytest.approx(0.444)  # the header's Dwell
    assert stack.frames.min() >= 0 and stack.frames.max() > 100  # counts, not OD


def test_i0_from_the_xsp_next_to_it(stack):
    energy, counts = read_xsp(measured(NAME, "i0.xsp"))
    assert energy.size == 123 and any("i0.xsp" in note for note in stack.notes)
    np.testing.assert_allclose(stack.i0, np.interp(stack.energies, energy, counts))
    assert stack.i0[0] == pytest.approx(691.58118)  # the file's first line, at 700.0 eV


def test_fe_l3_edge_in_the_mean_optical_density(stack):
    od = -np.log(stack.frames / stack.i0[:, None, None]).mean(axis=(1, 2))
    e0 = float(edge_energy(od[:, None], stack.energies, (704.0, 714.0))[0])
    peak = float(stack.energies[np.argmax(od[stack.energies < 715.0])])
    # Fe L3: the rise at ~707-708 eV, the white line at ~708-710 eV; L2 at ~721 eV
    assert 706.5 < e0 < peak and 707.5 < peak < 710.5
    assert od[stack.energies > 725].mean() > od[stack.energies < 704].mean()  # an edge step


def test_xsp_i0_has_the_shape_of_the_stacks_own_brightest_pixels(stack):
    # the i0.xsp was recorded at another flux or dwell (a constant factor), but its shape
    # along energy must be that of the most transparent pixels of the stack itself
    bright = read_stack(measured(NAME, "71214098.hdr"), i0="bright").i0
    ratio = stack.i0 / bright
    assert np.ptp(ratio) / np.median(ratio) < 0.02
