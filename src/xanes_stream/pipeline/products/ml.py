"""Machine-learning fraction maps (seed 003) as a pluggable analysis: a model trained for the
scan on synthetic mixtures of its references (:mod:`xanes_stream.spectra.learn`), or a saved
one, applied to every pixel.

A saved model is read by the ``load_model`` the caller passes (e.g.
:func:`xanes_stream.io.models.load_model`): reading files belongs to the layers above the
pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from pydantic import Field

from xanes_stream.errors import AnalysisError, ModelError
from xanes_stream.pipeline.products._common import region
from xanes_stream.pipeline.products.registry import register
from xanes_stream.pipeline.results import Maps, NormalizedStack, Product
from xanes_stream.pipeline.section import OPERATOR_ONLY, _Section
from xanes_stream.spectra.learn import evaluate, predict_maps, train, training_set
from xanes_stream.spectra.references import Reference

NAME = "ml"
#: Reads a model file: ``load_model(path, trusted)`` -> a model with ``predict``.
ModelLoader = Callable[[str, Sequence[str]], object]


class MLSettings(_Section):
    """Machine-learning fraction maps: a saved model, or one trained for the scan."""

    enabled: bool = False
    model_path: str | None = Field(
        None,
        description="a skops file (the service reads it only inside its model roots); None: "
        "train on the scan",
        json_schema_extra=OPERATOR_ONLY,
    )
    trusted: tuple[str, ...] = Field(
        (), description="extra types to trust in model_path", json_schema_extra=OPERATOR_ONLY
    )
    model: Literal["mlp", "forest"] = "mlp"
    reduce: Literal["standard", "pca"] = "standard"
    n_components: int = Field(10, ge=1, le=200, description="PCA components")
    n_train: int = Field(3000, ge=100, le=1_000_000, description="synthetic training spectra")
    noise: float = Field(0.03, ge=0, description="largest noise (normalized units) in training")
    seed: int = 0


#: The settings section by its usual name.
Settings = MLSettings


def _fit_references(maps: Maps, library: Sequence[Reference]) -> list[Reference]:
    by_name = {r.name: r for r in library}
    if all(name in by_name for name in maps.reference_names):
        return [by_name[name] for name in maps.reference_names]
    return list(library)


@register(NAME, MLSettings, loads_models=True)
def run(
    normalized: NormalizedStack,
    maps: Maps,
    settings: MLSettings,
    library: Sequence[Reference],
    *,
    load_model: ModelLoader | None = None,
) -> Product:
    """ML fraction maps of a scan.

    Parameters
    ----------
    normalized : NormalizedStack
        The scan's edge-normalized spectra.
    maps : Maps
        Its maps (the fitted references name the targets).
    settings : MLSettings
        This section.
    library : sequence of Reference
        Where the fitted references are looked up for training.
    load_model : callable, optional
        Reads ``settings.model_path`` (e.g. :func:`xanes_stream.io.models.load_model`);
        needed only when a model path is set.

    Returns
    -------
    Product
        ``ml/fractions`` (k, ny, nx), or ``ml/<target>`` for a loaded model of other targets.
        Metadata: held-out metrics of a model trained here, and the mean absolute difference
        from the fitted fractions in the mask.
    """
    mask = region(normalized, maps)  # the maps' mask: where the fit has fractions to compare
    metadata: dict = {"settings": settings.model_dump(mode="json")}
    if settings.model_path:
        if load_model is None:
            raise ModelError(
                "a model file needs a reader: pass load_model=xanes_stream.io.models.load_model"
            )
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
