"""The simulated TXM and its plans: fast, no servers."""

import time
from collections import Counter

import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky import plans as bp
from event_model import DocumentNames, schema_validators

from xanes_stream.sim.beamline import make_beamline, xanes_scan
from xanes_stream.sim.devices import DATASET
from xanes_stream.sim.phantom import make_phantom
from xanes_stream.sim.run import connect_publisher, run_simulated_experiment
from xanes_stream.sim.txm import BeamlineError

ENERGIES = [8250.0, 8330.0, 8345.0, 8350.0, 8360.0, 8400.0]
SHAPE = (48, 64)


@pytest.fixture(scope="module")
def RE():
    engine = RunEngine({}, context_managers=[])
    yield engine
    engine.loop.call_soon_threadsafe(engine.loop.stop)


def run_plan(RE, plan):
    docs = []
    token = RE.subscribe(lambda name, doc: docs.append((name, doc)))
    try:
        uids = RE(plan)
    finally:
        RE.unsubscribe(token)
    return uids, docs


def frames_by_stream(docs, key="camera_image"):
    """Inline images of each stream, from the events."""
    names = {d["uid"]: d["name"] for n, d in docs if n == "descriptor"}
    out = {}
    for name, doc in docs:
        if name == "event":
            out.setdefault(names[doc["descriptor"]], []).append(np.asarray(doc["data"][key]))
    return {k: np.stack(v) for k, v in out.items()}


def optical_density(frames, dark, flat):
    dark = dark.astype(np.float64).mean(axis=0)
    flat = flat.astype(np.float64).mean(axis=0)
    return -np.log((frames.astype(np.float64) - dark) / (flat - dark))


# ---- devices -------------------------------------------------------------------------------


def test_noise_free_frames_give_the_phantom_optical_density(RE):
    bl = make_beamline(detector="inline", shape=SHAPE, noise=False, drift_px=0.0, seed=3)
    _, docs = run_plan(RE, bl.xanes_scan(ENERGIES))
    f = frames_by_stream(docs)
    od = optical_density(f["primary"], f["dark"], f["flat"])
    truth = bl.truth(0)
    # the same sample made by make_phantom (first energy = the E^-2.8 reference energy)
    phantom = make_phantom(
        SHAPE,
        energies=np.array(ENERGIES),
        references=("NiO", "LiNiO2"),
        seed=3,
        drift=0.0,
        noise=False,
        fractions_override=truth.fractions,
    )
    np.testing.assert_array_equal(phantom.particles, truth.particles)
    np.testing.assert_allclose(od, -np.log(phantom.transmission), atol=2e-5)
    np.testing.assert_allclose(truth.drift, 0.0)
    assert truth.energies == ENERGIES


def test_noisy_drifting_frames_match_the_truth_within_poisson_noise(RE):
    bl = make_beamline(detector="inline", shape=SHAPE, counts=20_000, drift_px=0.3, seed=5)
    _, docs = run_plan(RE, bl.xanes_scan(ENERGIES, dark_frames=4, flat_frames=4))
    f = frames_by_stream(docs)
    assert f["dark"].shape == (4, *SHAPE) and f["flat"].shape == (4, *SHAPE)
    od = optical_density(f["primary"], f["dark"], f["flat"])
    truth = bl.truth(0)
    drift = truth.drift
    assert drift.shape == (len(ENERGIES), 2) and np.all(drift[0] == 0)
    steps = np.abs(np.diff(drift, axis=0))
    assert steps.max() < 2.0 and np.all(steps.sum(axis=1) > 0)  # sub-pixel random walk
    for i, energy in enumerate(ENERGIES):
        expected = bl.sim.optical_density(energy, truth.progress, tuple(drift[i]))
        residual = od[i] - expected
        sigma = np.sqrt(np.exp(expected) / 20_000)  # Poisson noise of -ln(I/I0)
        assert abs(residual.mean()) < 0.01
        assert 0.7 < (residual / sigma).std() < 1.5


