"""An example stack file, so a new user can try the command line without data."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from xanes_stream.sim.phantom import make_phantom


def write_example_stack(
    path: str | Path,
    *,
    shape: tuple[int, int] = (256, 256),
    seed: int = 0,
    references: tuple[str, ...] = ("NiO", "LiNiO2", "Ni"),
    energies: np.ndarray | None = None,
) -> Path:
    """Write a phantom Ni K-edge scan in the FXI/PyXAS layout, with its ground truth.

    ``img_xanes`` holds flat-corrected transmission, ``X_eng`` the energies in keV; the truth is
    under ``truth/`` (fractions, thickness, drift, particle labels) for checking the maps.
    ``energies`` (eV) default to 81 across the Ni K-edge; a few give a few-energy scan.
    """
    phantom = make_phantom(
        shape, references=references, energies=energies, n_particles=8, seed=seed
    )
    path = Path(path)
    with h5py.File(path, "w") as f:
        f.create_dataset("X_eng", data=phantom.energies / 1000.0)
        f.create_dataset("img_xanes", data=phantom.transmission, compression="gzip")
        truth = f.create_group("truth")
        truth.create_dataset("fractions", data=phantom.fractions)
        truth.create_dataset("thickness", data=phantom.thickness)
        truth.create_dataset("drift", data=phantom.drift)
        truth.create_dataset("labels", data=phantom.labels)
        truth.attrs["n_particles"] = int(phantom.labels.max())
        truth.attrs["references"] = json.dumps([r.name for r in phantom.references])
        f.attrs["note"] = "synthetic stack made by xanes-stream example-stack"
    return path
