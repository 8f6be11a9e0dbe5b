"""Maps to and from HDF5, in the layout Tiled serves them.

One dataset per map at the top level: ``fractions`` (k, ny, nx) with the attribute
``reference_names``, ``thickness``, ... (ny, nx), ``shifts``, ``energies`` and the mean spectrum
vectors; the file attribute ``metadata`` is JSON. The service registers these files with Tiled
as they are, so the file a user saves from the CLI and the node they read from Tiled match.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from ..errors import StackFileError
from ..maps import IMAGE_MAPS, Maps, jsonable

_VECTORS = ("shifts", "energies", "mean_spectrum", "mean_fit", "fit_energies")


def write_maps(maps: Maps, path: str | Path, metadata: dict | None = None) -> Path:
    """Write ``maps`` to ``path``; ``metadata`` (JSON-able) is merged over ``maps.metadata``."""
    path = Path(path)
    try:
        with h5py.File(path, "w") as f:
            fractions = f.create_dataset("fractions", data=maps.fractions)
            fractions.attrs["reference_names"] = list(maps.reference_names)
            for name in (*IMAGE_MAPS, *_VECTORS):
                f.create_dataset(name, data=storable(getattr(maps, name)))
            f.attrs["metadata"] = json.dumps(
                jsonable({**maps.metadata, **(metadata or {})}, finite=True)
            )
            f.attrs["reference_names"] = list(maps.reference_names)
    except OSError as exc:
        raise StackFileError(f"cannot write maps to {path}: {exc}") from None
    return path


def read_maps(path: str | Path) -> Maps:
    """Read maps written by :func:`write_maps`."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            names = [str(n) for n in f["fractions"].attrs["reference_names"]]
            fractions = f["fractions"][()]
            fields = {name: f[name][()] for name in (*IMAGE_MAPS, *_VECTORS)}
            metadata = json.loads(f.attrs["metadata"])
    except (OSError, KeyError, ValueError) as exc:
        raise StackFileError(f"{path} is not a maps file: {exc}") from None
    fields["mask"] = fields["mask"].astype(bool)
    return Maps(reference_names=names, fractions=fractions, metadata=metadata, **fields)


def storable(array: np.ndarray) -> np.ndarray:
    """``array`` contiguous, with booleans as uint8 (which every HDF5 and Tiled reader knows)."""
    array = np.ascontiguousarray(array)
    return array.astype(np.uint8) if array.dtype == bool else array
