"""The one correction of raw frames (imaging/correct.py), each mode against values by hand."""

import numpy as np
import pytest

from xanes_stream.errors import AnalysisError
from xanes_stream.imaging.correct import correct

# two frames of one pixel each: I = 60, 35; dark 10, flat 110; i0 relative 1.0, 0.5
FRAMES = np.array([[[60.0]], [[35.0]]])
DARK = np.array([[10.0]])
FLAT = np.array([[110.0]])
I0 = np.array([1.0, 0.5])


def test_transmission_divides_by_flat_and_i0_then_takes_minus_log():
    out = correct(FRAMES, "transmission", dark=DARK, flat=FLAT, i0=I0)
    # (60 - 10) / (110 - 10) / 1 = 0.5; (35 - 10) / 100 / 0.5 = 0.5
    np.testing.assert_allclose(out[:, 0, 0], [np.log(2.0), np.log(2.0)], rtol=1e-6)
    assert out.dtype == np.float32


def test_fluorescence_divides_by_i0_without_log():
    out = correct(FRAMES, "fluorescence", dark=DARK, i0=I0)
    np.testing.assert_allclose(out[:, 0, 0], [50.0, 50.0])


def test_absorbance_is_used_as_is_and_ignores_i0():
    out = correct(FRAMES, "absorbance", i0=I0)
    np.testing.assert_array_equal(out, FRAMES.astype(np.float32))


def test_in_place_on_a_block_and_a_scalar_i0_for_one_frame():
    block = FRAMES.astype(np.float32)
    out = correct(block, "transmission", dark=DARK, flat=FLAT, out=block)
    assert out is block
    np.testing.assert_allclose(block[:, 0, 0], [np.log(2.0), np.log(4.0)], rtol=1e-6)
    frame = np.full((2, 3), 35.0, dtype=np.float32)
    slot = np.empty((2, 3), dtype=np.float32)
    correct(frame, "fluorescence", dark=DARK, flat=FLAT, i0=0.5, out=slot)
    np.testing.assert_allclose(slot, 0.5)


def test_zero_flat_gives_non_finite_not_an_error():
    out = correct(FRAMES, "transmission", dark=DARK, flat=DARK)
    assert not np.isfinite(out).any()


def test_unknown_mode():
    with pytest.raises(AnalysisError, match="mode must be"):
        correct(FRAMES, "emission")
