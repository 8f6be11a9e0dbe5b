"""K-means clustering of normalized spectra (elbow or explicit k) as a pluggable analysis."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from xanes_stream.pipeline.products._common import region
from xanes_stream.pipeline.results import Maps, NormalizedStack, Product
from xanes_stream.pipeline.section import _Section
from xanes_stream.spectra.clustering import cluster_spectra
from xanes_stream.spectra.references import Reference

NAME = "clustering"


class Settings(_Section):
    """K-means on the normalized spectra of the masked pixels."""

    enabled: bool = False
    k: int | None = Field(None, ge=1, le=50, description="None: the elbow of 1..k_max")
    k_max: int = Field(8, ge=2, le=50)
    max_pixels: int = Field(20_000, ge=100, description="pixels k-means is fitted on")
    seed: int = 0


def run(
    normalized: NormalizedStack,
    maps: Maps | None,
    settings: Settings,
    library: Sequence[Reference],
) -> Product:
    """``clusters/labels``, ``clusters/spectra`` and ``clusters/elbow`` (the library is unused)."""
    return cluster_spectra(
        normalized,
        settings.k,
        settings.k_max,
        region(normalized, maps),
        max_pixels=settings.max_pixels,
        seed=settings.seed,
    )
