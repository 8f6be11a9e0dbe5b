"""A NormalizedStack from a phantom, edge-normalized as analyze does (for tests of products)."""

import numpy as np

from xanes_stream.pipeline.results import NormalizedStack
from xanes_stream.spectra.normalize import EdgeOperator, edge_windows, find_e0


def normalized_stack(phantom, mask=None) -> NormalizedStack:
    """Edge-normalized spectra of every pixel of a drift-free phantom."""
    od = -np.log(phantom.transmission.astype(np.float64))
    n, ny, nx = od.shape
    e0 = find_e0(phantom.energies, od[:, phantom.particles].mean(axis=1))
    operator = EdgeOperator.build(phantom.energies, edge_windows(phantom.energies, e0))
    spectra, step = operator.apply(od.reshape(n, -1))
    return NormalizedStack(
        energies=operator.fit_energy,
        spectra=spectra.reshape(-1, ny, nx),
        e0=e0,
        edge_step=step.reshape(ny, nx),
        mask=mask,
    )
