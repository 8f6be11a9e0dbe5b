"""The document router with a real RunEngine and the simulated beamline (no servers)."""

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.plans import count

from xanes_stream import analyze
from xanes_stream.documents.router import SafeRouter
from xanes_stream.io.references import bundled_reference
from xanes_stream.profiles import load_profile
from xanes_stream.sim.beamline import make_beamline


@pytest.fixture
def setup(tmp_path):
    def make(detector="hdf5", roots=None, **kwargs):
        beamline = make_beamline(detector=detector, data_dir=tmp_path, shape=(64, 64), **kwargs)
        jobs = []
        router = SafeRouter(
            load_profile("sim"), [tmp_path] if roots is None else roots, jobs.append
        )
        engine = RunEngine({})
        engine.subscribe(router)
        return beamline, router, engine, jobs

    return make


def _fractions_error(job, truth):
    refs = [bundled_reference(n) for n in job.references]
    maps = analyze(
        job.frames,
        job.energies,
        refs,
        mode="absorbance",
        settings={"registration": {"method": "none"}},
        shifts=job.shifts,
    )
    inside = truth.particles & (truth.thickness > 0.3 * truth.thickness.max())
    fitted = np.stack([maps.fraction(n) for n in truth.references])
    return np.median(np.abs(fitted - truth.fractions)[:, inside])


@pytest.mark.parametrize("detector", ["hdf5", "inline"])
def test_scan_becomes_aligned_stack(setup, detector):
    beamline, _router, engine, jobs = setup(detector)
    engine(beamline.xanes_scan())
    (job,) = jobs
    truth = beamline.truth(0)
    assert job.failure is None
    assert job.frames.shape == (len(truth.energies), 64, 64)
    np.testing.assert_allclose(job.energies, truth.energies)
    shift_error = np.abs(job.shifts + (truth.drift - truth.drift[0]))
    assert np.median(shift_error) < 0.25
    assert _fractions_error(job, truth) < 0.05


def test_non_scan_runs_are_ignored(setup, caplog):
    beamline, _router, engine, jobs = setup()
    with caplog.at_level("INFO"):
        engine(count([beamline.energy]))
    assert jobs == []
    assert "not an energy scan" in caplog.text


def test_aborted_run_gives_failure_with_reason(setup):
    from bluesky.preprocessors import msg_mutator

    beamline, _router, engine, jobs = setup()
    saved = []

    def fail_midway(msg):
        if msg.command == "save":
            saved.append(msg)
            if len(saved) == 12:  # dark, flat, then 10 energies
                raise RuntimeError("sample moved out of the beam")
        return msg

    with pytest.raises(RuntimeError, match="moved out"):
        engine(msg_mutator(beamline.xanes_scan(), fail_midway))
    (job,) = jobs
    assert job.frames is None
    assert "exit_status 'fail'" in job.failure and "sample moved out of the beam" in job.failure


def test_hostile_documents_are_survived(setup, caplog):
    beamline, router, engine, jobs = setup()
    router("bogus", {"uid": "x"})
    router("event", "not a dict")
    router("stop", {"uid": "s", "run_start": "never-started", "exit_status": "success"})
    router("start", {"no": "uid"})
    router("descriptor", {"uid": "d", "run_start": "nope"})
    router("stop", {"uid": None, "run_start": []})  # found by the fuzzer: unhashable uid
    assert router.rejected >= 3
    # a stop without its start is handed on, to be read back from Tiled, not dropped
    (orphan,) = jobs
    assert orphan.uid == "never-started" and "start document never arrived" in orphan.incomplete
    engine(beamline.xanes_scan())  # the next scan is analysed as usual
    assert len(jobs) == 2 and jobs[1].failure is None and jobs[1].incomplete is None


def test_file_outside_allowed_roots_is_refused(setup, tmp_path):
    beamline, _router, engine, jobs = setup(roots=[tmp_path / "elsewhere"])
    engine(beamline.xanes_scan())
    (job,) = jobs
    assert job.frames is None
    assert "outside the allowed roots" in job.failure


@pytest.mark.parametrize("detector", ["hdf5", "inline"])
@pytest.mark.parametrize("lost", ["event", "stream_datum", "start"])
def test_lost_documents_mark_the_run_incomplete(setup, detector, lost):
    """0MQ drops messages silently; the stop's num_events tells, and the run is handed on as
    incomplete (to be read back from Tiled) instead of being analysed short or dropped."""
    beamline, router, _engine, jobs = setup(detector)
    seen = {"n": 0}

    def lossy(name, doc):
        if name == lost:
            seen["n"] += 1
            if lost == "start" or seen["n"] == 5:
                return
        router(name, doc)

    engine = RunEngine({})
    engine.subscribe(lossy)
    engine(beamline.xanes_scan())
    if lost == "stream_datum" and detector == "inline":  # no files, nothing lost
        (job,) = jobs
        assert job.incomplete is None and job.failure is None
        return
    (job,) = jobs
    assert job.incomplete, "a lossy run must be marked incomplete"
    assert job.frames is None and job.failure is None
    if lost != "start":
        n = len(beamline.truth(0).energies)
        assert f"{n - 1} of {n} primary frames" in job.incomplete
