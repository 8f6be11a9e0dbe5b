"""Machine-learning maps (seed 003): a scikit-learn pipeline from normalized spectra to fractions.

Train on mixtures of the references with known fractions (or E0), made to look like real
pixels after edge normalization: a random edge-step error, a small energy misalignment and
noise of random level. Evaluate it (MSE, MAE, R^2, parity plot), keep it in skops format (no
pickle: a file from elsewhere loads only if every type in it is trusted), and apply it to
every pixel in chunks.

Accuracy (what tests/test_ml.py checks): trained on 3000 synthetic mixtures of NiO and
LiNiO2 at the scan's energies (noise up to 0.03), the default MLP's fraction maps of a
20,000-count phantom agree with the per-pixel least-squares fit within a median absolute
difference of 0.05 and a 90th percentile of 0.12 on the masked pixels, none of which it saw
in training (measured: 0.037 and 0.106; a regression trained on noisy spectra shrinks
towards the mean mixture where the fit does not). Held-out synthetic spectra: R^2 > 0.98.
An E0 model agrees with the derivative E0 map within a median of 0.5 eV.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field
from threadpoolctl import threadpool_limits

from xanes_stream.errors import AnalysisError, XanesStreamError
from xanes_stream.pipeline.results import Maps, NormalizedStack, Product
from xanes_stream.pipeline.section import _Section
from xanes_stream.spectra.features import edge_energy
from xanes_stream.spectra.references import Reference, unit_step

#: Types a model made by :func:`train` holds beyond skops' default trusted set.
TRUSTED_TYPES = (
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.tree._tree.Tree",
)
Target = Literal["fractions", "edge_energy"]


class ModelError(XanesStreamError):
    """A model that cannot be trained, loaded or applied as asked."""


class MLSettings(_Section):
    """Machine-learning fraction maps: a saved model, or one trained for the scan."""

    enabled: bool = False
    model_path: str | None = Field(None, description="a skops file; None: train on the scan")
    trusted: tuple[str, ...] = Field((), description="extra types to trust in model_path")
    model: Literal["mlp", "forest"] = "mlp"
    reduce: Literal["standard", "pca"] = "standard"
    n_components: int = Field(10, ge=1, le=200, description="PCA components")
    n_train: int = Field(3000, ge=100, le=1_000_000, description="synthetic training spectra")
    noise: float = Field(0.03, ge=0, description="largest noise (normalized units) in training")
    seed: int = 0


def _unit_references(references: Sequence[Reference], energies: np.ndarray) -> list[Reference]:
    """The references with unit edge step; raises if one does not cover ``energies``."""
    columns = []
    for ref in references:
        unit = unit_step(ref)
        lo, hi = unit.energy[0], unit.energy[-1]
        if lo > energies.min() + 0.5 or hi < energies.max() - 0.5:
            raise ModelError(
                f"reference {ref.name!r} covers {lo:.1f}-{hi:.1f} eV, not the scan's "
                f"{energies.min():.1f}-{energies.max():.1f} eV"
            )
        columns.append(unit)
    return columns


def training_set(
    references: Sequence[Reference],
    energies: np.ndarray,
    n: int,
    noise: float = 0.03,
    rng: np.random.Generator | int | None = None,
    *,
    target: Target = "fractions",
    scale: tuple[float, float] = (0.85, 1.15),
    shift: float = 0.3,
    pure_share: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """Labelled spectra (X (n, n_energy) float32, y (n, k) or (n, 1) float32).

    Fractions are drawn uniformly on the simplex (``pure_share`` of the spectra pure), the
    mixture is multiplied by an edge-step error uniform in ``scale``, shifted in energy by
    N(0, ``shift``) eV, and given Gaussian noise whose level is log-uniform between
    ``noise``/10 and ``noise`` (thick and thin pixels). ``target="edge_energy"`` labels each
    spectrum with the E0 of its noise-free mixture (derivative maximum) instead.
    """
    rng = np.random.default_rng(rng)
    energies = np.asarray(energies, dtype=np.float64)
    if not references:
        raise ModelError("a training set needs at least one reference")
    if n < 1:
        raise ModelError(f"n must be at least 1, got {n}")
    units = _unit_references(references, energies)
    k = len(units)
    fractions = rng.dirichlet(np.ones(k), size=n)
    pure = rng.random(n) < pure_share
    fractions[pure] = np.eye(k)[rng.integers(0, k, int(pure.sum()))]
    shifted = energies[None, :] - rng.normal(0.0, shift, size=(n, 1)) if shift else energies
    clean = np.zeros((n, energies.size))
    for f, unit in zip(fractions.T, units, strict=True):
        clean += f[:, None] * np.interp(shifted, unit.energy, unit.mu)
    levels = noise * 10 ** rng.uniform(-1.0, 0.0, size=(n, 1)) if noise > 0 else 0.0
    x = clean * rng.uniform(*scale, size=(n, 1)) + levels * rng.standard_normal(clean.shape)
    if target == "fractions":
        y = fractions
    elif target == "edge_energy":
        slopes = [np.gradient(np.interp(energies, u.energy, u.mu), energies) for u in units]
        centres = [energies[np.argmax(slope)] for slope in slopes]
        window = (min(centres) - 20.0, max(centres) + 20.0)
        y = edge_energy(clean.T.astype(np.float32), energies, window)[:, None]
    else:
        raise ModelError(f"target must be 'fractions' or 'edge_energy', not {target!r}")
    return x.astype(np.float32), y.astype(np.float32)


def train(
    x: np.ndarray,
    y: np.ndarray,
    model: Literal["mlp", "forest"] = "mlp",
    reduce: Literal["standard", "pca"] = "standard",
    *,
    n_components: int = 10,
    seed: int = 0,
    energies: np.ndarray | None = None,
    targets: Sequence[str] | None = None,
):
    """A fitted ``Pipeline([reduce, model])``: StandardScaler or whitened PCA, then an MLP
    (one hidden layer of 32, L-BFGS, at most 500 iterations, on standardized targets) or a
    random forest (100 trees). ``energies`` and ``targets`` are kept on the pipeline
    (``xanes_energies_``, ``xanes_targets_``) so a saved model knows what it expects and
    predicts."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.decomposition import PCA
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(x)
    y = np.asarray(y)
    y = y[:, None] if y.ndim == 1 else y
    if x.ndim != 2 or y.shape[0] != x.shape[0]:
        raise ModelError(f"X must be (n, n_energy) and y (n, m); got {x.shape} and {y.shape}")
    if reduce == "standard":
        first = StandardScaler()
    elif reduce == "pca":
        first = PCA(n_components=min(n_components, *x.shape), whiten=True, random_state=seed)
    else:
        raise ModelError(f"reduce must be 'standard' or 'pca', not {reduce!r}")
    if model == "mlp":
        mlp = MLPRegressor(
            hidden_layer_sizes=(32,), solver="lbfgs", alpha=1e-3, max_iter=500, random_state=seed
        )
        second = TransformedTargetRegressor(regressor=mlp, transformer=StandardScaler())
    elif model == "forest":
        second = RandomForestRegressor(n_estimators=100, min_samples_leaf=2, random_state=seed)
    else:
        raise ModelError(f"model must be 'mlp' or 'forest', not {model!r}")
    pipeline = Pipeline([("reduce", first), ("model", second)])
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        # L-BFGS stops at max_iter by design (a light regularization); not a failure here
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipeline.fit(x, y if y.shape[1] > 1 else y[:, 0])
    if model == "mlp":
        # float32 weights: predicting 10^6 float32 spectra is then a single-precision product
        # (several times faster), far more precise than normalized pixel spectra anyway
        fitted = pipeline.named_steps["model"].regressor_
        fitted.coefs_ = [w.astype(np.float32) for w in fitted.coefs_]
        fitted.intercepts_ = [b.astype(np.float32) for b in fitted.intercepts_]
    if energies is not None:
        pipeline.xanes_energies_ = np.asarray(energies, dtype=np.float64)
    if targets is not None:
        pipeline.xanes_targets_ = [str(t) for t in targets]
    return pipeline


