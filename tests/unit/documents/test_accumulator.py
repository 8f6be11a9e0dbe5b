"""The scan accumulator on its own: frames in with dark and flat, in any arrival order, and the
stack out equals a correction of the same frames made by hand; shifts found against a known
drift."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from xanes_stream.documents.accumulator import ScanAccumulator
from xanes_stream.documents.codec import DocumentError
from xanes_stream.pipeline.settings import load_settings

SHAPE = (64, 80)
ENERGIES = [8330.0, 8345.0, 8350.0, 8360.0, 8400.0]
NO_REGISTRATION = load_settings({"registration": {"method": "none"}})


def _texture(shape, seed):
    """A smooth random optical density, 0.2 to 1.2: something registration can lock on."""
    rng = np.random.default_rng(seed)
    od = ndi.gaussian_filter(rng.normal(size=shape), 3.0)
    od = (od - od.min()) / np.ptp(od)
    return 0.2 + od


@pytest.fixture(scope="module")
def raw():
    """Raw counts: 3 darks, 2 flats, 5 primary frames of a known transmission."""
    rng = np.random.default_rng(1)
    darks = rng.normal(100.0, 3.0, size=(3, *SHAPE))
    beam = 8000.0 * (1 + 0.3 * np.sin(np.linspace(0, 3, SHAPE[1])))[None, :] * np.ones(SHAPE)
    flats = np.stack([darks.mean(axis=0) + beam * g for g in (0.98, 1.02)])
    flats += rng.normal(0, 20.0, size=flats.shape)
    od = np.stack([s * _texture(SHAPE, 2) for s in (0.5, 0.8, 1.2, 1.0, 0.9)])
    frames = darks.mean(axis=0) + beam * np.exp(-od)
    frames += rng.normal(0, 10.0, size=frames.shape)
    return darks.astype(np.float32), flats.astype(np.float32), frames.astype(np.float32)


def _by_hand(darks, flats, frames):
    dark = darks.astype(np.float64).mean(axis=0)
    flat = flats.astype(np.float64).mean(axis=0) - dark
    return -np.log((frames.astype(np.float64) - dark) / flat)


@pytest.mark.parametrize("order", ["calibration_first", "frames_before_flat"])
@pytest.mark.parametrize("expected", [None, 2, 5])  # announced frames: none, too few, exact
def test_stack_is_the_flat_field_corrected_od(raw, order, expected):
    darks, flats, frames = raw
    if order == "frames_before_flat":
        # held frames are corrected when the first flat comes: one flat makes that the mean
        flats = flats[:1]
    acc = ScanAccumulator(NO_REGISTRATION, expected=expected)
    for d in darks:
        acc.add_dark(d)
    if order == "calibration_first":
        for f in flats:
            acc.add_flat(f)
    for e, frame in zip(ENERGIES, frames, strict=True):
        acc.add_frame(e, frame)
    assert acc.received == len(frames)
    if order == "frames_before_flat":  # held raw until the flat comes
        for f in flats:
            acc.add_flat(f)
    stack, energies, shifts = acc.finish()
    assert stack.shape == (5, *SHAPE) and stack.dtype == np.float32
    np.testing.assert_allclose(stack, _by_hand(darks, flats, frames), rtol=2e-5, atol=2e-5)
    np.testing.assert_array_equal(energies, ENERGIES)
    np.testing.assert_array_equal(shifts, np.zeros((5, 2)))


def test_fluorescence_is_divided_by_i0_and_absorbance_kept(raw):
    _, flats, frames = raw
    i0 = [1.0, 2.0, 0.5, 4.0, 1.5]
    fluo = ScanAccumulator(NO_REGISTRATION, mode="fluorescence")
    for f in flats:
        fluo.add_flat(f)
    for e, frame, i in zip(ENERGIES, frames, i0, strict=True):
        fluo.add_frame(e, frame, i0=i)
    stack, _, _ = fluo.finish()
    flat = flats.astype(np.float64).mean(axis=0)  # no dark: the flat is used as it is
    expected = frames / flat / np.array(i0)[:, None, None]
    np.testing.assert_allclose(stack, expected, rtol=2e-5)

    absorbance = ScanAccumulator(NO_REGISTRATION, mode="absorbance", needs_flat=False)
    for e, frame in zip(ENERGIES, frames, strict=True):
        absorbance.add_frame(e, frame)
    stack, _, _ = absorbance.finish()
    np.testing.assert_array_equal(stack, frames)


@pytest.mark.parametrize("reference", ["first", "previous"])
def test_shifts_recover_a_known_drift(reference):
    """Frames drift by a sub-pixel random walk; the accumulator finds -drift (relative to the
    first frame) and its stack is the drift-free optical density."""
    rng = np.random.default_rng(5)
    n = 8
    drift = np.vstack([[0.0, 0.0], np.cumsum(rng.normal(0, 0.6, size=(n - 1, 2)), axis=0)])
    base = _texture(SHAPE, 3)
    scale = np.linspace(0.6, 1.2, n)
    settings = load_settings({"registration": {"reference": reference, "upsample_factor": 50}})
    acc = ScanAccumulator(settings, needs_flat=False)
    for i in range(n):
        moved = ndi.shift(scale[i] * base, drift[i], order=3, mode="nearest")
        acc.add_frame(8330.0 + i, np.exp(-moved).astype(np.float32))
    stack, _, shifts = acc.finish()
    error = np.abs(shifts - (-drift))
    assert np.all(np.abs(drift[1:]).max(axis=1) > 0.05)  # the drift is there to find
    assert np.median(error) < 0.05 and error.max() < 0.2, (shifts, -drift)
    inner = (slice(8, -8), slice(8, -8))  # away from the edges the shift brings in
    for i in range(n):
        residual = stack[i][inner] - scale[i] * base[inner]
        assert np.median(np.abs(residual)) < 0.01 * scale[i]


def test_bad_frames_are_document_errors(raw):
    _, flats, frames = raw
    acc = ScanAccumulator(NO_REGISTRATION)
    acc.add_flat(flats[0])
    with pytest.raises(DocumentError, match="frame of shape"):
        acc.add_frame(8330.0, frames[0][:10])
    with pytest.raises(DocumentError, match="frame energy is nan"):
        acc.add_frame(float("nan"), frames[0])
    with pytest.raises(DocumentError, match="numeric image"):
        acc.add_frame(8330.0, np.array(["a", "b"]))
    with pytest.raises(DocumentError, match="no frames"):
        acc.finish()
