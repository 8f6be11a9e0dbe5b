"""ML maps: trained on synthetic mixtures, checked against the fit on pixels it never saw."""

import numpy as np
import pytest
import skops.io as sio
from helpers.normalized_phantom import normalized_stack

from xanes_stream import analyze
from xanes_stream.errors import ModelError
from xanes_stream.io.models import load_model, save_model
from xanes_stream.io.plotting import parity_plot
from xanes_stream.pipeline.products.ml import MLSettings, run
from xanes_stream.spectra.learn import evaluate, predict_maps, train, training_set

NAMES = ["NiO", "LiNiO2"]


@pytest.fixture(scope="module")
def scan(small_phantom):
    p = small_phantom
    maps = analyze(
        p.frames,
        p.energies,
        p.references,
        dark=p.dark,
        flat=p.flat,
        # ML against the fit where the fit is precise: the thick pixels of Otsu's mask
        settings={"registration": {"method": "none"}, "mask": {"method": "otsu"}},
    )
    return p, maps, normalized_stack(p)


@pytest.fixture(scope="module")
def trained(scan):
    p, _, normalized = scan
    x, y = training_set(p.references, normalized.energies, 3600, 0.03, 0)
    model = train(x[:3000], y[:3000], energies=normalized.energies, targets=NAMES)
    return model, x[3000:], y[3000:]


def test_training_set_is_labelled_mixtures(scan):
    p, _, normalized = scan
    x, y = training_set(p.references, normalized.energies, 500, 0.0, 1, shift=0.0, scale=(1, 1))
    assert x.shape == (500, normalized.energies.size) and y.shape == (500, 2)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-6)
    assert (y > 0.99).any(axis=1).mean() > 0.05  # some pure spectra
    # noise-free, unscaled: least squares on the references gives back the labels
    unit = np.stack([x[y[:, i] > 0.999][0] for i in range(2)], axis=1)
    recovered = np.linalg.lstsq(unit, x.T.astype(np.float64), rcond=None)[0].T
    np.testing.assert_allclose(recovered, y, atol=1e-4)


def test_ml_map_matches_fit_on_unseen_pixels(scan, trained):
    """The stated accuracy: median |ML - fit| < 0.05, 90th percentile < 0.12 in the mask."""
    _, maps, normalized = scan
    model = trained[0]
    predicted = predict_maps(
        model, normalized.spectra, maps.mask, energies=normalized.energies, simplex=True
    )
    assert predicted.shape == (2, 64, 64)
    assert np.isnan(predicted[:, ~maps.mask]).all()
    difference = np.abs(predicted[:, maps.mask] - maps.fractions[:, maps.mask])
    assert np.median(difference) < 0.05
    assert np.percentile(difference, 90) < 0.12
    np.testing.assert_allclose(predicted[:, maps.mask].sum(axis=0), 1.0, atol=1e-5)


def test_evaluate_and_parity_plot(trained, tmp_path):
    model, x, y = trained
    metrics = evaluate(model, x, y)
    assert metrics["r2"] > 0.98
    assert metrics["mae"] < 0.04
    assert metrics["mse"] < metrics["mae"]
    assert set(metrics["per_target"]) == set(NAMES)
    path = parity_plot(y, model.predict(x), tmp_path / "parity.png", NAMES)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_forest_with_pca(scan):
    p, maps, normalized = scan
    x, y = training_set(p.references, normalized.energies, 1500, 0.03, 3)
    model = train(x, y, "forest", "pca", energies=normalized.energies, targets=NAMES)
    predicted = predict_maps(model, normalized.spectra, maps.mask, simplex=True)
    difference = np.abs(predicted[:, maps.mask] - maps.fractions[:, maps.mask])
    assert np.median(difference) < 0.06


def test_edge_energy_model(scan):
    p, maps, normalized = scan
    x, y = training_set(p.references, normalized.energies, 1500, 0.03, 4, target="edge_energy")
    assert y.shape == (1500, 1) and 8335 < y.min() < y.max() < 8355
    model = train(x, y, energies=normalized.energies, targets=["edge_energy"])
    predicted = predict_maps(model, normalized.spectra, maps.mask)[0]
    error = np.abs(predicted - maps.edge_energy)[maps.mask]
    assert np.median(error) < 0.5  # eV


def test_skops_round_trip_and_trust(trained, tmp_path, scan):
    model, x, _ = trained
    path = save_model(model, tmp_path / "model.skops")
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.xanes_targets_ == NAMES
    np.testing.assert_array_equal(loaded.xanes_energies_, scan[2].energies)

    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    # a function reference could call anything at load: refused unless trusted by name
    odd = Pipeline([("f", FunctionTransformer(np.linalg.norm)), ("m", model.steps[-1][1])])
    sio.dump(odd, tmp_path / "odd.skops")
    with pytest.raises(ModelError, match="not trusted: numpy.linalg.norm"):
        load_model(tmp_path / "odd.skops")
    unknown = sio.get_untrusted_types(file=tmp_path / "odd.skops")
    assert load_model(tmp_path / "odd.skops", trusted=unknown) is not None
    (tmp_path / "junk.skops").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="not a skops model"):
        load_model(tmp_path / "junk.skops")
    with pytest.raises(ModelError, match="no model file"):
        load_model(tmp_path / "missing.skops")


def test_spectra_on_other_energies_are_interpolated(scan, trained):
    _, maps, normalized = scan
    model = trained[0]
    every_other = normalized.spectra[::2]
    with pytest.raises(ModelError, match="expects"):
        predict_maps(model, every_other, maps.mask)
    coarse = predict_maps(
        model, every_other, maps.mask, energies=normalized.energies[::2], simplex=True
    )
    fine = predict_maps(model, normalized.spectra, maps.mask, simplex=True)
    assert np.median(np.abs(coarse - fine)[:, maps.mask]) < 0.05


def test_run_adapter_trains_for_the_scan(scan):
    p, maps, normalized = scan
    product = run(normalized, maps, MLSettings(enabled=True, n_train=2000), p.references)
    fractions = product.images["ml/fractions"]
    assert fractions.shape == (2, 64, 64)
    assert product.metadata["held_out"]["r2"] > 0.95
    assert product.metadata["mean_abs_difference_from_fit"] < 0.06
    assert product.metadata["targets"] == NAMES


def test_run_adapter_loads_a_saved_model(scan, trained, tmp_path):
    _, maps, normalized = scan
    path = save_model(trained[0], tmp_path / "m.skops")
    settings = MLSettings(enabled=True, model_path=str(path))
    product = run(normalized, maps, settings, [], load_model=load_model)
    assert product.metadata["model"] == str(path)
    assert product.metadata["mean_abs_difference_from_fit"] < 0.06


def test_non_finite_pixels_stay_nan(scan, trained):
    normalized = scan[2]
    spectra = normalized.spectra.copy()
    spectra[5, 10:12, :] = np.nan
    predicted = predict_maps(trained[0], spectra, chunk_pixels=1000)
    assert np.isnan(predicted[:, 10:12]).all()
    assert np.isfinite(predicted[:, :10]).all() and np.isfinite(predicted[:, 12:]).all()
    whole = predict_maps(trained[0], normalized.spectra)
    np.testing.assert_allclose(predicted[:, 20:], whole[:, 20:], rtol=1e-4, atol=1e-5)
