"""K-means clustering of normalized spectra (elbow or explicit k) as a pluggable analysis."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from .._base import _Section
from ..maps import Maps
from ..products import NormalizedStack, Product
from ..spectra.clustering import cluster_spectra
from ..spectra.references import Reference
from ._common import region

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
