"""K-means clusters of a stack (``spectra.masks.kmeans_clusters``): fitted on a sample of the
masked pixels, every pixel then given its nearest centre in one compiled pass; the same
clusters as k-means over every masked pixel, where the stack has clusters to find (particles
of distinct chemistry: on a continuum of mixtures k-means over all pixels does not agree with
itself from another seed, ARI ~0.9)."""

import numpy as np
import pytest
from helpers.phantoms import kinds_phantom
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from xanes_stream.spectra.masks import kmeans_clusters, nearest_centre
from xanes_stream.spectra.normalize import EdgeOperator, edge_windows, find_e0


def _features(p, q=6):
    """Normalized spectra of the particles' pixels on their q leading principal components,
    as the analysis makes them: (q, P) float32, and the mask."""
    od = -np.log(p.transmission).reshape(p.energies.size, -1)
    mask = p.particles.ravel() & (p.thickness.ravel() > 0.1 * p.thickness.max())
    e0 = find_e0(p.energies, od[:, mask].mean(axis=1))
    operator = EdgeOperator.build(p.energies, edge_windows(p.energies, e0))
    y, _ = operator.apply(od)
    mean = y[:, mask].mean(axis=1, keepdims=True)
    centred = (y[:, mask] - mean).astype(np.float64)
    basis = np.linalg.eigh(centred @ centred.T)[1][:, ::-1][:, :q]
    return (basis.T @ (y - mean)).astype(np.float32), mask


@pytest.fixture(scope="module")
def phantoms():
    three, _ = kinds_phantom(("NiO", "LiNiO2", "Ni"), shape=(128, 128), n_particles=8, seed=3)
    two, _ = kinds_phantom(("NiO", "LiNiO2"), shape=(128, 128), n_particles=8, seed=6)
    return {"kinds": three, "two kinds": two}


@pytest.mark.parametrize(("name", "k"), [("kinds", 3), ("two kinds", 2)])
@pytest.mark.parametrize("seed", [0, 1])
def test_sampled_kmeans_labels_match_the_full_kmeans(phantoms, name, k, seed):
    features, mask = _features(phantoms[name])
    assert mask.sum() > 5 * 600  # the sample is a small part of the masked pixels
    sampled = kmeans_clusters(features, mask, k, sample_size=600, seed=seed)
    full = KMeans(n_clusters=k, n_init=4, random_state=0).fit_predict(features[:, mask].T)
    assert (sampled[~mask] == 0).all() and set(np.unique(sampled[mask])) == set(range(1, k + 1))
    assert adjusted_rand_score(full, sampled[mask]) >= 0.95


def test_compiled_assignment_is_the_nearest_centre(phantoms):
    """The labels of the one-pass assignment are numpy's nearest centres, ordered by the
    mean of order_by (here: the first feature, so cluster 1 has the lowest)."""
    features, mask = _features(phantoms["kinds"])
    order_by = features[0]
    labels = kmeans_clusters(features, mask, 3, order_by=order_by, seed=1)
    centres = np.stack([features[:, labels == c].mean(axis=1) for c in (1, 2, 3)])
    nearest = nearest_centre(features, centres) + 1
    assert np.mean(nearest[mask] == labels[mask]) > 0.999
    means = [order_by[labels == c].mean() for c in (1, 2, 3)]
    assert means == sorted(means)


def test_non_finite_features_and_too_few_pixels_get_no_label():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(4, 500)).astype(np.float32)
    features[:, :250] += 6.0
    features[2, 7] = np.nan
    mask = np.ones(500, bool)
    labels = kmeans_clusters(features, mask, 2)
    assert labels[7] == 0 and set(np.unique(labels[8:])) == {1, 2}
    assert len(set(labels[8:250])) == 1 and len(set(labels[250:])) == 1
    assert not kmeans_clusters(features, np.zeros(500, bool), 2).any()
