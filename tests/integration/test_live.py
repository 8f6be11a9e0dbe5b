"""The live service with the real pieces: a Tiled server, the 0MQ proxy, a RunEngine with the
simulated beamline publishing through both, and results read back with the Tiled client."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from bluesky import RunEngine
from bluesky.plans import count
from bluesky.preprocessors import msg_mutator
from helpers.library10 import library10

from xanes_stream.sim.beamline import make_beamline
from xanes_stream.sim.run import connect_publisher, run_simulated_experiment
from xanes_stream.store.tiled_store import TiledResultStore

pytestmark = pytest.mark.timeout(300)
#: A short Ni K-edge scan: TiledWriter archives each frame as it comes (~0.2 s a frame here).
ENERGIES = np.concatenate(
    [np.arange(8250, 8320, 10.0), np.arange(8320, 8370, 2.0), np.arange(8370, 8451, 10.0)]
)
WAIT = 90.0
MAPS = (
    "thickness",
    "error",
    "r_factor",
    "chi2_red",
    "edge_energy",
    "peak_energy",
    "mask",
    "clusters",
    "shifts",
    "energies",
)


@pytest.fixture(scope="module")
def live(start_pipeline):
    return start_pipeline()


def simulate(live, **options):
    """``run_simulated_experiment`` on the live pipeline: through Tiled and the 0MQ proxy,
    detector files in the pipeline's data folder."""
    return run_simulated_experiment(
        live.tiled.uri,
        live.tiled.api_key,
        live.proxy.in_address,
        data_dir=live.data_dir,
        **options,
    )


def core(truth):
    """The thick part of the particles, where the truth is well measured."""
    return truth.particles & (truth.thickness > 0.3 * truth.thickness.max())


