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
    acc = ScanAccumulator(NO_REGISTRATION, expected=expected)
    for d in darks:
        acc.add_dark(d)
    if order == "calibration_first":
        for f in flats:
            acc.add_flat(f)
    for e, frame in zip(ENERGIES, frames, strict=True):
        acc.add_frame(e, frame)
    assert acc.received == len(frames)
    if order == "frames_before_flat":  # held raw until the stop: every flat at the end counts
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


# --- FXI's xanes_scan2: several exposures per event, a flat at every energy, I0 ------------

FXI_SHAPE = (48, 64)
FXI_ENERGIES = np.array([8330.0, 8340.0, 8345.0, 8350.0, 8355.0, 8365.0, 8380.0, 8400.0])
EXPOSURES = 5
OPEN_BEAM = 20_000.0  # counts per pixel and exposure in the open beam at the first energy
DARK_LEVEL, READ_NOISE = 100.0, 3.0


def _fxi_scan(seed=3, beam_slope=0.04, profile_change=0.1, flat_decay=0.05):
    """Raw events of a scan with known truth: dark exposures, then per energy a primary and a
    flat event of EXPOSURES Poisson exposures each, and their I0s.

    The beam's intensity changes with energy (``beam_slope`` per energy), and so does its
    profile (``profile_change``: the flat-field pattern moves, as a TXM's does), and between
    the primary and the flat the beam decays by up to ``flat_decay`` (what I0 corrects).
    """
    rng = np.random.default_rng(seed)
    n = FXI_ENERGIES.size
    od = np.stack([s * _texture(FXI_SHAPE, 4) for s in np.linspace(0.4, 1.2, n)])
    x = np.arange(FXI_SHAPE[1])[None, :]
    beam = np.empty((n, *FXI_SHAPE))
    for e in range(n):
        shape = 1 + profile_change * np.sin(x / 9.0 + 0.7 * e)
        beam[e] = OPEN_BEAM * (1 + beam_slope * e) * shape * np.ones(FXI_SHAPE)
    flat_gain = 1 - flat_decay * rng.uniform(0, 1, n)  # beam at the flat over the primary's

    def exposures(mean):
        counts = rng.poisson(mean, size=(EXPOSURES, *mean.shape)).astype(np.float64)
        counts += rng.normal(DARK_LEVEL, READ_NOISE, size=counts.shape)
        return counts.astype(np.float32)

    dark = exposures(np.zeros(FXI_SHAPE))
    primary = [exposures(beam[e] * np.exp(-od[e])) for e in range(n)]
    flats = [exposures(beam[e] * flat_gain[e]) for e in range(n)]
    i0_primary = 1e5 * (1 + beam_slope * np.arange(n))  # ic3 counts: the beam's intensity
    i0_flat = i0_primary * flat_gain
    # each pixel's true standard error of -ln T with EXPOSURES exposures (Poisson + read)
    frame_counts = beam * np.exp(-od)
    flat_counts = beam * flat_gain[:, None, None]
    var = (frame_counts + READ_NOISE**2) / frame_counts**2 + (flat_counts + READ_NOISE**2) / (
        flat_counts**2
    )
    sigma = np.sqrt(var / EXPOSURES)
    return {
        "od": od,
        "dark": dark,
        "primary": primary,
        "flats": flats,
        "i0_primary": i0_primary,
        "i0_flat": i0_flat,
        "sigma": sigma,
        "flat_gain": flat_gain,
    }


@pytest.fixture(scope="module")
def fxi():
    return _fxi_scan()


def _run_fxi(scan, *, flats="per_energy", combine="mean", i0=True, flat_energy=True, skip=()):
    """Feed the events in xanes_scan2's order: dark, then primary and flat at each energy."""
    acc = ScanAccumulator(NO_REGISTRATION, flats=flats, combine=combine)
    acc.add_dark(scan["dark"], exposures=True)
    for e, energy in enumerate(FXI_ENERGIES):
        acc.add_frame(
            energy, scan["primary"][e], scan["i0_primary"][e] if i0 else None, exposures=True
        )
        if e in skip:
            continue
        acc.add_flat(
            scan["flats"][e],
            energy=energy if flat_energy else None,
            i0=scan["i0_flat"][e] if i0 else None,
            exposures=True,
        )
    return acc