def _predict(model, x: np.ndarray) -> np.ndarray:
    out = np.asarray(model.predict(x))
    return out[:, None] if out.ndim == 1 else out


def evaluate(model, x: np.ndarray, y: np.ndarray) -> dict:
    """MSE, MAE and R^2 of the model on (X, y), over all targets and per target."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    y = np.asarray(y)
    y = y[:, None] if y.ndim == 1 else y
    predicted = _predict(model, x)
    names = getattr(model, "xanes_targets_", None) or [str(i) for i in range(y.shape[1])]
    return {
        "mse": float(mean_squared_error(y, predicted)),
        "mae": float(mean_absolute_error(y, predicted)),
        "r2": float(r2_score(y, predicted)),
        "n": int(y.shape[0]),
        "per_target": {
            name: {
                "mse": float(mean_squared_error(y[:, i], predicted[:, i])),
                "mae": float(mean_absolute_error(y[:, i], predicted[:, i])),
                "r2": float(r2_score(y[:, i], predicted[:, i])),
            }
            for i, name in enumerate(names)
        },
    }


def parity_plot(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    path: str | Path,
    names: Sequence[str] | None = None,
    *,
    max_points: int = 5000,
) -> Path:
    """A PNG of predicted against true values, one panel per target, with MAE and R^2."""
    from matplotlib.figure import Figure
    from sklearn.metrics import mean_absolute_error, r2_score

    y_true = np.asarray(y_true).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred).reshape(len(y_pred), -1)
    if y_true.shape != y_pred.shape:
        raise ModelError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ")
    m = y_true.shape[1]
    names = list(names) if names is not None else [f"target {i}" for i in range(m)]
    keep = np.random.default_rng(0).permutation(len(y_true))[:max_points]
    figure = Figure(figsize=(3.6 * m, 3.6), layout="constrained")
    for i, axes in enumerate(np.atleast_1d(figure.subplots(1, m))):
        t, p = y_true[keep, i], y_pred[keep, i]
        lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
        axes.plot([lo, hi], [lo, hi], color="0.5", lw=1)
        axes.scatter(t, p, s=3, alpha=0.4, linewidths=0)
        mae = mean_absolute_error(y_true[:, i], y_pred[:, i])
        r2 = r2_score(y_true[:, i], y_pred[:, i])
        axes.set(xlabel=f"true {names[i]}", ylabel="predicted", aspect="equal")
        axes.set_title(f"{names[i]}: MAE {mae:.3g}, R² {r2:.3f}", fontsize=9)
    path = Path(path)
    figure.savefig(path, dpi=100)
    return path


def save_model(model, path: str | Path) -> Path:
    """Write the model in skops format (no pickle)."""
    import skops.io as sio

    path = Path(path)
    sio.dump(model, path)
    return path


def load_model(path: str | Path, trusted: Sequence[str] = ()):
    """Read a skops model. Besides skops' own trusted types, only :data:`TRUSTED_TYPES` and
    the type names in ``trusted`` may occur; anything else raises :class:`ModelError` naming
    them, before any of the file is turned into objects."""
    import skops.io as sio

    path = Path(path)
    try:
        unknown = sio.get_untrusted_types(file=path)
    except FileNotFoundError:
        raise ModelError(f"no model file {path}") from None
    except Exception as exc:  # zip or schema errors: not a skops file
        raise ModelError(f"{path} is not a skops model file: {exc}") from None
    allowed = set(TRUSTED_TYPES) | set(trusted)
    refused = sorted(set(unknown) - allowed)
    if refused:
        raise ModelError(
            f"model {path} holds types that are not trusted: {', '.join(refused)}; pass them "
            "in trusted=... only if you know where the file comes from"
        )
    model = sio.load(path, trusted=list(unknown))
    if not hasattr(model, "predict"):
        raise ModelError(f"{path} holds a {type(model).__name__}, not a model with predict()")
    return model


def _interpolation_matrix(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(len(target), len(source)) linear interpolation from ``source`` to ``target`` energies."""
    if target.min() < source.min() - 1e-6 or target.max() > source.max() + 1e-6:
        raise ModelError(
            f"the model needs {target.min():.1f}-{target.max():.1f} eV; the spectra cover "
            f"{source.min():.1f}-{source.max():.1f} eV"
        )
    return np.stack([np.interp(target, source, row) for row in np.eye(source.size)], axis=1)


