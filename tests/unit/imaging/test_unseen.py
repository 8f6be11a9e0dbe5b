"""Which pixels registration moved in from outside the field: the share of frames in which
:func:`shift_frame` with ``fill`` fills each pixel."""

import numpy as np

from xanes_stream.imaging.shift import shift_frame, unseen_fraction


def test_unseen_fraction_is_what_shift_frame_fills():
    rng = np.random.default_rng(3)
    shifts = rng.normal(0.0, 2.5, (9, 2))
    shifts[0] = (0.0, 0.0)
    shifts[1] = (2.0, -3.0)  # whole pixels too
    ones = np.ones((20, 30), dtype=np.float32)
    filled = np.stack([shift_frame(ones, s, fill=np.nan) for s in shifts])
    np.testing.assert_allclose(unseen_fraction(shifts, ones.shape), np.isnan(filled).mean(axis=0))


def test_no_shift_leaves_every_pixel_seen():
    assert not unseen_fraction(None, (4, 5)).any()
    assert not unseen_fraction(np.zeros((3, 2)), (4, 5)).any()
