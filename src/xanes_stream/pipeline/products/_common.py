"""What the adapters share: the mask to use and a library lookup."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from xanes_stream.errors import AnalysisError
from xanes_stream.pipeline.results import Maps, NormalizedStack
from xanes_stream.spectra.masks import well_measured
from xanes_stream.spectra.references import Reference


def region(normalized: NormalizedStack, maps: Maps | None) -> np.ndarray | None:
    """The analysis mask: the maps' quality mask when there are maps, else the stack's own.

    Parameters
    ----------
    normalized : NormalizedStack
        The normalized stack.
    maps : Maps or None
        Its maps.

    Returns
    -------
    numpy.ndarray or None
        (ny, nx) bool.
    """
    if maps is not None and maps.mask is not None and maps.mask.shape == normalized.edge_step.shape:
        return np.asarray(maps.mask, dtype=bool)
    return normalized.mask


def fit_region(normalized: NormalizedStack, maps: Maps | None) -> np.ndarray | None:
    """The pixels a model (clusters, components) is fitted on: :func:`region`, and of a
    signal-to-noise mask (thin pixels kept) its better-measured half by edge step
    (:func:`~xanes_stream.spectra.masks.well_measured`); the model then maps every pixel.

    Parameters
    ----------
    normalized : NormalizedStack
        The normalized stack.
    maps : Maps or None
        Its maps.

    Returns
    -------
    numpy.ndarray or None
        (ny, nx) bool.
    """
    mask = region(normalized, maps)
    if mask is None or maps is None or mask is normalized.mask:
        return mask
    if (maps.metadata.get("thresholds") or {}).get("method") != "snr":
        return mask
    return well_measured(normalized.edge_step, mask)


def by_name(library: Sequence[Reference], name: str) -> Reference:
    """The library entry called ``name``.

    Parameters
    ----------
    library : sequence of Reference
        The library.
    name : str
        The entry's name.

    Returns
    -------
    Reference
    """
    for reference in library:
        if reference.name == name:
            return reference
    raise AnalysisError(f"no reference {name!r} in the library; have {[r.name for r in library]}")