def predict_maps(
    model,
    spectra: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    energies: np.ndarray | None = None,
    simplex: bool = False,
    chunk_pixels: int = 65_536,
) -> np.ndarray:
    """The model applied to every pixel: (m, ny, nx) float32, NaN outside ``mask`` and at
    pixels with non-finite spectra.

    ``spectra`` are normalized (n_energy, ny, nx). When the model knows its energies
    (``xanes_energies_``) and ``energies`` are given, the spectra are interpolated onto them.
    ``simplex`` clips predictions at 0 and divides by their sum (fractions).
    """
    spectra = np.asarray(spectra)
    if spectra.ndim != 3:
        raise ModelError(f"spectra must be (n_energy, ny, nx), got shape {spectra.shape}")
    n, ny, nx = spectra.shape
    flat = spectra.reshape(n, -1)
    wanted = getattr(model, "xanes_energies_", None)
    matrix = None
    if wanted is not None and energies is not None:
        energies = np.asarray(energies, dtype=np.float64)
        if energies.size != n:
            raise ModelError(f"{energies.size} energies for {n} spectrum points")
        if wanted.size != n or not np.allclose(wanted, energies):
            matrix = _interpolation_matrix(energies, wanted).astype(np.float32)
    expected = wanted.size if wanted is not None else getattr(model, "n_features_in_", n)
    if matrix is None and expected != n:
        raise ModelError(f"the model expects {expected} energies, the spectra have {n}")
    use = np.ones(ny * nx, dtype=bool) if mask is None else np.asarray(mask, bool).ravel()
    if use.size != ny * nx:
        raise ModelError(f"mask {np.shape(mask)} does not match the spectra's {(ny, nx)}")
    pixels = np.flatnonzero(use)
    out = None
    for start in range(0, pixels.size, chunk_pixels):
        index = pixels[start : start + chunk_pixels]
        if index[-1] - index[0] + 1 == index.size:  # a run of pixels: a view, no gather
            index = slice(int(index[0]), int(index[-1]) + 1)
        x = flat[:, index]
        x = (matrix @ x if matrix is not None else x).astype(np.float32, copy=False)
        finite = np.isfinite(x).all(axis=0)
        values = None
        # x.T is (pixels, energies) in Fortran order: scikit-learn multiplies it as it is,
        # which is much cheaper than transposing the chunk in memory
        if finite.all():
            values = _predict(model, x.T)
        elif finite.any():
            values = _predict(model, x[:, finite].T)
        if values is None:
            continue
        if out is None:
            out = np.full((values.shape[1], ny * nx), np.nan, dtype=np.float32)
        part = np.full((values.shape[1], x.shape[1]), np.nan, dtype=np.float32)
        part[:, finite] = values.T
        out[:, index] = part
    if out is None:
        m = len(getattr(model, "xanes_targets_", [])) or 1
        out = np.full((m, ny * nx), np.nan, dtype=np.float32)
    if simplex:
        np.clip(out, 0.0, None, out=out)
        with np.errstate(invalid="ignore", divide="ignore"):
            out /= out.sum(axis=0, keepdims=True)
    return out.reshape(-1, ny, nx)


