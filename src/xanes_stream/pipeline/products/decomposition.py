"""Decomposition (SVD scree, PCA/NMF/ICA/SVD/FA) as a pluggable analysis."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from xanes_stream.pipeline.products._common import fit_region
from xanes_stream.pipeline.products.registry import register
from xanes_stream.pipeline.results import Maps, NormalizedStack, Product
from xanes_stream.pipeline.section import _Section
from xanes_stream.spectra.decomposition import Decomposition, decompose, match_components
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


def as_product(result: Decomposition) -> Product:
    """The product of a decomposition: ``<method>/maps``, ``<method>/components`` and the
    table ``<method>/scree``.

    Parameters
    ----------
    result : Decomposition
        From :func:`~xanes_stream.spectra.decomposition.decompose`.

    Returns
    -------
    Product
    """
    method = result.method
    return Product(
        images={f"{method}/maps": result.maps},
        spectra={f"{method}/components": result.components},
        tables={f"{method}/scree": result.scree},
        energies=result.energies,
        metadata=result.metadata,
    )


@register(NAME, Settings)
def run(
    normalized: NormalizedStack,
    maps: Maps | None,
    settings: Settings,
    library: Sequence[Reference],
) -> Product:
    """Decomposition of a scan's normalized spectra.

    Parameters
    ----------
    normalized : NormalizedStack
        The scan's edge-normalized spectra.
    maps : Maps or None
        Its maps (their quality mask is the region), if any.
    settings : Settings
        This section.
    library : sequence of Reference
        Entries to match the components to (may be empty).

    Returns
    -------
    Product
        ``<method>/maps``, ``<method>/components``, ``<method>/scree`` and, with a library,
        ``<method>/matches`` (Pearson r of each component spectrum with each entry, ranked).
    """
    result = decompose(
        normalized,
        settings.method,
        settings.n_components,
        fit_region(normalized, maps),  # fitted there, every pixel mapped
        max_pixels=settings.max_pixels,
        min_ratio=settings.min_ratio,
        seed=settings.seed,
    )
    product = as_product(result)
    if library:
        product.tables[f"{settings.method}/matches"] = match_components(
            result.components, normalized.energies, library
        )
    return product
