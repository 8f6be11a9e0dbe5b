"""Decomposition against the phantom's ground truth: number of phases, maps up to order, and
the Pearson match of component spectra with a 10-entry library."""

import numpy as np
import pytest
from helpers import core
from helpers.library10 import library10
from scipy.optimize import linear_sum_assignment

from xanes_stream.errors import AnalysisError
from xanes_stream.pipeline.normalized import normalize_stack
from xanes_stream.pipeline.products import decomposition as adapter
from xanes_stream.spectra.decomposition import (
    METHODS,
    decompose,
    estimate_components,
    match_components,
    scree,
)


@pytest.fixture(scope="module")
def stack2(phantom2):
    p = phantom2
    return normalize_stack(p.frames, p.energies, dark=p.dark, flat=p.flat)


@pytest.fixture(scope="module")
def stack3(phantom3):
    p = phantom3
    return normalize_stack(p.frames, p.energies, dark=p.dark, flat=p.flat)


def _matched_correlations(maps, fractions, inside):
    """Correlation of every true fraction map with its best-matching component map."""
    r = np.array([[np.corrcoef(m[inside], f[inside])[0, 1] for f in fractions] for m in maps])
    rows, cols = linear_sum_assignment(-r)
    return r[rows, cols], rows, cols


@pytest.mark.parametrize("which", [2, 3])
def test_nmf_finds_phases_and_maps(which, stack2, stack3, phantom2, phantom3):
    stack, p = (stack2, phantom2) if which == 2 else (stack3, phantom3)
    product = decompose(stack, "nmf")
    assert product.metadata["estimated_components"] == which
    assert product.metadata["converged"] is True
    maps = product.maps
    assert maps.shape == (which, *p.thickness.shape)
    r, _, _ = _matched_correlations(maps, p.fractions, core(p))
    assert r.min() > 0.9


@pytest.mark.parametrize("which", [2, 3])
def test_nmf_components_match_their_references(which, stack2, stack3, phantom2, phantom3):
    """Each component's best Pearson match in the library is the reference of the phase its
    map follows (the library holds shifted and broadened look-alikes)."""
    stack, p = (stack2, phantom2) if which == 2 else (stack3, phantom3)
    product = decompose(stack, "nmf")
    _, rows, cols = _matched_correlations(product.maps, p.fractions, core(p))
    table = match_components(product.components, stack.energies, library10())
    assert set(np.unique(table["rank"])) == set(range(1, 11))
    for component, phase in zip(rows, cols, strict=True):
        best = table["reference"][(table["component"] == component) & (table["rank"] == 1)][0]
        if p.references[phase].name == "Ni":
            assert best.startswith("Ni")  # Ni metal or its shifted/broadened variants
        else:
            assert best == p.references[phase].name
        top = table["pearson_r"][(table["component"] == component) & (table["rank"] == 1)][0]
        assert top > 0.9


@pytest.mark.parametrize("method", [m for m in METHODS if m != "nmf"])
def test_other_methods_span_the_fractions(method, stack3, phantom3):
    """Every method's maps, with the estimated k, explain the true fraction maps linearly."""
    p = phantom3
    product = decompose(stack3, method)
    k = product.metadata["n_components"]
    maps = product.maps
    assert product.components.shape == (k, stack3.energies.size)
    inside = core(p)
    design = np.column_stack([maps[:, inside].T, np.ones(inside.sum())])
    for fraction in p.fractions:
        coef, *_ = np.linalg.lstsq(design, fraction[inside], rcond=None)
        residual = fraction[inside] - design @ coef
        assert np.sqrt(np.mean(residual**2)) < 0.08  # measured 0.03-0.061


def test_scree_and_estimate(stack2):
    singular = scree(stack2)
    assert np.all(np.diff(singular) <= 0)
    assert estimate_components(singular, (stack2.energies.size, 2000)) == 2
    assert estimate_components(singular, (stack2.energies.size, 2000), min_ratio=0.5) == 1


def test_explicit_components_and_errors(stack2):
    product = decompose(stack2, "pca", n_components=4)
    assert product.maps.shape[0] == 4
    with pytest.raises(AnalysisError, match="unknown decomposition"):
        decompose(stack2, "lda")
    with pytest.raises(AnalysisError, match="n_components"):
        decompose(stack2, "pca", n_components=0)


def test_adapter_adds_matches(stack2):
    product = adapter.run(stack2, None, adapter.Settings(enabled=True), library10())
    assert set(product.tables) == {"nmf/scree", "nmf/matches"}
    assert product.metadata["n_components"] == 2