def _fit_references(maps: Maps, library: Sequence[Reference]) -> list[Reference]:
    by_name = {r.name: r for r in library}
    if all(name in by_name for name in maps.reference_names):
        return [by_name[name] for name in maps.reference_names]
    return list(library)


def run(
    normalized: NormalizedStack,
    maps: Maps,
    settings: MLSettings,
    library: Sequence[Reference],
) -> Product:
    """ML fraction maps of a scan: ``ml/fractions`` (k, ny, nx), or ``ml/<target>`` for a
    loaded model of other targets. Metadata: held-out metrics of a model trained here, and
    the mean absolute difference from the fitted fractions in the mask."""
    mask = normalized.mask if normalized.mask is not None else maps.mask.astype(bool)
    metadata: dict = {"settings": settings.model_dump(mode="json")}
    if settings.model_path:
        model = load_model(settings.model_path, settings.trusted)
        metadata["model"] = settings.model_path
    else:
        refs = _fit_references(maps, library)
        x, y = training_set(
            refs, normalized.energies, settings.n_train, settings.noise, settings.seed
        )
        split = int(0.8 * len(x))
        model = train(
            x[:split],
            y[:split],
            settings.model,
            settings.reduce,
            n_components=settings.n_components,
            seed=settings.seed,
            energies=normalized.energies,
            targets=[r.name for r in refs],
        )
        metadata["held_out"] = evaluate(model, x[split:], y[split:])
    targets = list(getattr(model, "xanes_targets_", []) or [])
    is_fractions = set(targets) == set(maps.reference_names) and len(targets) > 0
    if not targets:
        raise ModelError("the model does not name its targets (train(..., targets=...))")
    predicted = predict_maps(
        model, normalized.spectra, mask, energies=normalized.energies, simplex=is_fractions
    )
    metadata["targets"] = targets
    if is_fractions:
        order = [targets.index(name) for name in maps.reference_names]
        predicted = predicted[order]
        inside = mask & np.all(np.isfinite(maps.fractions), axis=0)
        if inside.any():
            difference = np.abs(predicted[:, inside] - maps.fractions[:, inside])
            metadata["mean_abs_difference_from_fit"] = float(np.nanmean(difference))
        images = {"ml/fractions": predicted}
    else:
        images = {f"ml/{name}": predicted[i] for i, name in enumerate(targets)}
    if predicted.shape[1:] != maps.thickness.shape:
        raise AnalysisError("normalized spectra and maps have different image shapes")
    return Product(images=images, metadata=metadata)
