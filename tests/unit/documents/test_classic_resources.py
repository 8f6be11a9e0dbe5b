"""FXI's classic ophyd cameras (AD_HDF5, AD_TIFF) and its ophyd-async one, read live by the
router: real RunEngine, FXI's xanes_scan2 on the simulated TXM, frames against the truth."""

import copy
import logging
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from helpers.fxi_runs import (
    CHUNK,
    ENG_LIST,
    SHAPE,
    by_name,
    camera_events,
    datums,
    expected_frames,
    run_plan,
    stream_order,
)

from xanes_stream.documents import scan_callback as callback_module
from xanes_stream.documents.accumulator import ScanAccumulator
from xanes_stream.documents.codec import DocumentError
from xanes_stream.documents.external import frames_per_index
from xanes_stream.documents.limits import Limits
from xanes_stream.documents.resources import AD_DATASET, ClassicFrames
from xanes_stream.documents.router import SafeRouter
from xanes_stream.documents.start import read_start
from xanes_stream.profiles import load_profile
from xanes_stream.sim.areadetector import DatumPager
from xanes_stream.sim.fxi import make_fxi_beamline

CALLS: list[tuple] = []  # what the accumulator was handed: (kind, frame, energy, i0, exposures)


class RecordingAccumulator(ScanAccumulator):
    def add_dark(self, frame, *, exposures=False):
        CALLS.append(("dark", np.array(frame), None, None, exposures))
        super().add_dark(frame, exposures=exposures)

    def add_flat(self, frame, *, energy=None, i0=None, exposures=False):
        CALLS.append(("flat", np.array(frame), energy, i0, exposures))
        super().add_flat(frame, energy=energy, i0=i0, exposures=exposures)

    def add_frame(self, energy, frame, i0=None, *, exposures=False):
        CALLS.append(("primary", np.array(frame), energy, i0, exposures))
        super().add_frame(energy, frame, i0, exposures=exposures)


@pytest.fixture(scope="module")
def RE():
    engine = RunEngine({}, context_managers=[])
    yield engine
    engine.loop.call_soon_threadsafe(engine.loop.stop)


@pytest.fixture(autouse=True)
def recorded(monkeypatch):
    CALLS.clear()
    monkeypatch.setattr(callback_module, "ScanAccumulator", RecordingAccumulator)
    return CALLS


def fxi_run(RE, data_dir, detector="ad_hdf5", pages=False):
    bl = make_fxi_beamline(data_dir=data_dir, detector=detector, shape=SHAPE, noise=False)
    callback = (lambda d: DatumPager(lambda n, x: d.append((n, x)))) if pages else None
    _, docs = run_plan(RE, bl.xanes_scan2(ENG_LIST, chunk_size=CHUNK), callback)
    return bl, docs


