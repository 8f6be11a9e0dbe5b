"""A first look without references, on particles of two pure phases (NiO, LiNiO2) with noise:
its E0 is the truth's, its clusters are the phases, each cluster's spectrum is its phase's, and
the clusters written as references fit the stack back to the true fractions."""

import numpy as np
import pytest
from helpers.phantoms import kinds_phantom
from sklearn.metrics import adjusted_rand_score

from xanes_stream.cli.common import parse_reference
from xanes_stream.errors import AnalysisError
from xanes_stream.io.candidates import write_candidate_references
from xanes_stream.pipeline.analyze import analyze
from xanes_stream.pipeline.first_look import FIRST_LOOK_NOTE, first_look
from xanes_stream.pipeline.scan import analyze_scan
from xanes_stream.spectra.features import edge_energy
from xanes_stream.spectra.normalize import EdgeWindows, normalize
from xanes_stream.spectra.references import reference_matrix

SETTINGS = {"mask": {"n_clusters": 2}, "registration": {"method": "none"}}


@pytest.fixture(scope="module")
def phantom():
    return kinds_phantom(("NiO", "LiNiO2"), shape=(64, 64), n_particles=6, seed=5)


@pytest.fixture(scope="module")
def look(phantom):
    p, _ = phantom
    return first_look(p.frames, p.energies, dark=p.dark, flat=p.flat, settings=SETTINGS)


def _inside(phantom, maps) -> np.ndarray:
    p, _ = phantom
    return (maps.mask & p.particles).ravel()


def _phase_of(phantom, maps, cluster: int) -> int:
    """The phase most of a cluster's pixels are (0: NiO, 1: LiNiO2)."""
    _, kind = phantom
    members = (maps.clusters.ravel() == cluster) & _inside(phantom, maps)
    return int(np.bincount(kind.ravel()[members]).argmax())


def test_maps_without_references(phantom, look):
    p, _ = phantom
    assert look.reference_names == []
    assert look.fractions.shape == (0, *p.particles.shape)
    assert look.metadata["method"] == "first_look"
    assert FIRST_LOOK_NOTE in look.metadata["notes"]
    inside = look.mask
    assert inside.sum() > 0.7 * p.particles.sum()
    assert not (inside & ~p.particles).any()  # the mask is sample only
    for image in (look.thickness, look.edge_energy, look.peak_energy):
        assert np.isfinite(image[inside]).all()
    assert np.isnan(look.r_factor).all()  # no fit: no goodness of fit
    product = look.products["first_look"]
    for name in ("white_line_height", "pre_edge"):
        assert np.isfinite(product.images[name][inside]).all()
    # NiO and LiNiO2 white lines are ~1.5x the edge step, far above the post-edge's 1
    assert np.median(product.images["white_line_height"][inside]) > 1.2
    # thickness is the edge step: proportional to the phantom's particle thickness
    r = np.corrcoef(look.thickness[inside], p.thickness[inside])[0, 1]
    assert r > 0.95


def test_edge_energy_is_the_truths(phantom, look):
    """E0 against spectra.features on the noise-free normalized truth of each pixel: median
    within 0.5 eV, 90 % of pixels within 1 eV (the grid near the edge is 1 eV)."""
    p, _ = phantom
    e = look.fit_energies
    e0 = look.metadata["normalization"]["e0"]
    truth = reference_matrix(p.references, e, (e[0], e[-1])) @ p.fractions.reshape(2, -1)
    inside = _inside(phantom, look)
    direct = edge_energy(truth[:, inside], e, (e0 - 20.0, e0 + 20.0))
    error = np.abs(look.edge_energy.ravel()[inside] - direct)
    assert np.median(error) < 0.5
    assert np.percentile(error, 90) < 1.0


def test_clusters_are_the_phases(phantom, look):
    _, kind = phantom
    inside = _inside(phantom, look)
    assert adjusted_rand_score(kind.ravel()[inside], look.clusters.ravel()[inside]) >= 0.9
    assert {_phase_of(phantom, look, 1), _phase_of(phantom, look, 2)} == {0, 1}


def test_cluster_spectra_are_the_references(phantom, look):
    """Each cluster's mean spectrum against its phase's reference normalized with the scan's
    windows: RMS below 0.015 of the edge step (measured 0.003 and 0.0015)."""
    p, _ = phantom
    product = look.products["first_look"]
    w = look.metadata["normalization"]
    windows = EdgeWindows(
        w["e0"], tuple(w["pre_edge"]), tuple(w["post_edge"]), w["post_edge_order"],
        tuple(w["fit_range"]),
    )  # fmt: skip
    energy = product.energies
    for c, spectrum in enumerate(product.spectra["cluster_spectra"], 1):
        ref = p.references[_phase_of(phantom, look, c)]
        expected = normalize(energy, np.interp(energy, ref.energy, ref.mu), windows).norm
        assert np.sqrt(np.mean((spectrum - expected) ** 2)) < 0.015
    assert product.metadata["candidate_references"] == ["cluster1", "cluster2"]
    assert list(product.tables["clusters"]["pixels"]) == [
        int((look.clusters == c).sum()) for c in (1, 2)
    ]


def test_pca_scree(look):
    pca = look.products["decomposition"]
    singular = pca.tables["pca/scree"]["singular_value"]
    assert np.all(np.diff(singular) <= 1e-9)
    # two phases: one direction of change about the mean holds most of the variance (the
    # noise of the thin rims the mask keeps holds much of the rest)
    assert pca.metadata["explained_variance_ratio"][0] > 0.6
    assert pca.images["pca/maps"].shape[1:] == look.thickness.shape


def test_candidate_references_fit_back(phantom, look, tmp_path):
    """The cluster spectra written as files, read as ``--reference NAME=FILE``, fit the stack:
    mean |fraction error| below 0.03 and 95 % of pixels within 0.1 (measured 0.013 and 0.06;
    the bundled references themselves give 0.011)."""
    p, _ = phantom
    paths = write_candidate_references(look, tmp_path)
    assert [path.name for path in paths] == ["cluster1.xdi", "cluster2.xdi"]
    refs = [parse_reference(f"{path.stem}={path}") for path in paths]
    maps = analyze(p.frames, p.energies, refs, dark=p.dark, flat=p.flat, settings=SETTINGS)
    inside = _inside(phantom, look)
    for c in (1, 2):
        truth = p.fractions[_phase_of(phantom, look, c)].ravel()[inside]
        error = np.abs(maps.fraction(f"cluster{c}").ravel()[inside] - truth)
        assert error.mean() < 0.03
        assert np.percentile(error, 95) < 0.1


def test_analyze_scan_without_references_is_a_first_look(phantom):
    p, _ = phantom
    corner = (..., slice(0, 32), slice(0, 32))
    maps = analyze_scan(
        p.frames[corner],
        p.energies,
        [],
        dark=p.dark[corner],
        flat=p.flat[corner],
        settings=SETTINGS,
    )
    assert maps.metadata["method"] == "first_look"
    assert "first_look" in maps.products


def test_too_few_energies_is_a_clear_error(phantom):
    p, _ = phantom
    with pytest.raises(AnalysisError, match="at least 5 energies"):
        first_look(p.frames[:4], p.energies[:4], dark=p.dark, flat=p.flat)
    with pytest.raises(AnalysisError, match="3-D scan needs at least one reference"):
        analyze_scan(np.ones((6, 2, 8, 8), dtype=np.float32), p.energies[:6], [])
