"""What the analyses beyond the fit (decomposition, clusters, particles, ML, ...) hand back.

Each such analysis is a pure function returning a :class:`Product`; the CLI saves it beside the
maps and the service writes it to Tiled under the scan's node (images and spectra as arrays,
tables as tables).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class NormalizedStack:
    """Edge-normalized spectra of every pixel: ``spectra`` is (n_energy, ny, nx), edge step 1."""

    energies: np.ndarray  # (n,) eV, sorted and unique
    spectra: np.ndarray  # (n, ny, nx) float32
    e0: float
    edge_step: np.ndarray  # (ny, nx)
    mask: np.ndarray | None = None  # (ny, nx) bool: sample pixels, when known


@dataclass
class Product:
    """Named results of one analysis.

    ``images``: (ny, nx) or (k, ny, nx) arrays; ``spectra``: (m, n_energy) arrays on
    ``energies``; ``tables``: column name -> 1-D array, all columns of one length;
    ``metadata``: JSON-able facts (chosen k, scores, thresholds, ...).
    """

    images: dict[str, np.ndarray] = field(default_factory=dict)
    spectra: dict[str, np.ndarray] = field(default_factory=dict)
    tables: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    energies: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)
