"""FXI's xanes_scan2 on the simulated TXM: the documents FXI emits, and frames where they say."""

from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
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

from xanes_stream.sim.areadetector import AD_DATASET, TIMESTAMP_DATASET, DatumPager
from xanes_stream.sim.fxi import IC3_GAIN, IC4_GAIN, make_fxi_beamline
from xanes_stream.sim.run import run_simulated_experiment
from xanes_stream.sim.txm import BeamlineError


@pytest.fixture(scope="module")
def RE():
    engine = RunEngine({}, context_managers=[])
    yield engine
    engine.loop.call_soon_threadsafe(engine.loop.stop)


def fxi_run(RE, tmp_path, detector="ad_hdf5", callback=None, **settings):
    bl = make_fxi_beamline(
        data_dir=tmp_path, detector=detector, shape=SHAPE, noise=False, **settings
    )
    (uid,), docs = run_plan(RE, bl.xanes_scan2(ENG_LIST, chunk_size=CHUNK), callback)
    return bl, uid, docs


def check_start_and_streams(bl, docs, image_key):
    (start,) = by_name(docs, "start")
    assert start["plan_name"] == "xanes_scan2"
    assert start["num_eng"] == len(ENG_LIST) and start["eng_list"] == ENG_LIST
    assert start["chunk_size"] == start["num_bkg_images"] == start["num_dark_images"] == CHUNK
    assert start["XEng"] == pytest.approx(8.3) and start["hints"] == {}
    assert start["detectors"] == [bl.camera.name, "ic3", "ic4"]
    assert start["motors"] == ["XEng", "zps_sx", "zps_sy", "zps_sz", "zps_pi_r"]
    assert start["plan_args"]["eng_list"] == "eng_list"  # sic, as FXI records it
    assert "xanes" not in start  # FXI has no md["xanes"]
    descriptors = {d["name"]: d for d in by_name(docs, "descriptor")}
    assert set(descriptors) == {"baseline", "dark", "primary", "flat"}
    keys = descriptors["primary"]["data_keys"]
    assert {"ic3", "ic4", "XEng", "zps_sx", "zps_pi_r", image_key} <= set(keys)
    assert keys["XEng"]["units"] == "keV" and keys["ic3"]["units"] == "A"
    assert list(keys[image_key]["shape"]) == [CHUNK, *SHAPE]
    events = camera_events(docs)
    assert [s for s, _ in events] == stream_order(len(ENG_LIST))
    primary = [e for s, e in events if s == "primary"]
    assert [e["data"]["XEng"] for e in primary] == pytest.approx(ENG_LIST)
    return start, events


def check_ion_chambers(bl, events):
    """ic3/ic4 follow the incident beam of each exposure: 0 dark, ~1 otherwise, not constant,
    so I0 normalization of sample by flat can be checked against the truth."""
    exposures = bl.truth(0).exposures
    assert [x.kind for x in exposures] == [
        {"dark": "dark", "primary": "sample", "flat": "flat"}[s] for s, _ in events
    ]
    for (_, event), x in zip(events, exposures, strict=True):
        assert event["data"]["ic3"] == pytest.approx(IC3_GAIN * x.intensity, rel=1e-12)
        assert event["data"]["ic4"] == pytest.approx(IC4_GAIN * x.intensity, rel=1e-12)
    beam = np.array([x.intensity for x in exposures[1:]])
    assert exposures[0].intensity == 0 and np.all(np.abs(beam - 1) < 0.1) and beam.std() > 1e-3


