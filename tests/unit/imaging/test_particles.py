"""Particles: the watershed finds the phantom's particles; the table matches their truth."""

import numpy as np
import pytest
from helpers.normalized_phantom import normalized_stack

from xanes_stream import analyze
from xanes_stream.errors import AnalysisError
from xanes_stream.imaging.particles import label_particles, particle_table
from xanes_stream.pipeline.products.particles import ParticleSettings, run
from xanes_stream.sim.phantom import make_phantom


@pytest.fixture(scope="module")
def scan():
    p = make_phantom((128, 128), references=("NiO", "LiNiO2"), n_particles=10, drift=0, seed=3)
    maps = analyze(
        p.frames,
        p.energies,
        p.references,
        dark=p.dark,
        flat=p.flat,
        settings={"registration": {"method": "none"}},
    )
    return p, maps


def _matching(labels, truth):
    """For each true particle, the label covering most of its segmented pixels and its share
    of them (the threshold decides how much of the thin rim is segmented, not the watershed)."""
    out = []
    for t in range(1, truth.max() + 1):
        found = labels[(truth == t) & (labels > 0)]
        best = np.bincount(found, minlength=labels.max() + 1)
        best[0] = 0
        out.append((int(best.argmax()), best.max() / found.size))
    return out


@pytest.mark.parametrize("source", ["thickness", "mask", "truth"])
def test_watershed_counts_the_phantom_particles(scan, source):
    p, maps = scan
    image = {"thickness": maps.thickness, "mask": maps.mask, "truth": p.thickness}[source]
    labels = label_particles(image)
    assert labels.max() == p.labels.max() == 10
    matches = _matching(labels, p.labels)
    assert len({label for label, _ in matches}) == 10  # one label per particle
    assert min(share for _, share in matches) > 0.98
    # and a label holds (almost) only its particle
    for label, _ in matches:
        assert np.isin(p.labels[labels == label], [0, p.labels[labels == label].max()]).all()
        assert (p.labels[labels == label] > 0).mean() > 0.9
    # the threshold keeps the thick part of every particle
    assert (labels[p.thickness > 0.6 * p.thickness.max()] > 0).mean() > 0.97


def test_touching_particles_are_split():
    yy, xx = np.mgrid[0:80, 0:80]
    a = (yy - 40) ** 2 + (xx - 25) ** 2 < 14**2
    b = (yy - 40) ** 2 + (xx - 50) ** 2 < 13**2
    c = (yy - 12) ** 2 + (xx - 65) ** 2 < 6**2
    labels = label_particles(a | b | c, min_distance=5)
    assert labels.max() == 3
    assert labels[40, 25] != labels[40, 50]
    assert labels[40, 22] == labels[40, 28]
    # the cut lies near the waist between the two discs (x = 37.4 on the centre line)
    row = labels[40, 25:51]
    cut = 25 + np.flatnonzero(row != row[0])[0]
    assert abs(cut - 37.4) <= 2


def test_small_specks_are_dropped():
    mask = np.zeros((40, 40), dtype=bool)
    mask[5:15, 5:15] = True
    mask[30, 30] = True
    assert label_particles(mask, min_area=10).max() == 1
    assert label_particles(np.zeros((40, 40))).max() == 0


def test_table_matches_truth(scan):
    p, maps = scan
    labels = label_particles(maps.thickness)
    table = particle_table(labels, maps, active_threshold=0.5)
    n = labels.max()
    assert set(table) == {
        "label",
        "area_px",
        "centroid_y",
        "centroid_x",
        "mean_NiO",
        "mean_LiNiO2",
        "mean_edge_energy",
        "active",
    }
    assert all(len(column) == n for column in table.values())
    np.testing.assert_array_equal(table["area_px"], np.bincount(labels.ravel())[1:])
    # each particle's composition: its true fractions weighted by its true thickness
    matches = _matching(labels, p.labels)
    for i, name in enumerate(maps.reference_names):
        for true_label, (label, _) in enumerate(matches, start=1):
            disc = p.labels == true_label
            truth = np.sum((p.fractions[i] * p.thickness)[disc]) / np.sum(p.thickness[disc])
            assert abs(table[f"mean_{name}"][label - 1] - truth) < 0.02, (name, label)
    # centroids: those of the true discs
    for label, _ in matches:
        ys, xs = np.nonzero(p.labels == p.labels[labels == label].max())
        assert abs(table["centroid_y"][label - 1] - ys.mean()) < 1.0
        assert abs(table["centroid_x"][label - 1] - xs.mean()) < 1.0
    # E0 of a particle rises with its LiNiO2 (Ni3+) share
    r = np.corrcoef(table["mean_LiNiO2"], table["mean_edge_energy"])[0, 1]
    assert r > 0.8


def test_active_flag_follows_the_threshold(scan):
    p, maps = scan
    labels = label_particles(maps.thickness)
    inside = labels > 0
    weights = (p.thickness * maps.mask)[inside]
    amount = np.bincount(labels[inside], weights=weights)[1:]
    truth = np.bincount(labels[inside], weights=p.fractions[1][inside] * weights)[1:] / amount
    ordered = np.sort(truth)
    gap = np.argmax(np.diff(ordered))
    threshold = 0.5 * (ordered[gap] + ordered[gap + 1])  # no particle near the threshold
    table = particle_table(labels, maps, active_threshold=threshold, active_reference="LiNiO2")
    np.testing.assert_array_equal(table["active"], truth > threshold)
    assert 0 < table["active"].sum() < labels.max()


def test_run_adapter(scan):
    p, maps = scan
    product = run(normalized_stack(p), maps, ParticleSettings(enabled=True), p.references)
    assert product.images["particles/labels"].max() == 10
    table = product.tables["particles/table"]
    assert len(table["label"]) == product.metadata["n_particles"] == 10
    assert product.metadata["active_reference"] == "LiNiO2"


def test_bad_inputs_are_clear(scan):
    maps = scan[1]
    with pytest.raises(AnalysisError, match="2-D"):
        label_particles(np.zeros((2, 4, 4)))
    with pytest.raises(AnalysisError, match="differ"):
        particle_table(np.zeros((4, 4), dtype=np.int32), maps)
    with pytest.raises(AnalysisError, match="'Cu' is not one of"):
        particle_table(label_particles(maps.thickness), maps, active_reference="Cu")
