"""Maps to and from HDF5: one dataset per map, metadata as JSON attributes."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from ..errors import StackFileError
from ..maps import IMAGE_MAPS, Maps, jsonable

_VECTORS = ("shifts", "energies", "mean_spectrum", "mean_fit", "fit_energies")


def write_maps(maps: Maps, path: str | Path) -> Path:
    """Write ``maps`` to ``path``: ``fractions/<reference>``, ``thickness``, ... and attributes."""
    path = Path(path)
    try:
        with h5py.File(path, "w") as f:
            group = f.create_group("fractions")
            group.attrs["reference_names"] = json.dumps(maps.reference_names)
            for name, values in maps.arrays().items():
                f.create_dataset(
                    name, data=values, compression="gzip" if values.ndim == 2 else None
                )
            f.attrs["metadata"] = json.dumps(jsonable(maps.metadata))
            f.attrs["settings"] = json.dumps(maps.metadata.get("settings", {}))
            f.attrs["reference_names"] = json.dumps(maps.reference_names)
    except OSError as exc:
        raise StackFileError(f"cannot write maps to {path}: {exc}") from None
    return path


def read_maps(path: str | Path) -> Maps:
    """Read maps written by :func:`write_maps`."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            names = json.loads(f.attrs["reference_names"])
            fractions = np.stack([f["fractions"][n][()] for n in names])
            fields = {name: f[name][()] for name in (*IMAGE_MAPS, *_VECTORS)}
            metadata = json.loads(f.attrs["metadata"])
    except (OSError, KeyError) as exc:
        raise StackFileError(f"{path} is not a maps file: {exc}") from None
    return Maps(reference_names=names, fractions=fractions, metadata=metadata, **fields)
