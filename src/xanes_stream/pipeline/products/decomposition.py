"""Decomposition (SVD scree, PCA/NMF/ICA/SVD/FA) as a pluggable analysis."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from xanes_stream.pipeline.products._common import region
from xanes_stream.pipeline.results import Maps, NormalizedStack, Product
from xanes_stream.pipeline.section import _Section
from xanes_stream.spectra.decomposition import decompose, match_components
from xanes_stream.spectra.references import Reference

NAME = "decomposition"


class Settings(_Section):
    """Reference-free decomposition of the normalized spectra of the masked pixels."""

    enabled: bool = False
    method: Literal["pca", "nmf", "ica", "svd", "fa"] = "nmf"
    n_components: int | None = Field(None, ge=1, le=50, description="None: from the scree")
    min_ratio: float = Field(0.035, gt=0, lt=1, description="scree floor relative to the first")
    max_pixels: int = Field(20_000, ge=100, description="pixels the model is fitted on")
    seed: int = 0


def run(
    normalized: NormalizedStack,
    maps: Maps | None,
    settings: Settings,
    library: Sequence[Reference],
) -> Product:
    """``<method>/maps``, ``<method>/components``, ``<method>/scree`` and, with a library,
    ``<method>/matches`` (Pearson r of each component spectrum with each entry, ranked)."""
    product = decompose(
        normalized,
        settings.method,
        settings.n_components,
        region(normalized, maps),
        max_pixels=settings.max_pixels,
        min_ratio=settings.min_ratio,
        seed=settings.seed,
    )
    if library:
        components = product.spectra[f"{settings.method}/components"]
        product.tables[f"{settings.method}/matches"] = match_components(
            components, normalized.energies, library
        )
    return product
