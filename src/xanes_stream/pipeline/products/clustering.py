"""K-means clustering of normalized spectra (elbow or explicit k) as a pluggable analysis."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from xanes_stream.pipeline.products._common import fit_region, region
from xanes_stream.pipeline.products.registry import register
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


@register(NAME, Settings)
def run(
    normalized: NormalizedStack,
    maps: Maps | None,
    settings: Settings,
    library: Sequence[Reference],
) -> Product:
    """K-means clusters of a scan's normalized spectra.

    Parameters
    ----------
    normalized : NormalizedStack
        The scan's edge-normalized spectra.
    maps : Maps or None
        Its maps (their quality mask is the region), if any.
    settings : Settings
        This section.
    library : sequence of Reference
        Unused.

    Returns
    -------
    Product
        ``clusters/labels``, ``clusters/spectra`` and the table ``clusters/elbow``.
    """
    clusters = cluster_spectra(
        normalized,
        settings.k,
        settings.k_max,
        region(normalized, maps),
        fit_on=fit_region(normalized, maps),
        max_pixels=settings.max_pixels,
        seed=settings.seed,
    )
    return Product(
        images={"clusters/labels": clusters.labels},
        spectra={"clusters/spectra": clusters.spectra},
        tables={"clusters/elbow": clusters.elbow},
        energies=clusters.energies,
        metadata=clusters.metadata,
    )