def replay_cli(live, *args: str, timeout: float):
    """``xanes-stream replay ARGS`` against the live Tiled server, as a user runs it."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "xanes-stream"), "replay", *args,
         "--tiled-uri", live.tiled.uri],
        env={**os.environ, "XANES_TILED_API_KEY": live.tiled.api_key},
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def wait_for(service, uids, timeout=WAIT):
    records = service.wait_for(uids, timeout)
    assert all(r is not None and r.status != "analysing" for r in records), (
        f"no result within {timeout} s for {uids}"
    )
    return records


def engine_for(live, beamline):
    from bluesky_tiled_plugins import TiledWriter

    engine = RunEngine({}, context_managers=[])
    engine.subscribe(TiledWriter(live.tiled.client(), batch_size=1))  # first: raw run complete
    publisher = connect_publisher(live.proxy.in_address)
    engine.subscribe(publisher)
    return engine, publisher


def assert_maps_match_truth(client, uid, truth):
    node = client["xanes"][uid]
    assert "XANESMaps" in [spec.name for spec in node.specs]
    for name in MAPS:
        assert name in node, name
    md = node.metadata
    assert md["status"] == "done" and md["raw_uid"] == uid
    for key in (
        "scan_id",
        "sample",
        "energies",
        "references",
        "settings",
        "version",
        "timings",
        "summary",
    ):
        assert key in md, key
    names = node["fractions"].metadata["reference_names"]
    assert names == md["references"]
    fitted = node["fractions"].read()[[names.index(n) for n in truth.references]]
    inside = core(truth)
    assert np.median(np.abs(fitted - truth.fractions)[:, inside]) < 0.05
    assert node["r_factor"].read()[inside].mean() < 0.01


@pytest.mark.parametrize("detector", ["hdf5", "inline"])
def test_scans_arrive_as_maps_in_tiled(live, detector):
    runs = simulate(
        live,
        n_scans=2,
        detector=detector,
        shape=(64, 64),
        seed=3,
        energies=ENERGIES,
    )
    records = wait_for(live.service, [run.uid for run in runs])
    assert [r.status for r in records] == ["done", "done"], [r.reason for r in records]
    for run in runs:
        assert_maps_match_truth(live.client, run.uid, run.truth)
        raw = live.client[run.uid]  # the raw run is archived by TiledWriter
        assert raw["primary"][raw.metadata["start"]["xanes"]["image_key"]].shape[0] == len(
            run.truth.energies
        )
    # the series reacts between scans; its maps show it
    first, second = (
        live.client["xanes"][run.uid].metadata["summary"]["mean_fractions"] for run in runs
    )
    assert first["NiO"] > second["NiO"] + 0.1
    # the event log told each scan's story in order: frames n/N while receiving, then the maps
    for run in runs:
        story = [e["scan"] for e in live.service.events.since(0) if e["scan"]["uid"] == run.uid]
        states = [s["status"] for s in story]
        assert states[0] == "receiving" and states[-3:] == ["queued", "analysing", "done"]
        frames = [s["frames"] for s in story if s["status"] == "receiving"]
        assert frames == sorted(frames) and frames[-1] == len(run.truth.energies)
        assert story[-1]["uri"].endswith(run.uid)


def test_replay_gives_the_live_maps(live):
    from xanes_stream.live.replay import find_runs, replay
    from xanes_stream.profiles import load_profile

    live_done = [r for r in live.service.records.values() if r.status == "done"]
    assert live_done
    uid = live_done[0].uid
    client = live.tiled.client()
    assert find_runs(client, uids=[uid]) == [uid]
    (record,) = replay(
        client,
        [uid],
        profile=load_profile("sim"),
        root="replayed",
        allowed_roots=[str(live.data_dir)],
    )
    assert record.status == "done", record.reason
    original, replayed = client["xanes"][uid], client["replayed"][uid]
    assert replayed.metadata["replayed"] is True and "replayed_at" in replayed.metadata
    for name in ("fractions", "thickness", "r_factor", "edge_energy", "mask", "shifts"):
        np.testing.assert_allclose(
            replayed[name].read(), original[name].read(), atol=1e-6, err_msg=name
        )
    scan_id = original.metadata["scan_id"]
    assert uid in find_runs(client, scan_ids=(scan_id, scan_id))


def test_non_scan_run_between_scans_is_ignored(live):
    beamline = make_beamline(detector="hdf5", data_dir=live.data_dir, shape=(48, 48), seed=5)
    engine, publisher = engine_for(live, beamline)
    try:
        first = engine(beamline.xanes_scan(ENERGIES))[0]
        other = engine(count([beamline.energy], num=3))[0]
        second = engine(beamline.xanes_scan(ENERGIES))[0]
    finally:
        publisher.close()
    records = wait_for(live.service, [first, second])
    assert [r.status for r in records] == ["done", "done"]
    time.sleep(0.5)
    assert other not in live.client["xanes"]
    assert other not in live.service.records


def test_aborted_run_leaves_a_record_of_why(live):
    beamline = make_beamline(detector="hdf5", data_dir=live.data_dir, shape=(48, 48), seed=6)
    engine, publisher = engine_for(live, beamline)
    saved = []
    uid = []

    def capture(name, doc):
        if name == "start":
            uid.append(doc["uid"])

    def fail_midway(msg):
        if msg.command == "save":
            saved.append(msg)
            if len(saved) == 10:
                raise RuntimeError("beam dump")
        return msg

    engine.subscribe(capture)
    try:
        with pytest.raises(RuntimeError, match="beam dump"):
            engine(msg_mutator(beamline.xanes_scan(ENERGIES), fail_midway))
    finally:
        publisher.close()
    (record,) = wait_for(live.service, uid)
    assert record.status == "failed"
    assert live.service.status()["last_error"] is None, live.service.status()["last_error"]
    node = live.client["xanes"][uid[0]]
    assert node.metadata["status"] == "failed"
    assert "beam dump" in node.metadata["reason"]
    assert "thickness" not in node


def test_unusable_documents_do_not_stop_the_service(live):
    context = zmq.Context.instance()
    socket = context.socket(zmq.PUB)
    socket.connect(f"tcp://{live.proxy.in_address}")
    time.sleep(0.5)
    for message in (
        b"no spaces at all",
        b" bogus \x81\x82",
        b" event \xc1garbage",
        b" start " + b"\x00" * 64,
        b" \xff\xfe start {}",
    ):
        socket.send(message)
    socket.close(linger=1000)
    time.sleep(0.5)
    assert live.service.status()["listening"]
    runs = simulate(
        live,
        n_scans=1,
        detector="inline",
        shape=(48, 48),
        seed=7,
        energies=ENERGIES,
    )
    (record,) = wait_for(live.service, [runs[0].uid])
    assert record.status == "done"


@pytest.mark.parametrize("how", ["register", "upload"])
def test_writing_is_idempotent(live, how):
    runs = [r for r in live.service.records.values() if r.status == "done"]
    assert runs
    uid = runs[0].uid
    results_dir = live.tiled.results_dir if how == "register" else None
    # replace_done, as replay writes: a live write would keep the maps there (security tests)
    store = TiledResultStore(live.tiled.client(), results_dir=results_dir, replace_done=True)
    maps = store.read_maps(uid)
    for sample in ("again", "and again"):
        store.write_maps(uid, maps, {"scan_id": runs[0].scan_id, "sample": sample})
    assert list(live.client["xanes"]).count(uid) == 1
    node = live.client["xanes"][uid]
    assert node.metadata["sample"] == "and again"
    np.testing.assert_array_equal(node["fractions"].read(), maps.fractions)
    np.testing.assert_array_equal(node["mask"].read().astype(bool), maps.mask)
    if how == "register":  # only the newest maps file of the run is kept
        assert len(list((live.tiled.results_dir / uid).glob("*.h5"))) == 1


def test_writes_need_the_api_key(live):
    from tiled.client import from_uri

    with pytest.raises(Exception, match="API key|401|authentication"):
        anonymous = from_uri(live.tiled.uri)
        anonymous.create_container("intruder")


@pytest.mark.parametrize("suffix", [".jsonl", ".msgpack"])
def test_replay_from_a_documents_file(live, tmp_path, suffix):
    """Runs from another facility, as a file of documents, through the CLI into Tiled."""
    from xanes_stream.documents.files import write_documents

    documents = []
    (run,) = run_simulated_experiment(
        None,
        None,
        None,
        n_scans=1,
        detector="inline",
        data_dir=live.data_dir,
        shape=(48, 48),
        seed=31,
        energies=ENERGIES,
        callbacks=[lambda name, doc: documents.append((name, doc))],
    )
    path = write_documents(tmp_path / f"run{suffix}", documents)
    result = replay_cli(live, "--file", str(path), "--root", "from_file", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert run.uid[:8] in result.stdout
    node = live.tiled.client()["from_file"][run.uid]
    assert node.metadata["replayed"] is True
    names = node["fractions"].metadata["reference_names"]
    fitted = node["fractions"].read()[[names.index(n) for n in run.truth.references]]
    inside = core(run.truth)
    assert np.median(np.abs(fitted - run.truth.fractions)[:, inside]) < 0.05


def test_a_broken_documents_file_is_one_clear_error(live, tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('["start", {"uid": "a"}]\nnot json\n')
    result = replay_cli(live, "--file", str(path), timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "line 2: not JSON" in result.stderr, result.stderr


def test_three_energy_scan_is_mapped_live(live):
    """A scan of pre-edge, E1 and E2 only goes through the service like any other: the
    two-energy maps land in Tiled, within their stated error of what the camera imaged."""
    runs = simulate(
        live,
        n_scans=3,  # the second is mid-reaction: its fractions vary
        detector="inline",
        shape=(64, 64),
        seed=61,
        energies=[8290.0, 8344.0, 8351.0],
    )
    records = wait_for(live.service, [r.uid for r in runs])
    assert [r.status for r in records] == ["done"] * 3, [r.reason for r in records]
    run = runs[1]
    node = live.client["xanes"][run.uid]
    assert node.metadata["method"] == "two_energy"
    names = node["fractions"].metadata["reference_names"]
    assert names == ["NiO", "LiNiO2"]
    fractions = node["fractions"].read()
    error = node["products"]["two_energy"]["fraction_error"].read()
    inside = core(run.truth)
    z = (fractions[0] - run.truth.fraction("NiO"))[inside] / error[inside]
    assert np.mean(np.abs(z) < 2) > 0.9
    assert np.all(np.isnan(node["edge_energy"].read()))


def _product_metadata(node) -> dict:
    """A product's metadata: the HDF5 attribute (JSON) when registered, else as written."""
    import json

    meta = dict(node.metadata)
    return json.loads(meta["metadata"]) if isinstance(meta.get("metadata"), str) else meta