def test_frames_are_reproducible_and_scans_differ(RE):
    runs = []
    for _ in range(2):
        bl = make_beamline(detector="inline", shape=SHAPE, seed=9)
        _, docs = run_plan(RE, bl.in_operando_series(2, energies=ENERGIES[:3]))
        runs.append((bl, docs))
    (bl_a, docs_a), (_, docs_b) = runs
    images_a = [d["data"]["camera_image"] for n, d in docs_a if n == "event"]
    images_b = [d["data"]["camera_image"] for n, d in docs_b if n == "event"]
    assert all(np.array_equal(a, b) for a, b in zip(images_a, images_b, strict=True))
    assert not np.array_equal(bl_a.truth(0).drift, bl_a.truth(1).drift)


def test_the_sample_reacts_between_scans_of_a_series(RE):
    bl = make_beamline(detector="inline", shape=SHAPE, seed=1, noise=False)
    uids, docs = run_plan(RE, bl.in_operando_series(3, energies=ENERGIES[:2]))
    assert len(uids) == 3 and len(bl.truths) == 3
    inside = bl.truth(0).particles
    nio = [bl.truth(i).fraction("NiO")[inside].mean() for i in range(3)]
    lin = [bl.truth(i).fraction("LiNiO2")[inside].mean() for i in range(3)]
    assert nio[0] > 0.75 and lin[-1] > 0.75 and nio[0] > nio[1] > nio[2]
    for truth in bl.truths:
        total = truth.fractions.sum(axis=0)
        np.testing.assert_allclose(total[truth.particles], 1.0, atol=1e-6)
        assert np.all(total[~truth.particles] == 0) and np.all(truth.fractions >= 0)
    starts = [d for n, d in docs if n == "start"]
    assert len({s["xanes"]["series"] for s in starts}) == 1
    assert [s["xanes"]["series_index"] for s in starts] == [0, 1, 2]
    assert [bl.truth(i).progress for i in range(3)] == [0.0, 0.5, 1.0]


# ---- plans and documents ----------------------------------------------------------------


def validate(docs):
    for name, doc in docs:
        schema_validators[DocumentNames[name]].validate(doc)


def test_hdf5_camera_run_documents_and_files(RE, tmp_path):
    bl = make_beamline(detector="hdf5", shape=SHAPE, seed=4, data_dir=tmp_path)
    (uid,), docs = run_plan(RE, bl.xanes_scan(ENERGIES, md={"operator": "sim"}))
    validate(docs)
    names = [n for n, _ in docs]
    per_stream = ["descriptor", "stream_resource", "stream_datum", "event"]
    tail = ["stream_datum", "event"] * (len(ENERGIES) - 1)
    assert names == ["start", *per_stream * 3, *tail, "stop"]
    start = docs[0][1]
    assert start["uid"] == uid and start["plan_name"] == "xanes_scan"
    assert start["num_points"] == len(ENERGIES) and start["scan_id"] >= 1
    assert start["operator"] == "sim" and start["sample"] == bl.settings.sample
    xanes = start["xanes"]
    assert xanes["references"] == ["NiO", "LiNiO2"] and xanes["energies"] == ENERGIES
    assert xanes["series"] is None and xanes["sample"] == start["sample"]
    assert xanes["image_key"] == "camera_image" and xanes["energy_key"] == "energy"
    assert docs[-1][1]["exit_status"] == "success"

    descriptors = {d["uid"]: d for n, d in docs if n == "descriptor"}
    assert sorted(d["name"] for d in descriptors.values()) == ["dark", "flat", "primary"]
    for d in descriptors.values():
        key = d["data_keys"]["camera_image"]
        assert key["external"] == "STREAM:" and key["shape"] == list(SHAPE)
        assert key["dtype_numpy"] == "<f4" and d["data_keys"]["energy"]["units"] == "eV"
    resources = {d["uid"]: d for n, d in docs if n == "stream_resource"}
    used_by = {}
    for name, doc in docs:
        if name == "stream_datum":
            used_by.setdefault(doc["stream_resource"], set()).add(doc["descriptor"])
    assert all(len(v) == 1 for v in used_by.values())  # one stream per resource
    counts = Counter()
    for sres_uid, desc_uids in used_by.items():
        sres = resources[sres_uid]
        assert sres["mimetype"] == "application/x-hdf5"
        assert sres["parameters"] == {"dataset": DATASET, "chunk_shape": [1, *SHAPE]}
        path = sres["uri"].removeprefix("file://localhost")
        assert path.startswith(str(tmp_path.resolve()))
        with h5py.File(path, "r") as f:
            stream = descriptors[desc_uids.pop()]["name"]
            counts[stream] = f[DATASET].shape[0]
            assert f[DATASET].shape[1:] == SHAPE and f[DATASET].dtype == np.float32
    assert counts == {"dark": 1, "flat": 1, "primary": len(ENERGIES)}
    assert len(bl.truth(0).files) == 3
    events = [d for n, d in docs if n == "event"]
    assert [e["data"]["energy"] for e in events[2:]] == ENERGIES
    assert bl.shutter.position == 1 and bl.sample_stage.position == 0


