"""A first look's maps in a maps file, and its cluster spectra as reference files that the
reference readers take back (the names from the header, the spectrum as written)."""

import numpy as np
import pytest
from helpers.phantoms import kinds_phantom

from xanes_stream.errors import AnalysisError
from xanes_stream.io import read_maps, write_maps
from xanes_stream.io.candidates import candidate_spectra, write_candidate_references
from xanes_stream.io.references import load_library, name_candidates, read_reference
from xanes_stream.pipeline.first_look import first_look


@pytest.fixture(scope="module")
def look():
    p, _ = kinds_phantom(("NiO", "LiNiO2"), shape=(48, 48), n_particles=4, seed=2)
    settings = {"mask": {"n_clusters": 2}, "registration": {"method": "none"}}
    return first_look(p.frames, p.energies, dark=p.dark, flat=p.flat, settings=settings)


def test_maps_file_round_trip(look, tmp_path):
    write_maps(look, tmp_path / "maps.h5")
    back = read_maps(tmp_path / "maps.h5")
    assert back.reference_names == []
    assert back.fractions.shape == look.fractions.shape
    np.testing.assert_array_equal(back.clusters, look.clusters)
    np.testing.assert_allclose(back.edge_energy, look.edge_energy, equal_nan=True)
    assert back.metadata["method"] == "first_look"
    for name in ("first_look", "decomposition"):
        assert set(back.products[name].images) == set(look.products[name].images)
    written, read = candidate_spectra(look), candidate_spectra(back)
    assert list(read) == list(written) == ["cluster1", "cluster2"]
    for name, (energy, mu) in written.items():
        np.testing.assert_allclose(read[name][0], energy)
        np.testing.assert_allclose(read[name][1], mu, rtol=1e-6)


def test_candidate_files_read_back(look, tmp_path):
    paths = write_candidate_references(look, tmp_path / "refs")
    for path, (name, (energy, mu)) in zip(paths, candidate_spectra(look).items(), strict=True):
        assert name_candidates(path)[0] == (name, "header Sample.name")
        ref = read_reference(path)
        assert ref.name == name and ref.normalized
        np.testing.assert_allclose(ref.energy, energy)
        np.testing.assert_allclose(ref.mu, mu, rtol=1e-6, atol=1e-9)
    assert [r.name for r in load_library(tmp_path / "refs")] == ["cluster1", "cluster2"]


def test_maps_with_references_have_no_candidates(tmp_path):
    from xanes_stream.pipeline.results import Maps

    empty = np.zeros((2, 2), dtype=np.float32)
    maps = Maps([], np.zeros((0, 2, 2)), *([empty] * 8), np.zeros((5, 2)), np.arange(5.0),
                np.zeros(5), np.zeros(5), np.arange(5.0))  # fmt: skip
    with pytest.raises(AnalysisError, match="candidate references come from a first look"):
        write_candidate_references(maps, tmp_path)
