"""The router hands a tomographic run on as a job of reconstructed volumes, which the one
orchestration maps like any 3-D scan."""

import numpy as np
import pytest
from bluesky import RunEngine
from scipy import ndimage as ndi

from xanes_stream.documents.router import SafeRouter
from xanes_stream.pipeline.scan import analyze_scan
from xanes_stream.profiles import load_profile
from xanes_stream.sim.devices import SimAxis
from xanes_stream.sim.tomo_devices import (
    TomoAreaDetector,
    TomoAsyncDetector,
    TomoCamera,
    tomo_xanes_scan,
)
from xanes_stream.sim.tomography import make_tomo_phantom


def test_a_tomographic_run_becomes_a_job_of_volumes():
    phantom = make_tomo_phantom(20, n_angles=30, center_offset=0.6, seed=8)
    energy, rotation = SimAxis(name="energy", egu="eV"), SimAxis(name="rotation", egu="deg")
    camera = TomoCamera(name="cam", phantom=phantom, energy=energy, rotation=rotation)
    jobs, progress = [], []
    router = SafeRouter(
        load_profile("sim"),
        [],
        jobs.append,
        progress=lambda job, seen, expected: progress.append((seen, expected)),
    )
    engine = RunEngine({}, context_managers=[])
    engine.subscribe(router)
    engine(tomo_xanes_scan(camera, energy, rotation))

    (job,) = jobs
    assert job.failure is None, job.failure
    assert job.frames.shape == (phantom.energies.size, 20, 20, 20)
    np.testing.assert_allclose(job.energies, phantom.energies)
    assert progress[-1] == (phantom.energies.size * 30,) * 2
    (note,) = [n for n in job.notes if "reconstructed per energy" in n]
    assert abs(float(note.rsplit("centre ", 1)[1].rstrip(")")) - phantom.center) < 0.5

    maps = analyze_scan(job.frames, job.energies, phantom.references, mode="absorbance")
    inner = ndi.binary_erosion(phantom.labels > 0)
    assert np.abs(maps.fractions[:, inner] - phantom.fractions[:, inner]).mean() < 0.1


def test_a_tomographic_run_without_its_keys_fails_with_a_reason():
    jobs = []
    router = SafeRouter(load_profile("sim"), [], jobs.append)
    md = {"references": ["NiO"], "tomography": {"angles": [0, 90, 180]}}
    router("start", {"uid": "0f" * 16, "time": 0.0, "xanes": md, "plan_name": "tomo_xanes_scan"})
    router("stop", {"uid": "1f" * 16, "run_start": "0f" * 16, "time": 1.0,
                    "exit_status": "success"})  # fmt: skip
    (job,) = jobs
    assert job.failure == "xanes.tomography has no 'image_key'" and job.frames is None


def test_a_tomographic_run_beyond_the_memory_limit_fails_with_a_reason():
    from xanes_stream.documents.limits import Limits

    phantom = make_tomo_phantom(16, n_angles=20, energies=np.linspace(8250, 8450, 3), seed=2)
    energy, rotation = SimAxis(name="energy", egu="eV"), SimAxis(name="rotation", egu="deg")
    camera = TomoCamera(name="cam", phantom=phantom, energy=energy, rotation=rotation)
    jobs = []
    limit = 20 * 16 * 16 * 4 * 2  # two energies' projections; the volumes come on top
    router = SafeRouter(load_profile("sim"), [], jobs.append, limits=Limits(max_scan_bytes=limit))
    engine = RunEngine({}, context_managers=[])
    engine.subscribe(router)
    engine(tomo_xanes_scan(camera, energy, rotation))
    (job,) = jobs
    assert "limits.max_scan_bytes" in job.failure and job.frames is None


def _volumes(camera, phantom, energy, rotation, roots):
    jobs = []
    engine = RunEngine({}, context_managers=[])
    engine.subscribe(SafeRouter(load_profile("sim"), roots, jobs.append))
    engine(tomo_xanes_scan(camera, energy, rotation))
    (job,) = jobs
    return job