@pytest.fixture(scope="module")
def analysed_series(live):
    """Three scans of an in-operando series (64 x 64), every analysis switched on by the start
    document; combinatorial fitting over a 10-entry library held in Tiled. The second scan is
    mid-reaction: its fractions vary across the field."""
    store = TiledResultStore(live.tiled.client())
    confusers = [r for r in library10() if r.name not in ("NiO", "LiNiO2", "Ni")]
    for reference in confusers:
        store.add_reference(reference)
    settings = {
        "products": {
            "library": ["Ni", *(r.name for r in confusers)],
            "particles": {"enabled": True},
            "decomposition": {"enabled": True, "method": "nmf", "n_components": 2},
            "combinatorial": {"enabled": True, "max_size": 2},
            "clustering": {"enabled": True, "k": 3},
            "two_energy": {"enabled": True},
            "fronts": {"enabled": True},
            "ml": {"enabled": True, "model": "forest", "n_train": 1000},
        }
    }
    runs = simulate(
        live, n_scans=3, detector="inline", shape=(64, 64), seed=71, energies=ENERGIES,
        md={"xanes": {"settings": settings}},
    )  # fmt: skip
    records = wait_for(live.service, [r.uid for r in runs])
    assert [r.status for r in records] == ["done"] * 3, [r.reason for r in records]
    return runs


