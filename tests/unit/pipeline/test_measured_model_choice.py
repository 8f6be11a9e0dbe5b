"""The measured ALS 11.0.2.2 Fe L-edge STXM stack (Breier et al. 2012; MIT): edge
normalization distorts it (the L2 line sits where a post-edge would be), so ``fit.model:
auto`` fits it in optical density and says why; the signal-to-noise mask keeps about twice
the pixels Otsu's does. References: the mean OD of two of its regions, as its authors did."""

import numpy as np
import pytest
from helpers.measured import ALS_REGIONS as REGIONS
from helpers.measured import ALS_STACK, measured

from xanes_stream import analyze
from xanes_stream.io.stacks import read_stack


@pytest.fixture(scope="module")
def stack():
    stack = read_stack(measured(ALS_STACK, "71214098.hdr"))
    od = (-np.log(stack.frames / stack.i0[:, None, None])).astype(np.float32)
    refs = {n: (stack.energies, od[:, ys, xs].mean((1, 2))) for n, (ys, xs) in REGIONS.items()}
    return stack.energies, od, refs


def test_auto_fits_the_l_edge_in_optical_density_and_says_why(stack):
    energies, od, refs = stack
    maps = analyze(od, energies, refs, mode="absorbance")  # the signal-to-noise mask
    chosen = maps.metadata["fit_model"]
    assert chosen["model"] == "optical_density"
    assert chosen["r_factor_normalized"] > 100 * chosen["r_factor_optical_density"]
    assert any("edge normalization distorts" in n for n in maps.metadata["notes"])
    low = maps.fraction("low")
    in_low, in_high = (np.nanmean(low[ys, xs]) for ys, xs in REGIONS.values())
    assert in_low > 0.85 and in_high < 0.25  # each region is mostly its own reference
    assert maps.metadata["thresholds"]["method"] == "snr"
    otsu = analyze(od, energies, refs, mode="absorbance", settings={"mask": {"method": "otsu"}})
    assert maps.mask.mean() > 1.5 * otsu.mask.mean()
