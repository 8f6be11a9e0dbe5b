"""Denoising in analyze(): PCA on a noisy three-reference phantom lowers the fraction error,
spike removal gives back the clean phantom's maps, and both off change nothing."""

import numpy as np
import pytest
from helpers import core, fraction_errors

from xanes_stream import AnalysisError, analyze
from xanes_stream.errors import SettingsError
from xanes_stream.pipeline.settings import load_settings
from xanes_stream.sim.phantom import make_phantom

NO_REGISTRATION = {"registration": {"method": "none"}}


@pytest.fixture(scope="module")
def noisy3():
    """Three references (NiO, LiNiO2, Ni), 2,000 counts per pixel (Poisson), no drift."""
    return make_phantom(
        (128, 128), references=("NiO", "LiNiO2", "Ni"), counts=2000, drift=0, seed=31
    )


def _analyze(p, frames=None, **denoise):
    settings = dict(NO_REGISTRATION, denoise=denoise) if denoise else NO_REGISTRATION
    frames = p.frames if frames is None else frames
    return analyze(frames, p.energies, p.references, dark=p.dark, flat=p.flat, settings=settings)


@pytest.fixture(scope="module")
def plain(noisy3):
    return _analyze(noisy3)


def test_pca_denoising_lowers_the_fraction_error(noisy3, plain):
    """Measured at this seed: median error 0.072 without, 0.040 with "auto" (k = 4: thickness
    and the matrix's slope, two fractions); the issue asks for at least 1.5x."""
    denoised = _analyze(noisy3, components="auto")
    inside = core(noisy3)
    before = np.median(fraction_errors(plain, noisy3, inside))
    after = np.median(fraction_errors(denoised, noisy3, inside))
    assert before > 1.5 * after
    pca = denoised.metadata["denoise"]["pca"]
    assert pca["requested"] == "auto"
    assert pca["components"] == 4
    assert 0.5 < pca["explained_variance"] <= 1.0
    assert len(pca["singular_values"]) == noisy3.energies.size
    assert any("principal components" in note for note in denoised.metadata["notes"])


def test_off_is_the_default_and_changes_nothing(noisy3, plain):
    off = _analyze(noisy3, components=None, spikes=False)
    for name in ("fractions", "thickness", "error", "r_factor", "chi2_red", "edge_energy"):
        np.testing.assert_array_equal(getattr(off, name), getattr(plain, name))
    np.testing.assert_array_equal(off.mask, plain.mask)
    np.testing.assert_array_equal(off.clusters, plain.clusters)
    assert "denoise" not in off.metadata and "denoise" not in plain.metadata


def test_spikes_are_removed_before_the_fit():
    p = make_phantom(
        (96, 96), references=("NiO", "LiNiO2"), n_particles=4, drift=0, seed=32, counts=2000
    )
    rng = np.random.default_rng(4)
    planted = np.zeros(p.frames.shape, dtype=bool)
    inside = core(p)
    ys, xs = np.nonzero(inside)
    for frame in planted:  # 3 hot pixels a frame, in the particles, where the fit is read
        pick = rng.choice(ys.size, 3, replace=False)
        frame[ys[pick], xs[pick]] = True
    spiked = p.frames.copy()
    spiked[planted] *= 50  # hot pixels: 50 times the signal
    clean = _analyze(p)
    kept = _analyze(p, spiked)
    removed = _analyze(p, spiked, spikes=True)
    hit = planted.any(axis=0)
    difference = np.abs(removed.fractions - clean.fractions)[:, hit]
    assert np.isfinite(difference).all()
    assert np.median(difference) < 0.005
    # against the truth, the pixels hit are about as good as the clean phantom's (whose error
    # is the fit's noise at 2,000 counts): a value replaced by its neighbours' median moves
    # by the image's gradient there, which is within that noise but for the steepest
    truth = p.fractions[:, hit]
    error_clean = np.abs(clean.fractions[:, hit] - truth)
    error_removed = np.abs(removed.fractions[:, hit] - truth)
    assert np.median(error_removed) < 1.2 * np.median(error_clean)
    assert np.percentile(error_removed, 95) < 1.2 * np.percentile(error_clean, 95)
    assert np.nanmedian(np.abs(kept.fractions - clean.fractions)[:, hit]) > 0.05  # it matters
    spikes = removed.metadata["denoise"]["spikes"]
    replaced = np.array(spikes["replaced"])
    assert np.all(replaced >= planted.sum(axis=(1, 2)))
    assert spikes["threshold"] == 8.0
    assert any("spike" in note for note in removed.metadata["notes"])


def test_denoise_settings_are_checked():
    assert load_settings(None).denoise.components is None
    assert load_settings({"denoise": {"components": "auto"}}).denoise.components == "auto"
    with pytest.raises(SettingsError, match="denoise.components"):
        load_settings({"denoise": {"components": 0}})
    with pytest.raises(SettingsError, match="spike_threshold"):
        load_settings({"denoise": {"spike_threshold": -1}})


def test_more_components_than_energies_is_refused(small_phantom):
    p = small_phantom
    with pytest.raises(AnalysisError, match="components"):
        _analyze(p, components=p.energies.size + 5)