def test_particles_and_nmf_from_a_live_scan(live, analysed_series):
    """Particles and NMF land in Tiled beside the maps; their numbers agree with the phantom."""
    run = analysed_series[1]
    products = live.client["xanes"][run.uid]["products"]
    labels = products["particles"]["labels"].read()
    from scipy import ndimage

    _, n_true = ndimage.label(run.truth.particles)
    assert labels.max() == n_true
    table = products["particles"]["table"].read()
    assert len(table["label"]) == n_true
    nmf = products["decomposition"]["nmf"]["maps"].read()
    assert nmf.shape == (2, 64, 64)
    inside = core(run.truth)
    # NMF maps are amounts: as shares of their sum they follow the true fractions, up to order
    shares = nmf / np.maximum(nmf.sum(axis=0), 1e-9)
    r = [
        max(np.corrcoef(shares[i][inside], run.truth.fractions[j][inside])[0, 1] for i in range(2))
        for j in range(2)
    ]
    assert min(r) > 0.8, r


def test_every_analysis_from_a_live_scan(live, analysed_series):
    """Combinatorial fitting, clustering, two-energy maps, edge-energy fronts and ML maps agree
    with what the camera imaged."""
    run = analysed_series[1]
    truth = run.truth
    inside = core(truth)
    products = live.client["xanes"][run.uid]["products"]
    for name in ("combinatorial", "clustering", "two_energy", "fronts", "ml"):
        assert "error" not in _product_metadata(products[name]), name

    # the combinatorial fit picks the true pair out of the 10 entries
    combinatorial = _product_metadata(products["combinatorial"])
    assert sorted(combinatorial["references"]) == sorted(truth.references)
    ranking = products["combinatorial"]["ranking"].read()
    assert len(ranking["rank"]) == 10 + 45
    fractions = products["combinatorial"]["fractions"].read()
    best = fractions[combinatorial["references"].index("NiO")]
    assert np.median(np.abs(best - truth.fraction("NiO"))[inside]) < 0.05

    # three clusters that sort the pixels by their true composition
    labels = products["clustering"]["clusters"]["labels"].read()
    true_nio = truth.fraction("NiO")
    means = sorted(true_nio[inside & (labels == k)].mean() for k in (1, 2, 3))
    assert means[2] - means[0] > 0.3

    # two-energy maps within their stated error; ML maps near the truth
    fraction_a = products["two_energy"]["fraction_a"].read()
    error = products["two_energy"]["fraction_error"].read()
    assert np.mean(np.abs(fraction_a - true_nio)[inside] < 2 * error[inside]) > 0.9
    ml = products["ml"]["fractions"].read()
    names = live.client["xanes"][run.uid]["fractions"].metadata["reference_names"]
    ml_error = np.abs(ml[names.index("NiO")] - true_nio)[inside]
    assert np.isnan(ml_error).mean() < 0.1  # ML maps only the quality mask
    assert np.nanmedian(ml_error) < 0.1  # measured 0.066 (a forest on 1000 spectra)

    # fronts: each contour holds the pixels whose fitted E0 lies in its window
    contours = products["fronts"]["contours"].read().astype(bool)
    windows = _product_metadata(products["fronts"])["windows"]
    e0 = live.client["xanes"][run.uid]["edge_energy"].read()
    for contour, (low, high) in zip(contours, windows, strict=True):
        assert contour.any() and np.all((e0[contour] >= low) & (e0[contour] <= high))


