"""xanes-stream against a peer on measured data: MANTiS's target-spectrum fit of the ALS
11.0.2.2 Fe L-edge STXM stack (Breier et al. 2012; MIT), same stack, same references.

The peer's fractions are ``tests/data/mantis_als_71214098.npz``, made by
``tests/data/make_mantis_fixture.py`` with mantis-xray 3.3.0: its SDF reader, its optical
density from the stack's I0 spectrum, the two region-mean OD spectra of
``helpers.measured.ALS_REGIONS`` plus MANTiS's flat spectrum (the constant of STXM practice),
least squares per pixel, fractions ``t_i / sum t``. Issue 19's "done when": the median per-pixel
difference in the mask at most 0.05, every region's median within 0.1.
"""

from pathlib import Path

import numpy as np
import pytest
from helpers.measured import ALS_REGIONS, ALS_STACK, measured

from xanes_stream import analyze
from xanes_stream.io.stacks import read_stack

PEER = Path(__file__).parents[2] / "data" / "mantis_als_71214098.npz"


@pytest.fixture(scope="module")
def peer() -> dict:
    with np.load(PEER) as npz:
        return {name: npz[name] for name in npz.files}


@pytest.fixture(scope="module")
def fitted(peer):
    stack = read_stack(measured(ALS_STACK, "71214098.hdr"))
    od = (-np.log(stack.frames / stack.i0[:, None, None])).astype(np.float32)
    refs = {n: (stack.energies, od[:, ys, xs].mean((1, 2))) for n, (ys, xs) in ALS_REGIONS.items()}
    settings = {"mask": {"method": "snr", "outside": "nan"}}
    maps = analyze(od, stack.energies, refs, mode="absorbance", settings=settings)
    return stack, refs, maps


def test_the_peer_fitted_the_same_stack_with_the_same_references(peer, fitted):
    stack, refs, _ = fitted
    assert str(peer["mantis_version"]) == "3.3.0"
    np.testing.assert_allclose(peer["energies"], stack.energies, atol=1e-6)
    for name, targets in zip(peer["names"], peer["targets"], strict=True):
        np.testing.assert_allclose(targets, refs[str(name)][1], atol=1e-4)  # its csv: 6 digits


def test_fractions_agree_with_mantis_in_the_mask(peer, fitted):
    _, _, maps = fitted
    assert maps.metadata["fit_model"]["model"] == "optical_density"  # as MANTiS fits it
    inside = maps.mask
    assert inside.mean() > 0.2  # the particles, thin ones included
    regions = []
    for ys, xs in ALS_REGIONS.values():
        region = np.zeros_like(inside)
        region[ys, xs] = True
        regions.append(region & inside)
    clusters = [maps.clusters == label for label in range(1, maps.clusters.max() + 1)]
    # every cluster is a region of the sample, not a few outliers (features per fitted step)
    assert all(c.sum() >= 0.05 * inside.sum() for c in clusters), [c.sum() for c in clusters]
    regions += clusters
    for k, name in enumerate(peer["names"]):
        ours = maps.fraction(str(name))
        theirs = peer["fractions"][k].astype(np.float64)
        assert np.median(np.abs(ours - theirs)[inside]) <= 0.05
        for region in regions:
            assert abs(np.median(ours[region]) - np.median(theirs[region])) <= 0.1