def _bias_and_scatter(stack, od, sigma):
    """Per energy: the mean error in units of the true sigma, and the errors' scatter in
    those units."""
    z = (stack - od) / sigma
    return z.mean(axis=(1, 2)), z.std(axis=(1, 2))


def test_per_energy_flats_give_the_true_od_and_its_noise(fxi):
    acc = _run_fxi(fxi)
    stack, energies, _ = acc.finish()
    np.testing.assert_array_equal(energies, FXI_ENERGIES)
    bias, scatter = _bias_and_scatter(stack, fxi["od"], fxi["sigma"])
    # unbiased (the mean of 3072 pixels: 0.1 sigma is 5 standard errors of it) and as noisy
    # as Poisson counting says
    assert np.all(np.abs(bias) < 0.1), bias
    assert np.all(np.abs(scatter - 1) < 0.1), scatter
    # the noise each energy reports is the true standard error of its OD
    truth = np.median(fxi["sigma"].reshape(FXI_ENERGIES.size, -1), axis=1)
    np.testing.assert_allclose(acc.noise, truth, rtol=0.1)
    assert acc.exposure_counts == {
        "dark": EXPOSURES,
        "flat": EXPOSURES * FXI_ENERGIES.size,
        "primary": EXPOSURES * FXI_ENERGIES.size,
    }
    assert acc.mean_flat_frames == 0


def test_per_energy_flat_beats_the_mean_flat_when_the_beam_changes(fxi):
    """The beam's profile moves with energy: one mean flat leaves its pattern in the OD."""
    per_energy, _, _ = _run_fxi(fxi).finish()
    mean_flat, _, _ = _run_fxi(fxi, flats="mean").finish()
    od, sigma = fxi["od"], fxi["sigma"]
    _, scatter_per_energy = _bias_and_scatter(per_energy, od, sigma)
    _, scatter_mean = _bias_and_scatter(mean_flat, od, sigma)
    assert np.all(scatter_per_energy < 1.1)
    assert np.median(scatter_mean) > 5  # the beam's pattern, many sigma over the noise


def test_flats_matched_by_order_without_energy(fxi):
    by_energy, _, _ = _run_fxi(fxi).finish()
    by_order, _, _ = _run_fxi(fxi, flat_energy=False).finish()
    np.testing.assert_array_equal(by_order, by_energy)


def test_flats_before_their_frames_are_matched_by_energy(fxi):
    """Flats first, in reverse order: each still corrects the frame of its energy."""
    reference, _, _ = _run_fxi(fxi).finish()
    acc = ScanAccumulator(NO_REGISTRATION, flats="per_energy")
    acc.add_dark(fxi["dark"], exposures=True)
    for e in reversed(range(FXI_ENERGIES.size)):
        acc.add_flat(
            fxi["flats"][e], energy=FXI_ENERGIES[e] + 0.2, i0=fxi["i0_flat"][e], exposures=True
        )
    for e, energy in enumerate(FXI_ENERGIES):
        acc.add_frame(energy, fxi["primary"][e], fxi["i0_primary"][e], exposures=True)
    stack, _, _ = acc.finish()
    np.testing.assert_allclose(stack, reference, rtol=1e-6, atol=1e-6)


def test_i0_ratio_of_frame_and_flat_is_applied(fxi):
    """The beam decays between primary and flat: I0 over the flat's I0 corrects it; without
    the I0s the OD is off by exactly the decay."""
    with_i0, _, _ = _run_fxi(fxi).finish()
    without, _, _ = _run_fxi(fxi, i0=False).finish()
    od = fxi["od"]
    error_with = (with_i0 - od).mean(axis=(1, 2))
    error_without = (without - od).mean(axis=(1, 2))
    assert np.all(np.abs(error_with) < 1e-3)
    np.testing.assert_allclose(error_without, np.log(fxi["flat_gain"]), atol=1e-3)
    assert np.ptp(np.log(fxi["flat_gain"])) > 0.01  # there was a decay to correct