def test_series_summary_in_tiled(live, analysed_series):
    """Each scan of an in-operando series updates one table in Tiled, a row per scan."""
    runs = analysed_series
    series = live.client[runs[0].uid].metadata["start"]["xanes"]["series"]
    table = live.tiled.client()["xanes_series"][series].read()
    assert list(table["uid"]) == [r.uid for r in runs]
    assert np.all(np.diff(table["time"]) > 0)
    fitted = np.asarray(table["mean_NiO"])
    # the table's means are over each scan's mask (thin rims, which react first, included):
    # the truth is taken over the same pixels
    true = []
    for run in runs:
        mask = live.client["xanes"][run.uid]["mask"].read().astype(bool)
        assert mask[core(run.truth)].mean() > 0.95  # the thick parts are all in it
        true.append(run.truth.fraction("NiO")[mask].mean())
    true = np.array(true)
    assert np.all(np.diff(fitted) < 0) and np.all(np.diff(true) < 0)
    assert np.max(np.abs(fitted - true)) < 0.1


def test_3d_scan_is_mapped_live(live):
    """3D XANES live: a volume (nz, ny, nx) per energy, as reconstructions give (aligned: no
    drift), goes through the service; the maps in Tiled have a z axis and match the truth."""
    runs = simulate(
        live,
        n_scans=3,
        detector="hdf5",
        shape=(48, 48),
        seed=81,
        energies=ENERGIES,
        settings={"depth": 3, "drift_px": 0.0},
    )
    records = wait_for(live.service, [r.uid for r in runs])
    assert [r.status for r in records] == ["done"] * 3, [r.reason for r in records]
    run = runs[1]
    node = live.client["xanes"][run.uid]
    names = node["fractions"].metadata["reference_names"]
    fitted = node["fractions"].read()
    assert fitted.shape == (len(names), 3, 48, 48)
    assert node["thickness"].shape == node["mask"].shape == (3, 48, 48)
    truth = run.truth
    inside = core(truth)
    assert inside.shape == (3, 48, 48) and all(inside[z].any() for z in range(3))
    fitted = fitted[[names.index(n) for n in truth.references]]
    assert np.median(np.abs(fitted - truth.fractions)[:, inside]) < 0.05
    assert node.metadata["summary"]["mask_pixels"] > 0.8 * inside.sum()
