"""Reaction fronts (edge-energy contour masks) as a pluggable analysis."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from xanes_stream.pipeline.products.registry import register
from xanes_stream.pipeline.results import Maps, NormalizedStack, Product
from xanes_stream.pipeline.section import Window, _Section
from xanes_stream.spectra.fronts import edge_energy_contours, spanning_windows
from xanes_stream.spectra.references import Reference

NAME = "fronts"


class FrontSettings(_Section):
    """Edge-energy contour masks."""

    enabled: bool = False
    windows: tuple[Window, ...] = Field(
        (), description="absolute E0 windows (eV); empty: n_windows equal windows spanning E0"
    )
    n_windows: int = Field(3, ge=1, le=50, description="windows when none are given")
    percentiles: Window = Field(
        (5.0, 95.0), description="E0 span (percentiles in the mask) split into n_windows"
    )
    use_mask: bool = Field(True, description="only pixels in the quality mask")


#: The settings section by its usual name.
Settings = FrontSettings


@register(NAME, FrontSettings, maps_only=True)
def run(
    normalized: NormalizedStack | None,
    maps: Maps,
    settings: FrontSettings,
    library: Sequence[Reference],
) -> Product:
    """Edge-energy contour masks of a scan.

    Parameters
    ----------
    normalized : NormalizedStack or None
        Unused (fronts read the maps only).
    maps : Maps
        The scan's maps.
    settings : FrontSettings
        This section.
    library : sequence of Reference
        Unused.

    Returns
    -------
    Product
        ``fronts/contours`` (k, ny, nx).
    """
    mask = maps.mask.astype(bool) if settings.use_mask else None
    windows = list(settings.windows) or spanning_windows(
        maps.edge_energy, mask, settings.n_windows, settings.percentiles
    )
    contours = edge_energy_contours(maps.edge_energy, windows, mask)
    return Product(
        images={"fronts/contours": contours},
        metadata={
            "windows": [list(w) for w in windows],
            "pixels": contours.sum(axis=(1, 2)).tolist(),
            "settings": settings.model_dump(mode="json"),
        },
    )
