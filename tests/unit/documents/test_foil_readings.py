"""A profile's foil key, read from a real RunEngine's primary events, gives the energy
correction the analysis applies."""

import numpy as np
import pytest
from bluesky import RunEngine

from xanes_stream.documents.router import SafeRouter
from xanes_stream.io.references import bundled_reference
from xanes_stream.pipeline.scan import analyze_scan
from xanes_stream.profiles import Foil, load_profile
from xanes_stream.sim.beamline import make_beamline

KNOWN = 8333.0  # the foil's edge (eV)
READ_HIGH = 1.5  # the monochromator reads this much high


def _foil_mu(read_energy):
    """A foil's absorption at what the monochromator reads: its edge appears 1.5 eV high."""
    return 0.4 + 1.1 * (0.5 + np.arctan(read_energy - READ_HIGH - KNOWN) / np.pi)


def _run(tmp_path, foil_key="foil_mu"):
    beamline = make_beamline(detector="inline", data_dir=tmp_path, shape=(48, 48))
    profile = load_profile("sim").model_copy(
        update={"foil": Foil(key="foil_mu", edge_energy=KNOWN)}
    )
    jobs = []
    router = SafeRouter(profile, [tmp_path], jobs.append)
    primary = set()

    def with_foil(name, doc):  # a foil channel beside the camera, as an ion-chamber pair gives
        if name == "descriptor" and doc.get("name") == "primary":
            primary.add(doc["uid"])
        if name == "event" and doc["descriptor"] in primary and foil_key:
            doc = {**doc, "data": {**doc["data"], foil_key: float(_foil_mu(doc["data"]["energy"]))}}
        router(name, doc)

    engine = RunEngine({})
    engine.subscribe(with_foil)
    engine(beamline.xanes_scan())
    (job,) = jobs
    return job


def test_foil_key_gives_the_correction(tmp_path):
    job = _run(tmp_path)
    assert job.failure is None
    assert job.energy_offset == pytest.approx(-READ_HIGH, abs=0.2)
    assert any("foil 'foil_mu'" in n for n in job.notes)
    refs = [bundled_reference(n) for n in job.references]
    maps = analyze_scan(
        job.frames,
        job.energies,
        refs,
        mode="absorbance",
        settings={"registration": {"method": "none"}},
        shifts=job.shifts,
        energy_offset=job.energy_offset,
    )
    assert maps.metadata["energy_shifts"] == {"foil": job.energy_offset}
    np.testing.assert_allclose(maps.energies, np.unique(job.energies) + job.energy_offset)


def test_missing_foil_readings_leave_the_energies_with_a_note(tmp_path):
    job = _run(tmp_path, foil_key=None)
    assert job.failure is None
    assert job.energy_offset is None
    assert any("no foil calibration" in n for n in job.notes)
