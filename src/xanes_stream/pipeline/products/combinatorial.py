"""Combinatorial fitting over a reference library as a pluggable analysis."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from xanes_stream.errors import AnalysisError
from xanes_stream.pipeline.products._common import region
from xanes_stream.pipeline.products.registry import register
from xanes_stream.pipeline.results import Maps, NormalizedStack, Product
from xanes_stream.pipeline.section import _Section
from xanes_stream.spectra.combinatorial import combinatorial_fit
from xanes_stream.spectra.decomposition import estimate_components, scree
from xanes_stream.spectra.references import Reference

NAME = "combinatorial"


class Settings(_Section):
    """Every set of 1..max_size library entries ranked on the masked region; best set per pixel."""

    enabled: bool = False
    max_size: int | None = Field(
        None, ge=1, le=10, description="largest set; None: the scree's number of components"
    )
    binning: int | None = Field(None, ge=2, description="rank on b x b binned spectra")
    noise: float | None = Field(None, gt=0, description="spectrum noise for chi2; None: estimate")
    min_ratio: float = Field(0.035, gt=0, lt=1, description="scree floor when max_size is None")


@register(NAME, Settings)
def run(
    normalized: NormalizedStack,
    maps: Maps | None,
    settings: Settings,
    library: Sequence[Reference],
) -> Product:
    """Combinatorial fitting of a scan's normalized spectra over the library.

    Parameters
    ----------
    normalized : NormalizedStack
        The scan's edge-normalized spectra.
    maps : Maps or None
        Its maps (their quality mask is the region), if any.
    settings : Settings
        This section.
    library : sequence of Reference
        The entries to combine (at least one).

    Returns
    -------
    Product
        ``combinatorial/fractions``, ``/r_factor``, ``/spectrum``, ``/fit`` and ``/ranking``.
    """
    if not library:
        raise AnalysisError("combinatorial fitting needs a reference library")
    mask = region(normalized, maps)
    max_size = settings.max_size
    if max_size is None:
        singular = scree(normalized, mask)
        n_pixels = int(mask.sum()) if mask is not None else normalized.edge_step.size
        shape = (normalized.energies.size, min(n_pixels, 20_000))
        max_size = estimate_components(singular, shape, min_ratio=settings.min_ratio)
    max_size = min(max_size, len(library))
    fit = combinatorial_fit(
        normalized, library, max_size, mask, binning=settings.binning, noise=settings.noise
    )
    return Product(
        images={"combinatorial/fractions": fit.fractions, "combinatorial/r_factor": fit.r_factor},
        spectra={"combinatorial/spectrum": fit.spectrum, "combinatorial/fit": fit.fit},
        tables={"combinatorial/ranking": fit.ranking},
        energies=fit.energies,
        metadata={**fit.metadata, "max_size_from": "settings" if settings.max_size else "scree"},
    )
