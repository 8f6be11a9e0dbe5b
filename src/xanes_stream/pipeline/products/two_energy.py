"""Two-energy maps (seed 002) as a pluggable analysis on a full scan's normalized stack.

For a scan of only a few energies (which cannot be edge-normalized), call
:func:`xanes_stream.spectra.two_energy.two_energy_maps` on its optical density directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields

import numpy as np
from pydantic import Field

from xanes_stream.errors import AnalysisError
from xanes_stream.pipeline.products._common import by_name, region
from xanes_stream.pipeline.products.registry import register
from xanes_stream.pipeline.results import Maps, NormalizedStack, Product
from xanes_stream.pipeline.section import FROM_DOCUMENTS, _Section
from xanes_stream.spectra.references import Reference
from xanes_stream.spectra.two_energy import two_energy_maps

NAME = "two_energy"


class Settings(_Section):
    """Which two references and energies, the pre-edge and the segmentation threshold X."""

    enabled: bool = False
    reference_a: str | None = Field(
        None, description="None: the first fitted reference", json_schema_extra=FROM_DOCUMENTS
    )
    reference_b: str | None = Field(
        None, description="None: the second fitted reference", json_schema_extra=FROM_DOCUMENTS
    )
    e1: float | None = Field(None, description="eV; None: chosen for least noise")
    e2: float | None = Field(None, description="eV; None: chosen for least noise")
    pre_edge: list[float] | None = Field(None, description="eV; None: below both references")
    threshold: float = Field(30.0, gt=0, lt=50, description="segmentation threshold X (%)")
    misregistration: float = Field(
        0.1,
        ge=0,
        le=5,
        description="px, 1 sigma: alignment error of registered frames, in "
        "the stated fraction error",
    )


@register(NAME, Settings)
def run(
    normalized: NormalizedStack,
    maps: Maps | None,
    settings: Settings,
    library: Sequence[Reference],
) -> Product:
    """Two-energy maps of the stack's OD above its pre-edge line.

    Parameters
    ----------
    normalized : NormalizedStack
        The scan's edge-normalized spectra.
    maps : Maps or None
        Its maps (fitted references are the default pair; shifts say if it was registered).
    settings : Settings
        This section.
    library : sequence of Reference
        Where the two references are looked up.

    Returns
    -------
    Product
        The ``two_energy/...`` images.
    """
    defaults = list(maps.reference_names) if maps is not None else [r.name for r in library]
    od = normalized.spectra * normalized.edge_step[None]  # mu minus the pre-edge line
    registered = maps is not None and bool(np.any(maps.shifts))
    return maps_of_od(
        od,
        normalized.energies,
        settings,
        defaults,
        library,
        registered=registered,
        mask=region(normalized, maps),
    )


def maps_of_od(
    od: np.ndarray,
    energies: np.ndarray,
    settings: Settings,
    defaults: Sequence[str],
    library: Sequence[Reference],
    *,
    registered: bool,
    mask: np.ndarray | None = None,
    od_noise: np.ndarray | None = None,
) -> Product:
    """:func:`~xanes_stream.spectra.two_energy.two_energy_maps` as ``settings`` say; references
    not named there are the first two of ``defaults``; ``registered`` frames add the settings'
    ``misregistration`` to the stated error.

    Parameters
    ----------
    od : numpy.ndarray
        (m, ny, nx) optical density.
    energies : numpy.ndarray
        (m,) eV.
    settings : Settings
        The two-energy section.
    defaults : sequence of str
        Reference names to fall back on.
    library : sequence of Reference
        Where the references are looked up.
    registered : bool
        Whether the frames were moved into register.
    mask, od_noise
        As for ``two_energy_maps``.

    Returns
    -------
    Product
        The ``two_energy/...`` images and the metadata.
    """
    names = [settings.reference_a, settings.reference_b]
    for i, name in enumerate(names):
        if name is None:
            if len(defaults) < 2:
                raise AnalysisError("two-energy maps need two references (set reference_a/b)")
            names[i] = defaults[i]
    reference_a, reference_b = (by_name(library, name) for name in names)
    result = two_energy_maps(
        od,
        energies,
        reference_a,
        reference_b,
        e1=settings.e1,
        e2=settings.e2,
        pre_edge=settings.pre_edge,
        threshold=settings.threshold,
        mask=mask,
        od_noise=od_noise,
        misregistration=settings.misregistration if registered else 0.0,
    )
    images = {f"two_energy/{f.name}": getattr(result, f.name) for f in fields(result)}
    del images["two_energy/metadata"]
    return Product(images=images, metadata=result.metadata)