@pytest.mark.parametrize("detector", ["classic", "ophyd-async"])
def test_projections_from_detector_files_give_the_inline_volumes(tmp_path, detector):
    """FXI's cameras write HDF5 files (a classic areaDetector's resource/datum, or an
    ophyd-async detector's stream_resource/stream_datum; three exposures per angle here): the
    volumes reconstructed from the file are those of the same projections inline."""
    phantom = make_tomo_phantom(16, n_angles=24, energies=np.linspace(8250, 8450, 4), seed=5)
    energy, rotation = SimAxis(name="energy", egu="eV"), SimAxis(name="rotation", egu="deg")
    devices = {"phantom": phantom, "energy": energy, "rotation": rotation}
    inline = _volumes(TomoCamera(name="cam", **devices), phantom, energy, rotation, [])
    if detector == "classic":
        camera = TomoAreaDetector(name="tomo", directory=tmp_path, **devices)
        camera.cam.num_images.put(3)
    else:
        camera = TomoAsyncDetector(name="tomo", directory=tmp_path, exposures=3, **devices)
    filed = _volumes(camera, phantom, energy, rotation, [tmp_path])
    assert filed.failure is None, filed.failure
    assert list(tmp_path.rglob("*.h5"))  # the frames went through a file
    np.testing.assert_allclose(filed.frames, inline.frames, rtol=1e-5, atol=1e-6)
    assert not [n for n in filed.notes if "not received" in n]

    elsewhere = _volumes(camera, phantom, energy, rotation, [tmp_path / "elsewhere"])
    assert "outside the allowed roots" in elsewhere.failure and elsewhere.frames is None


def test_each_energy_is_reconstructed_as_soon_as_its_projections_are_in(caplog):
    """Volumes come while the run goes on: energy i's once its n_angles projections are in."""
    import logging

    phantom = make_tomo_phantom(16, n_angles=20, energies=np.linspace(8250, 8450, 4), seed=3)
    energy, rotation = SimAxis(name="energy", egu="eV"), SimAxis(name="rotation", egu="deg")
    camera = TomoCamera(name="cam", phantom=phantom, energy=energy, rotation=rotation)
    events, made = [], []

    class Count(logging.Handler):
        def emit(self, record):
            if record.getMessage().endswith("eV reconstructed"):
                made.append(len(events))

    handler, name = Count(), "xanes_stream.documents.tomo_job"
    logging.getLogger(name).addHandler(handler)
    try:
        jobs = []
        engine = RunEngine({}, context_managers=[])
        engine.subscribe(lambda name, doc: events.append(doc) if name == "event" else None)
        engine.subscribe(SafeRouter(load_profile("sim"), [], jobs.append))
        with caplog.at_level(logging.INFO, logger=name):
            engine(tomo_xanes_scan(camera, energy, rotation))
    finally:
        logging.getLogger(name).removeHandler(handler)
    assert jobs[0].failure is None
    assert made == [20 * (i + 1) for i in range(phantom.energies.size)]


def test_an_event_without_its_angle_fails_the_run_with_a_reason():
    phantom = make_tomo_phantom(16, n_angles=12, energies=np.linspace(8250, 8450, 3), seed=4)
    energy, rotation = SimAxis(name="energy", egu="eV"), SimAxis(name="rotation", egu="deg")
    camera = TomoCamera(name="cam", phantom=phantom, energy=energy, rotation=rotation)
    jobs = []
    router = SafeRouter(load_profile("sim"), [], jobs.append)

    def drop_angle(name, doc):  # a broken recorder: the rotation is missing from the events
        if name == "event":
            doc = {**doc, "data": {k: v for k, v in doc["data"].items() if k != "rotation"}}
        router(name, doc)

    engine = RunEngine({}, context_managers=[])
    engine.subscribe(drop_angle)
    engine(tomo_xanes_scan(camera, energy, rotation))
    (job,) = jobs
    assert "has no ['rotation']" in job.failure and job.frames is None
