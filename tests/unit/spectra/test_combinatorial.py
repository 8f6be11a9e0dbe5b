"""Combinatorial fitting picks the phantom's true references out of a 10-entry library."""

from itertools import combinations

import numpy as np
import pytest
from helpers import core
from helpers.library10 import library10

from xanes_stream.errors import AnalysisError
from xanes_stream.pipeline.normalized import normalize_stack
from xanes_stream.pipeline.products import combinatorial as adapter
from xanes_stream.spectra.combinatorial import (
    _all_sets,
    _nnls_all_sets,
    combinatorial_fit,
    rank_combinations,
)
from xanes_stream.spectra.fit import solve
from xanes_stream.spectra.references import Reference


@pytest.fixture(scope="module")
def library():
    return library10()


@pytest.fixture(scope="module")
def stack2(phantom2):
    p = phantom2
    return normalize_stack(p.frames, p.energies, dark=p.dark, flat=p.flat)


@pytest.fixture(scope="module")
def stack3(phantom3):
    p = phantom3
    return normalize_stack(p.frames, p.energies, dark=p.dark, flat=p.flat)


@pytest.mark.parametrize("which", [2, 3])
@pytest.mark.parametrize("binning", [None, 8])
def test_best_set_is_the_true_references(
    which, binning, stack2, stack3, phantom2, phantom3, library
):
    stack, p = (stack2, phantom2) if which == 2 else (stack3, phantom3)
    product = combinatorial_fit(stack, library, max_size=which, binning=binning)
    ranking = product.ranking
    assert ranking["rank"].size == sum(
        len(list(combinations(range(10), m))) for m in (1, 2, 3)[:which]
    )
    assert sorted(product.metadata["references"]) == sorted(r.name for r in p.references)
    assert np.all(np.diff(ranking["chi2_red"]) >= 0)
    # per-pixel fractions of the best set against the truth
    names = product.metadata["references"]
    fractions = product.fractions
    truth = np.stack([p.fractions[[r.name for r in p.references].index(n)] for n in names])
    errors = np.abs(fractions - truth)[:, core(p)]
    assert np.median(errors) < 0.04


def test_all_sets_nnls_is_exact():
    """The batched NNLS of every set equals spectra.fit's exact NNLS set by set."""
    rng = np.random.default_rng(1)
    R = rng.random((40, 6))
    y = R[:, :3] @ rng.random((3, 4)) - 0.3 * R[:, 3:4] + 0.05 * rng.standard_normal((40, 4))
    G, h = R.T @ R, R.T @ y
    sets = _all_sets(6, 4)
    _, solutions = _nnls_all_sets(G, h, sets)
    for size, idx in enumerate(sets):
        for row, members in enumerate(idx):
            expected = solve(G[np.ix_(members, members)], h[members], "nnls")
            np.testing.assert_allclose(solutions[size][row], expected, atol=1e-10)


def test_thousand_combinations(stack3, library):
    """All 1,013 sets of up to 5 of 11 entries (the seed paper's scale) in one call."""
    flat = Reference("flat", library[0].energy, np.ones_like(library[0].mu), True)
    spectrum = np.nanmean(stack3.spectra[:, stack3.mask], axis=1)
    ranking = rank_combinations(spectrum, stack3.energies, [*library, flat], max_size=5)
    assert ranking["rank"].size == sum(len(list(combinations(range(11), m))) for m in range(1, 6))
    top = set(ranking["references"][0].split(" + "))
    assert {"NiO", "LiNiO2"} <= top  # larger sets may add look-alikes with small weights


def test_adapter_uses_the_scree_for_max_size(stack2, library):
    product = adapter.run(stack2, None, adapter.Settings(enabled=True), library)
    assert product.metadata["max_size"] == 2
    assert product.metadata["max_size_from"] == "scree"
    assert sorted(product.metadata["references"]) == ["LiNiO2", "NiO"]
    with pytest.raises(AnalysisError, match="library"):
        adapter.run(stack2, None, adapter.Settings(enabled=True), [])