def test_hdf5_and_inline_cameras_record_the_same_frames(RE, tmp_path):
    stacks = []
    for detector in ("hdf5", "inline"):
        bl = make_beamline(detector=detector, shape=SHAPE, seed=8, data_dir=tmp_path)
        _, docs = run_plan(RE, bl.xanes_scan(ENERGIES[:3]))
        if detector == "inline":
            stacks.append(frames_by_stream(docs)["primary"])
        else:
            with h5py.File(bl.truth(0).files[-1], "r") as f:
                stacks.append(f[DATASET][()])
    np.testing.assert_array_equal(*stacks)


def test_count_and_uint16_frames(RE):
    bl = make_beamline(detector="inline", shape=SHAPE, dtype="uint16")
    _, docs = run_plan(RE, bp.count([bl.camera], num=2))
    validate(docs)
    images = [d["data"]["camera_image"] for n, d in docs if n == "event"]
    assert len(images) == 2 and all(i.dtype == np.uint16 for i in images)
    assert docs[0][1]["plan_name"] == "count" and "xanes" not in docs[0][1]


def test_bad_requests_are_errors(RE):
    with pytest.raises(BeamlineError, match="data_dir"):
        make_beamline(detector="hdf5")
    with pytest.raises(BeamlineError, match="shape"):
        make_beamline(detector="inline", shape=(4, 4))
    with pytest.raises(BeamlineError, match="detector"):
        make_beamline(detector="ccd")
    bl = make_beamline(detector="inline", shape=SHAPE)
    with pytest.raises(BeamlineError, match="energies"):
        RE(bl.xanes_scan([]))
    with pytest.raises(BeamlineError, match="no scan 5"):
        bl.truth(5)
    with pytest.raises(BeamlineError, match="references"):
        RE(xanes_scan(object(), bl.energy, ENERGIES))


def test_run_simulated_experiment_without_servers():
    seen = []
    runs = run_simulated_experiment(
        None,
        None,
        None,
        n_scans=2,
        detector="inline",
        data_dir=None,
        shape=SHAPE,
        energies=ENERGIES[:2],
        callbacks=[lambda name, doc: seen.append((name, doc))],
    )
    starts = [d for n, d in seen if n == "start"]
    assert [r.uid for r in runs] == [s["uid"] for s in starts]
    assert [r.truth.uid for r in runs] == [r.uid for r in runs]
    assert runs[0].truth.progress == 0.0 and runs[1].truth.progress == 1.0


def test_publisher_without_a_proxy_fails_fast():
    from xanes_stream.devtools.launcher import free_port

    t0 = time.monotonic()
    with pytest.raises(BeamlineError, match="no 0MQ proxy"):
        connect_publisher(f"127.0.0.1:{free_port()}", timeout=0.5)
    assert time.monotonic() - t0 < 5