def test_ad_hdf5_run_has_fxis_documents_and_frames(RE, tmp_path):
    bl, uid, docs = fxi_run(RE, tmp_path)
    _, events = check_start_and_streams(bl, docs, "KinetixU_image")
    resources = by_name(docs, "resource")
    assert sorted(r["spec"] for r in resources) == ["AD_HDF5", "AD_HDF5_TS"]  # one file
    assert len({r["resource_path"] for r in resources}) == 1
    (res,) = [r for r in resources if r["spec"] == "AD_HDF5"]
    assert res["root"] == str(tmp_path.resolve()) and res["run_start"] == uid
    assert res["resource_kwargs"] == {"frame_per_point": CHUNK}
    assert res["path_semantics"] == "posix"
    by_id = datums(docs)
    points = [by_id[e["data"]["KinetixU_image"]]["datum_kwargs"]["point_number"] for _, e in events]
    assert points == list(range(len(events)))  # runs across dark, primary and flat
    stamps = [by_id[e["data"]["KinetixU_timestamps"]] for _, e in events]
    assert {d["resource"] for d in stamps} == {r["uid"] for r in resources} - {res["uid"]}
    path = Path(res["root"]) / res["resource_path"]
    expected = expected_frames(bl)
    with h5py.File(path, "r") as f:
        data = f[AD_DATASET]
        assert data.shape == (len(events) * CHUNK, *SHAPE) and data.dtype == np.uint16
        for point, frames in zip(points, expected, strict=True):
            np.testing.assert_array_equal(data[point * CHUNK : (point + 1) * CHUNK], frames)
        assert f[TIMESTAMP_DATASET].shape == (len(events) * CHUNK,)
    check_ion_chambers(bl, events)
    assert bl.truth(0).files == [str(path)]


def test_i0_normalization_recovers_the_optical_density(RE, tmp_path):
    bl, _, docs = fxi_run(RE, tmp_path, dtype="float32")
    events = camera_events(docs)
    (res,) = [r for r in by_name(docs, "resource") if r["spec"] == "AD_HDF5"]
    by_id = datums(docs)
    with h5py.File(Path(res["root"]) / res["resource_path"], "r") as f:

        def frames(event):
            point = by_id[event["data"]["KinetixU_image"]]["datum_kwargs"]["point_number"]
            return f[AD_DATASET][point * CHUNK : (point + 1) * CHUNK].mean(axis=0)

        dark = frames(events[0][1])
        truth = bl.truth(0)
        pairs = list(zip(events[1::2], events[2::2], strict=True))
        for i, ((_, sample), (_, flat)) in enumerate(pairs):
            ratio = (frames(sample) - dark) / (frames(flat) - dark)
            i0 = sample["data"]["ic3"] / flat["data"]["ic3"]
            od = bl.sim.optical_density(ENG_LIST[i] * 1000, truth.progress, truth.drift[i])
            np.testing.assert_allclose(-np.log(ratio / i0), od, atol=1e-4)
            assert abs(i0 - 1) > 1e-4  # without I0 the flat would not match


def test_ad_tiff_run_writes_a_file_per_frame_named_by_the_resource(RE, tmp_path):
    bl, _, docs = fxi_run(RE, tmp_path, detector="ad_tiff")
    _, events = check_start_and_streams(bl, docs, "KinetixU_image")
    (res,) = by_name(docs, "resource")
    assert res["spec"] == "AD_TIFF"
    kwargs = res["resource_kwargs"]
    assert kwargs["template"] == "%s%s_%6.6d.tiff" and kwargs["frame_per_point"] == CHUNK
    folder = str(Path(res["root"]) / res["resource_path"]) + "/"
    by_id = datums(docs)
    expected = expected_frames(bl)
    for (_, event), frames in zip(events, expected, strict=True):
        point = by_id[event["data"]["KinetixU_image"]]["datum_kwargs"]["point_number"]
        for i in range(CHUNK):  # what the AD_TIFF handler reads
            name = kwargs["template"] % (folder, kwargs["filename"], point * CHUNK + i)
            np.testing.assert_array_equal(tifffile.imread(name), frames[i])
    assert len(list(Path(folder).glob("*.tiff"))) == len(events) * CHUNK
    check_ion_chambers(bl, events)


def test_datum_pages_carry_the_same_datums(RE, tmp_path):
    _, _, docs = fxi_run(RE, tmp_path, callback=lambda d: DatumPager(lambda n, x: d.append((n, x))))
    assert not by_name(docs, "datum")
    pages = by_name(docs, "datum_page")
    assert len(pages) == 2 * len(camera_events(docs))  # one per resource per event
    by_id = datums(docs)
    for _, event in camera_events(docs):
        assert event["data"]["KinetixU_image"] in by_id
    names = [n for n, _ in docs]
    first_event = names.index("event", names.index("datum_page"))
    assert names.index("datum_page") < first_event  # pages before the events that use them


