"""K-means clusters with the elbow: particle kinds of distinct chemistry, found without k."""

import numpy as np
import pytest
from helpers import core
from helpers.phantoms import kinds_phantom

from xanes_stream.errors import AnalysisError
from xanes_stream.pipeline.normalized import normalize_stack
from xanes_stream.pipeline.products import clustering as adapter
from xanes_stream.spectra.clustering import cluster_mask, cluster_spectra, elbow

REFS = ("NiO", "LiNiO2", "Ni")


@pytest.fixture(scope="module")
def kinds():
    """Six particles of three kinds (pure NiO, LiNiO2, Ni metal), 96 x 96."""
    p, kind = kinds_phantom(REFS)
    stack = normalize_stack(
        p.frames,
        p.energies,
        dark=p.dark,
        flat=p.flat,
        settings={"registration": {"method": "none"}},
    )
    return p, kind, stack


def test_elbow_finds_the_kinds(kinds):
    p, kind, stack = kinds
    inside = core(p)
    product = cluster_spectra(stack, mask=stack.mask & inside)
    assert product.metadata["k"] == 3
    labels = product.labels
    assert labels[~inside].max() == 0
    found = []
    for j in range(3):
        counts = np.bincount(labels[inside & (kind == j)], minlength=4)
        found.append(int(np.argmax(counts)))
        assert counts.max() / counts.sum() > 0.95
    assert sorted(found) == [1, 2, 3]
    # labels follow edge position: Ni metal (lowest edge) is 1
    assert found[2] == 1
    # each cluster's mean spectrum is its reference's, as a mask it selects that kind
    truth = p.true_spectra()
    spectra = product.spectra
    for j, label in enumerate(found):
        expected = truth[:, inside & (kind == j)].mean(axis=1)
        scale = expected @ spectra[label - 1] / (spectra[label - 1] @ spectra[label - 1])
        assert np.abs(scale * spectra[label - 1] - expected).max() < 0.05
        assert (kind[cluster_mask(product, label)] == j).mean() > 0.95


def test_explicit_k_and_adapter(kinds):
    _, _, stack = kinds
    product = adapter.run(stack, None, adapter.Settings(enabled=True, k=2), [])
    assert product.metadata["k"] == 2 and product.metadata["k_chosen_by"] == "explicit"
    assert set(np.unique(product.images["clusters/labels"])) == {0, 1, 2}
    with pytest.raises(AnalysisError, match="cluster label"):
        cluster_mask(cluster_spectra(stack, 2), 3)


def test_elbow_of_curves():
    assert elbow(np.array([100.0, 20.0, 10.0, 9.0, 8.5, 8.0])) == 2
    assert elbow(np.array([100.0, 90.0, 80.0, 5.0, 4.0, 3.5])) == 4
    assert elbow(np.array([10.0, 10.0, 10.0])) == 1
