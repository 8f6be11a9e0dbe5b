"""Particles (watershed labels and a table per particle) as a pluggable analysis."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from xanes_stream.imaging.particles import label_particles, particle_table
from xanes_stream.pipeline.products.registry import register
from xanes_stream.pipeline.results import Maps, NormalizedStack, Product
from xanes_stream.pipeline.section import FROM_DOCUMENTS, _Section
from xanes_stream.spectra.references import Reference

NAME = "particles"


class ParticleSettings(_Section):
    """Particle segmentation and the per-particle table."""

    enabled: bool = False
    source: Literal["thickness", "mask"] = Field(
        "thickness", description="segment the thickness map (thresholded) or the quality mask"
    )
    threshold: float | None = Field(None, description="thickness threshold; None: Otsu")
    min_distance: int = Field(5, ge=1, description="px between particle centres (watershed)")
    min_area: int = Field(10, ge=1, description="smaller particles (px) are dropped")
    smooth: float = Field(1.0, ge=0, description="Gaussian sigma (px) on the distance map")
    active_threshold: float = Field(0.5, ge=0, le=1, description="active: mean fraction above")
    active_reference: str | None = Field(
        None,
        description="reference whose fraction decides 'active'; None: the last one",
        json_schema_extra=FROM_DOCUMENTS,
    )


#: The settings section by its usual name.
Settings = ParticleSettings


@register(NAME, ParticleSettings, maps_only=True)
def run(
    normalized: NormalizedStack | None,
    maps: Maps,
    settings: ParticleSettings,
    library: Sequence[Reference],
) -> Product:
    """Particles of a scan.

    Parameters
    ----------
    normalized : NormalizedStack or None
        Unused (particles read the maps only).
    maps : Maps
        The scan's maps.
    settings : ParticleSettings
        This section.
    library : sequence of Reference
        Unused.

    Returns
    -------
    Product
        ``particles/labels`` (image) and ``particles/table`` (table).
    """
    image = maps.mask.astype(bool) if settings.source == "mask" else maps.thickness
    labels = label_particles(
        image,
        threshold=settings.threshold,
        min_distance=settings.min_distance,
        min_area=settings.min_area,
        smooth=settings.smooth,
    )
    table = particle_table(
        labels,
        maps,
        active_threshold=settings.active_threshold,
        active_reference=settings.active_reference,
    )
    return Product(
        images={"particles/labels": labels},
        tables={"particles/table": table},
        metadata={
            "n_particles": int(labels.max(initial=0)),
            "n_active": int(table["active"].sum()),
            "active_reference": settings.active_reference or maps.reference_names[-1],
            "settings": settings.model_dump(mode="json"),
        },
    )