def test_async_run_shares_one_stream_resource_across_streams(RE, tmp_path):
    bl, uid, docs = fxi_run(RE, tmp_path, detector="async_hdf5")
    assert bl.camera.name == "kinetix"
    _, events = check_start_and_streams(bl, docs, "kinetix")
    assert not by_name(docs, "resource") and not by_name(docs, "datum")
    (sres,) = by_name(docs, "stream_resource")
    assert sres["data_key"] == "kinetix" and sres["run_start"] == uid
    assert sres["mimetype"] == "application/x-hdf5"
    assert sres["parameters"]["dataset"] == AD_DATASET
    sdatums = by_name(docs, "stream_datum")
    descriptors = {d["uid"]: d["name"] for d in by_name(docs, "descriptor")}
    assert [descriptors[d["descriptor"]] for d in sdatums] == [s for s, _ in events]
    assert [(d["indices"]["start"], d["indices"]["stop"]) for d in sdatums] == [
        (i, i + 1) for i in range(len(events))
    ]
    path = sres["uri"].removeprefix("file://localhost")
    with h5py.File(path, "r") as f:
        data = f[AD_DATASET]
        assert data.shape == (len(events) * CHUNK, *SHAPE)
        for datum, frames in zip(sdatums, expected_frames(bl), strict=True):
            start, stop = datum["indices"]["start"] * CHUNK, datum["indices"]["stop"] * CHUNK
            np.testing.assert_array_equal(data[start:stop], frames)
    check_ion_chambers(bl, events)


def test_references_add_only_what_fxi_has_no_key_for(RE, tmp_path):
    bl = make_fxi_beamline(data_dir=tmp_path, shape=SHAPE, noise=False)
    _, docs = run_plan(RE, bl.xanes_scan2(ENG_LIST[:2], chunk_size=1, references=["NiO", "LiNiO2"]))
    (start,) = by_name(docs, "start")
    assert start["xanes"] == {"version": 1, "references": ["NiO", "LiNiO2"]}


def test_noisy_chunks_are_independent_frames_of_one_exposure(RE, tmp_path):
    bl = make_fxi_beamline(data_dir=tmp_path, shape=SHAPE, drift_px=0.3)
    _, docs = run_plan(RE, bl.xanes_scan2(ENG_LIST[:2], chunk_size=4))
    (res,) = [r for r in by_name(docs, "resource") if r["spec"] == "AD_HDF5"]
    with h5py.File(Path(res["root"]) / res["resource_path"], "r") as f:
        chunk = f[AD_DATASET][4:8].astype(float)  # the first primary event
    assert not np.array_equal(chunk[0], chunk[1])
    truth = bl.truth(0)
    x = truth.exposures[1]
    mean = bl.sim.mean_frame("sample", x.energy, truth.progress, x.drift, x.intensity)
    z = (chunk - mean) / np.sqrt(mean)
    assert abs(z.mean()) < 0.1 and 0.8 < z.std() < 1.2
    assert len(truth.energies) == 2 and truth.drift.shape == (2, 2)  # one drift step per event


def test_bad_requests_say_what_is_wrong(tmp_path):
    with pytest.raises(BeamlineError, match="FXI's camera"):
        make_fxi_beamline(data_dir=tmp_path, detector="inline")
    with pytest.raises(BeamlineError, match="data_dir"):
        make_fxi_beamline()
    bl = make_fxi_beamline(data_dir=tmp_path, shape=SHAPE)
    with pytest.raises(BeamlineError, match="keV"):
        next(bl.xanes_scan2([8300.0, 8350.0]))


@pytest.mark.parametrize("detector", ["ad_hdf5", "ad_tiff", "async_hdf5", "async_tiff"])
def test_run_simulated_experiment_runs_fxis_plan(RE, tmp_path, detector):
    docs = []
    runs = run_simulated_experiment(
        None,
        None,
        None,
        n_scans=2,
        plan="xanes_scan2",
        detector=detector,
        data_dir=tmp_path,
        shape=SHAPE,
        energies=[8300.0, 8350.0],
        plan_kwargs={"chunk_size": 2},
        callbacks=[lambda name, doc: docs.append((name, doc))],
        datum_page=detector == "ad_hdf5",
        run_engine=RE,
    )
    starts = by_name(docs, "start")
    assert [s["uid"] for s in starts] == [r.uid for r in runs]
    assert [s["eng_list"] for s in starts] == [[8.3, 8.35]] * 2
    assert runs[0].truth.progress == 0 and runs[1].truth.progress == 1
    if detector == "ad_hdf5":
        assert by_name(docs, "datum_page") and not by_name(docs, "datum")