def test_a_frame_without_its_flat_uses_the_mean_flat_and_is_counted():
    scan = _fxi_scan(seed=8, profile_change=0.0)  # the mean flat is right up to the beam's I0
    acc = _run_fxi(scan, skip=(3,))
    stack, energies, _ = acc.finish()
    assert acc.mean_flat_frames == 1
    assert acc.exposure_counts["flat"] == EXPOSURES * (FXI_ENERGIES.size - 1)
    # the frame without a flat is corrected last, at the stop: the energies say where it is
    np.testing.assert_array_equal(energies, np.r_[np.delete(FXI_ENERGIES, 3), FXI_ENERGIES[3]])
    order = np.argsort(energies)
    bias, scatter = _bias_and_scatter(stack[order], scan["od"], scan["sigma"])
    assert np.all(np.abs(bias) < 0.15) and np.all(scatter < 1.1), (bias, scatter)
    assert np.isfinite(acc.noise).all()


def test_median_combine_is_robust_to_a_zinger(fxi):
    scan = dict(fxi, primary=[p.copy() for p in fxi["primary"]])
    zinger = (slice(10, 14), slice(20, 24))
    scan["primary"][4][1][zinger] = 60_000.0  # a cosmic ray in one exposure
    od = fxi["od"][4][zinger]
    mean, _, _ = _run_fxi(scan, combine="mean").finish()
    median_acc = _run_fxi(scan, combine="median")
    median, _, _ = median_acc.finish()
    assert np.all(mean[4][zinger] < od - 0.2)  # a bright zinger: the mean sees less absorption
    assert np.all(np.abs(median[4][zinger] - od) < 5 * fxi["sigma"][4][zinger])
    # the median's noise, sqrt(pi/2) times the mean's (n=5: truly ~1.2)
    truth = np.median(fxi["sigma"].reshape(FXI_ENERGIES.size, -1), axis=1)
    np.testing.assert_allclose(median_acc.noise / truth, 1.2, rtol=0.2)


def test_one_exposure_has_unknown_noise(fxi):
    acc = ScanAccumulator(NO_REGISTRATION, flats="per_energy")
    acc.add_dark(fxi["dark"][0])
    for e, energy in enumerate(FXI_ENERGIES[:3]):
        acc.add_frame(energy, fxi["primary"][e][:1], exposures=True)
        acc.add_flat(fxi["flats"][e][0], energy=energy)
    stack, _, _ = acc.finish()
    assert stack.shape == (3, *FXI_SHAPE)
    assert np.isnan(acc.noise).all() and acc.noise.shape == (3,)


def test_flat_equal_to_dark_is_refused_with_the_reason(fxi):
    acc = ScanAccumulator(NO_REGISTRATION, flats="per_energy")
    acc.add_dark(fxi["dark"], exposures=True)
    acc.add_frame(8330.0, fxi["primary"][0], exposures=True)
    shutter_closed = fxi["dark"] + np.float32(0.5)
    with pytest.raises(DocumentError, match="flat frames are identical to dark frames"):
        acc.add_flat(shutter_closed, energy=8330.0, exposures=True)
    swapped = ScanAccumulator(NO_REGISTRATION)
    swapped.add_dark(fxi["flats"][0], exposures=True)
    swapped.add_flat(fxi["dark"], exposures=True)
    with pytest.raises(DocumentError, match="darker than the dark"):
        swapped.add_frame(8330.0, fxi["primary"][0], exposures=True)


@pytest.mark.parametrize("bad", [0.0, -3.0, float("nan")])
def test_no_beam_at_an_energy_is_refused_with_the_reason(fxi, bad):
    acc = ScanAccumulator(NO_REGISTRATION, flats="per_energy")
    acc.add_dark(fxi["dark"], exposures=True)
    with pytest.raises(DocumentError, match="I0 is .* at 8350.0 eV: was the beam off"):
        acc.add_frame(8350.0, fxi["primary"][3], bad, exposures=True)
    with pytest.raises(DocumentError, match="flat's I0 is .* at 8350.0 eV: was the beam off"):
        acc.add_flat(fxi["flats"][3], energy=8350.0, i0=bad, exposures=True)
