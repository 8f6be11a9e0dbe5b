"""Projections arriving one at a time: a volume per energy as soon as it is complete, and the
same maps as the whole-file path."""

import numpy as np
import pytest

from xanes_stream.errors import AnalysisError
from xanes_stream.pipeline.projections import analyze_projections
from xanes_stream.pipeline.tomograms import EnergyTomograms
from xanes_stream.sim.tomography import make_tomo_phantom


@pytest.fixture(scope="module")
def phantom():
    return make_tomo_phantom(24, n_angles=45, center_offset=-0.8, seed=4)


def test_each_energy_is_reconstructed_when_its_last_projection_arrives(phantom):
    done = []
    tomograms = EnergyTomograms(
        phantom.angles, on_volume=lambda energy, volume: done.append((energy, volume.shape))
    )
    rng = np.random.default_rng(0)
    n_e, n_a = phantom.projections.shape[:2]
    order = [(e, a) for e in range(n_e) for a in rng.permutation(n_a)]  # angles shuffled
    for i, (e, a) in enumerate(order):
        completed = tomograms.add(phantom.energies[e], phantom.angles[a], phantom.projections[e, a])
        assert completed == ((i + 1) % n_a == 0)
        assert len(done) == (i + 1) // n_a  # no energy waits for the next one
    assert [shape for _, shape in done] == [(24, 24, 24)] * n_e
    assert list(tomograms.centers.values()) == [tomograms.centers[phantom.energies[0]]] * n_e
    assert abs(tomograms.center - phantom.center) < 0.5

    live = tomograms.finish(phantom.references)
    whole = analyze_projections(
        phantom.projections,
        phantom.energies,
        phantom.angles,
        phantom.references,
        tomography={"center": tomograms.center},
    )
    np.testing.assert_array_equal(live.fractions, whole.fractions)  # same centre, same maps


def test_an_incomplete_energy_is_left_out_and_named(phantom):
    tomograms = EnergyTomograms(phantom.angles)
    for e in range(phantom.energies.size):
        last = phantom.angles.size - (1 if e == 5 else 0)
        for a in range(last):
            tomograms.add(phantom.energies[e], phantom.angles[a], phantom.projections[e, a])
    assert tomograms.incomplete == {float(phantom.energies[5]): 1}
    maps = tomograms.finish(phantom.references)
    assert maps.energies.size == phantom.energies.size - 1
    assert any("1 energies left out" in note for note in maps.metadata["notes"])


def test_bad_projections_are_refused(phantom):
    tomograms = EnergyTomograms(phantom.angles)
    with pytest.raises(AnalysisError, match="not one of the scan's angles"):
        tomograms.add(8300.0, 1000.0, phantom.projections[0, 0])
    tomograms.add(8300.0, phantom.angles[0], phantom.projections[0, 0])
    with pytest.raises(AnalysisError, match="differs"):
        tomograms.add(8300.0, phantom.angles[1], phantom.projections[0, 0, :5])
    with pytest.raises(AnalysisError, match="no energy has all"):
        tomograms.finish(phantom.references)
    with pytest.raises(AnalysisError, match="must not repeat"):
        EnergyTomograms([0.0, 0.0, 90.0])