@pytest.fixture(scope="module")
def hdf5_run(RE, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fxi_hdf5")
    bl, docs = fxi_run(RE, folder / "data")
    return folder, bl, docs


@pytest.fixture(scope="module")
def tiff_run(RE, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fxi_tiff")
    bl, docs = fxi_run(RE, folder / "data", "ad_tiff")
    return folder, bl, docs


def route(docs, data_dir, image_key="KinetixU_image", **frames):
    """The documents through a SafeRouter with the fxi profile, roots the data folder."""
    profile = load_profile("fxi")
    profile = profile.model_copy(
        update={
            "allowed_roots": [str(data_dir)],
            "image_key": image_key,
            "frames": profile.frames.model_copy(update=frames),
        }
    )
    jobs = []
    router = SafeRouter(profile, profile.allowed_roots, jobs.append)
    for name, doc in docs:
        router(name, doc)
    (job,) = jobs
    return job


def check_against_the_camera(bl, docs, job, exposures=True):
    """Every dark, primary and flat event handed on exactly the frames the camera took for
    it (the shared file read at its own point, not at the stream's count), with its energy
    and I0; and the job is the 5-energy stack."""
    assert job.failure is None and job.incomplete is None
    events = camera_events(docs)
    assert [c[0] for c in CALLS] == stream_order(len(ENG_LIST)) == [s for s, _ in events]
    for (_, event), call, truth in zip(events, CALLS, expected_frames(bl), strict=True):
        kind, frame, energy, i0, as_exposures = call
        assert as_exposures is exposures and frame.shape == (CHUNK, *SHAPE)
        np.testing.assert_array_equal(frame, truth)
        if kind != "dark":
            assert energy == pytest.approx(event["data"]["XEng"] * 1000)
            assert i0 == event["data"]["ic3"]
    assert job.frames.shape == (len(ENG_LIST), *SHAPE)
    np.testing.assert_allclose(job.energies, np.array(ENG_LIST) * 1000)


@pytest.mark.parametrize("pages", [False, True])
def test_ad_hdf5_frames_are_read_at_their_point_of_the_shared_file(RE, tmp_path, pages, caplog):
    bl, docs = fxi_run(RE, tmp_path / "data", pages=pages)
    assert bool(by_name(docs, "datum_page")) is pages
    with caplog.at_level(logging.INFO):
        job = route(docs, tmp_path / "data")
    check_against_the_camera(bl, docs, job)
    (res,) = [r for r in by_name(docs, "resource") if r["spec"] == "AD_HDF5"]
    by_id = datums(docs)
    with h5py.File(Path(res["root"]) / res["resource_path"], "r") as f:
        for (_, event), call in zip(camera_events(docs), CALLS, strict=True):
            point = by_id[event["data"]["KinetixU_image"]]["datum_kwargs"]["point_number"]
            np.testing.assert_array_equal(
                call[1], f[AD_DATASET][point * CHUNK : (point + 1) * CHUNK]
            )
    # the AD_HDF5_TS timestamps resource is ignored without a word; FXI's num_eng is read
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "AD_HDF5_TS" not in caplog.text
    assert f"{len(ENG_LIST)} energies" in caplog.text and "frames 5/5" in caplog.text


def test_ad_tiff_frames_are_read_file_by_file(tiff_run):
    folder, bl, docs = tiff_run
    check_against_the_camera(bl, docs, route(docs, folder / "data"))


def test_async_hdf5_indices_of_several_frames_are_exposures(RE, tmp_path):
    bl, docs = fxi_run(RE, tmp_path / "data", "async_hdf5")
    (descriptor,) = [d for d in by_name(docs, "descriptor") if d["name"] == "primary"]
    assert descriptor["data_keys"]["kinetix"]["shape"] == [CHUNK, *SHAPE]  # ophyd-async's
    check_against_the_camera(
        bl, docs, route(docs, tmp_path / "data", "kinetix", event_image="auto")
    )


@pytest.mark.parametrize(("event_image", "exposures"), [("auto", True), ("volume", False)])
def test_event_image_says_what_a_datums_frames_are(hdf5_run, event_image, exposures):
    folder, bl, docs = hdf5_run
    job = route(docs, folder / "data", event_image=event_image)
    assert [c[4] for c in CALLS] == [exposures] * len(CALLS)
    if exposures:
        check_against_the_camera(bl, docs, job)
    else:  # a volume of CHUNK slices per energy, as the profile says
        assert job.failure is None and job.frames.shape == (len(ENG_LIST), CHUNK, *SHAPE)


def _resource(docs, spec):
    (res,) = [d for n, d in docs if n == "resource" and d["spec"] == spec]
    return res


@pytest.mark.parametrize("how", ["dot-dot", "absolute"])
def test_a_resource_path_out_of_the_roots_is_refused(hdf5_run, how):
    folder, _, docs = hdf5_run
    docs = copy.deepcopy(docs)
    res = _resource(docs, "AD_HDF5")
    outside = folder / "outside" / "frames.h5"
    outside.parent.mkdir(exist_ok=True)
    shutil.copy(Path(res["root"]) / res["resource_path"], outside)
    res["resource_path"] = (
        os.path.relpath(outside, res["root"]) if how == "dot-dot" else str(outside)
    )
    job = route(docs, folder / "data")
    assert job.frames is None and "outside the allowed roots" in job.failure
    assert not CALLS


@pytest.mark.parametrize("template", ["%s%s_%6.6d.tiff%s", "/etc/passwd%.0s%.0s%d", "%s%s"])
def test_a_tiff_template_of_another_shape_is_refused(tiff_run, template):
    folder, _, docs = tiff_run
    docs = copy.deepcopy(docs)
    _resource(docs, "AD_TIFF")["resource_kwargs"]["template"] = template
    job = route(docs, folder / "data")
    assert job.frames is None and "template" in job.failure and "not of the shape" in job.failure


def test_an_unknown_spec_is_said_once_and_is_the_reason(hdf5_run, caplog):
    folder, _, docs = hdf5_run
    docs = copy.deepcopy(docs)
    _resource(docs, "AD_HDF5")["spec"] = "FOO"
    with caplog.at_level(logging.INFO):
        job = route(docs, folder / "data")
    said = [r for r in caplog.records if "spec 'FOO'" in r.getMessage()]
    assert len(said) == 1 and "does not read" in said[0].getMessage()
    assert job.failure == "frames are in files of spec 'FOO', which this service does not read"
    assert job.incomplete is None and job.frames is None


def test_frames_not_received_are_said_so(hdf5_run):
    folder, _, docs = hdf5_run
    primary = {d["uid"] for d in by_name(docs, "descriptor") if d["name"] == "primary"}
    first = next(i for i, (n, d) in enumerate(docs) if n == "event" and d["descriptor"] in primary)
    job = route(docs[:first] + docs[first + 1 :], folder / "data")
    n = len(ENG_LIST)
    assert job.incomplete == f"only {n - 1} of {n} primary frames received (1 not received)"


def test_the_energies_of_fxis_start_are_announced():
    profile, limits = load_profile("fxi"), Limits()
    for start, expected in [
        ({"num_eng": 5, "eng_list": ENG_LIST}, 5),
        ({"eng_list": ENG_LIST[:3]}, 3),
        ({"num_points": 4, "num_eng": 5}, 4),
        ({"num_eng": True, "eng_list": ["8.3", 8.4]}, None),
        ({"num_eng": -2}, None),
    ]:
        reading = read_start({"uid": "u", **start}, {}, profile, limits)
        assert reading.expected == expected and reading.failure is None
        assert reading.event_image == "exposures"
    reading = read_start({"uid": "u", "num_eng": 10**6}, {}, profile, limits)
    assert "more than the 100000" in reading.failure


def test_classic_frames_are_bounded(hdf5_run):
    folder, _, docs = hdf5_run
    res = _resource(docs, "AD_HDF5")
    ids = [e["data"]["KinetixU_image"] for _, e in camera_events(docs)]
    by_id = datums(docs)
    frames = ClassicFrames([folder / "data"], max_frames=3, max_bytes=CHUNK * 24 * 32 * 2 - 1)
    frames.add_resource(res)
    frames.add_datum(by_id[ids[0]])
    frames.add_datum(by_id[ids[1]])
    frames.add_datum(by_id[ids[2]])
    with pytest.raises(DocumentError, match="more than 3 datums wait"):
        frames.add_datum(by_id[ids[3]])
    with pytest.raises(DocumentError, match="MiB left for the scan"):
        frames.read(ids[0])
    frames.max_bytes = None
    assert frames.read(ids[1]).shape == (CHUNK, *SHAPE)
    frames.add_resource({**res, "uid": "big", "resource_kwargs": {"frame_per_point": 10**9}})
    frames.add_datum({"resource": "big", "datum_id": "big/0", "datum_kwargs": {"point_number": 0}})
    with pytest.raises(DocumentError, match="frame_per_point 1000000000 is not 1 to 3"):
        frames.read("big/0")


def test_frames_per_index_follow_the_descriptor_shape():
    assert frames_per_index(None, (24, 32)) == 1
    assert frames_per_index([24, 32], (24, 32)) == 1  # ophyd-async before collections
    assert frames_per_index([1, 24, 32], (24, 32)) == 1
    assert frames_per_index([3, 24, 32], (24, 32)) == 3
    with pytest.raises(DocumentError, match="not frames of the file"):
        frames_per_index([3, 24, 31], (24, 32))
