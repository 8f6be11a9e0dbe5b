"""What the adapters share: the mask to use and a library lookup."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from xanes_stream.errors import AnalysisError
from xanes_stream.pipeline.results import Maps, NormalizedStack
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
