"""Registration against known drifts."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from xanes_stream.imaging.registration import (
    FrameRegistrar,
    PhaseCorrelator,
    RegistrationError,
    register_stack,
    shift_frame,
)


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(3)
    image = ndi.gaussian_filter(rng.random((192, 160)), 3).astype(np.float32)
    drift = np.cumsum(rng.normal(0, 0.8, size=(12, 2)), axis=0)
    drift[0] = 0
    frames = np.stack([ndi.shift(image, d, order=3, mode="nearest") for d in drift]) + rng.normal(
        0, 0.002, size=(12, 192, 160)
    ).astype(np.float32)
    return image, drift, frames.astype(np.float32)


@pytest.mark.parametrize(
    ("shift", "tolerance"),
    # a shift of 10% of the frame drags replicated edges into the taper: precision drops
    [((3.3, -2.7), 0.06), ((-0.25, 0.6), 0.06), ((-17.45, 9.1), 0.15)],
)
def test_phase_correlation_subpixel(scene, shift, tolerance):
    image = scene[0]
    moved = ndi.shift(image, shift, order=3, mode="nearest")
    measured = PhaseCorrelator(image, upsample_factor=20).measure(moved)
    np.testing.assert_allclose(measured, -np.array(shift), atol=tolerance)


@pytest.mark.parametrize("reference", ["first", "previous", 4, "last"])
def test_stack_shifts_recover_drift(scene, reference):
    _, drift, frames = scene
    _, shifts = register_stack(frames, reference=reference)
    index = {"first": 0, "previous": 0, "last": len(drift) - 1}.get(reference, reference)
    np.testing.assert_allclose(shifts, -(drift - drift[index]), atol=0.15)


def test_incremental_equals_batch(scene):
    _, _, frames = scene
    registrar = FrameRegistrar(reference=3)
    ready = []
    for frame in frames:
        ready += registrar.add(frame)
    assert [r.index for r in ready] == list(range(len(frames)))  # held frames released in order
    aligned, shifts = register_stack(frames, reference=3)
    np.testing.assert_allclose(np.array([r.shift for r in ready]), shifts)
    np.testing.assert_allclose(np.stack([r.aligned for r in ready]), aligned)


def test_aligned_frames_match_reference(scene):
    frames = scene[2]
    aligned, _ = register_stack(frames, reference="first")
    inner = (slice(20, -20), slice(20, -20))
    before = np.abs(frames[-1] - frames[0])[inner].mean()
    after = np.abs(aligned[-1] - aligned[0])[inner].mean()
    assert after < 0.25 * before


def test_roi(scene):
    _, drift, frames = scene
    settings = dict(reference="first", roi=(40, 150, 30, 130))
    _, shifts = register_stack(frames, **settings)
    np.testing.assert_allclose(shifts, -drift, atol=0.2)
    with pytest.raises(RegistrationError, match="outside"):
        register_stack(frames, roi=(0, 500, 0, 10))


@pytest.mark.parametrize("transform", ["translation", "rigid"])
def test_stackreg(scene, transform):
    _, drift, frames = scene
    settings = dict(method="stackreg", transform=transform, reference="first")
    _, shifts = register_stack(frames[:5], **settings)
    np.testing.assert_allclose(shifts, -drift[:5], atol=0.2)


def test_stackreg_rigid_recovers_rotation(scene):
    image = scene[0]
    rotated = ndi.rotate(image, 2.0, reshape=False, order=3, mode="nearest")
    settings = dict(method="stackreg", transform="rigid", reference="first")
    aligned, _ = register_stack(np.stack([image, rotated]), **settings)
    inner = (slice(30, -30), slice(30, -30))
    assert np.abs(aligned[1] - image)[inner].mean() < 0.3 * np.abs(rotated - image)[inner].mean()


def test_shift_frame_integer_and_fill():
    frame = np.arange(20, dtype=np.float32).reshape(4, 5)
    out = shift_frame(frame, (1, -2), fill=np.nan)
    np.testing.assert_array_equal(out[1:, :3], frame[:3, 2:])
    assert np.isnan(out[0]).all() and np.isnan(out[:, 3:]).all()
