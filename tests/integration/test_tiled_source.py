"""``serve --source tiled``: the service follows the runs TiledWriter writes into a real Tiled
(with its streaming cache), with no 0MQ at all; a real RunEngine runs the simulated TXM."""

import contextlib
import logging
import time

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.plans import count

from xanes_stream.devtools.launcher import start_tiled
from xanes_stream.live.service import ServiceConfig, XanesService
from xanes_stream.sim.beamline import make_beamline
from xanes_stream.sim.run import run_simulated_experiment

pytestmark = pytest.mark.timeout(300)
WAIT = 120.0
ENERGIES = np.concatenate(
    [np.arange(8250, 8320, 10.0), np.arange(8320, 8370, 2.0), np.arange(8370, 8451, 10.0)]
)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """Tiled, one scan already in it, then the service following Tiled (no 0MQ, no sweep):
    yields ``(tiled, service, data_dir, earlier_uid)``; ``service.servers`` are the Tiled
    servers started (stopped after the service)."""
    data_dir = tmp_path_factory.mktemp("detector")
    root = tmp_path_factory.mktemp("tiled")
    servers = []  # Tiled, and the one started again in its place: stopped after the service
    with contextlib.ExitStack() as running:
        running.callback(lambda: [server.stop() for server in reversed(servers)])
        tiled = start_tiled(root, readable_dirs=[data_dir], timeout=60)
        servers.append(tiled)
        (earlier,) = simulate(tiled, data_dir, detector="inline", seed=20)
        config = ServiceConfig(
            tiled_uri=tiled.uri,
            api_key=tiled.api_key,
            source="tiled",
            results_dir=str(tiled.results_dir),
            state_dir=str(root / "service-state"),
            allowed_roots=[str(data_dir)],
            recover_hours=0,  # no sweep: a scan analysed here came through the source
        )
        service = XanesService(config, client=tiled.client()).start()
        running.callback(service.stop)
        service.servers = servers  # for the outage test
        yield tiled, service, data_dir, earlier.uid


def simulate(tiled, data_dir, **options):
    """One simulated scan written by TiledWriter only (no 0MQ proxy)."""
    return run_simulated_experiment(
        tiled.uri,
        tiled.api_key,
        None,
        n_scans=1,
        data_dir=data_dir,
        shape=(48, 48),
        energies=ENERGIES,
        **options,
    )


def settled(service, uids):
    records = service.wait_for(uids, WAIT)
    assert all(r is not None and r.status in ("done", "failed") for r in records), (
        f"no result within {WAIT} s for {uids}: {records}"
    )
    return records


def assert_maps_match_truth(client, uid, truth):
    node = client["xanes"][uid]
    assert node.metadata["status"] == "done" and node.metadata["raw_uid"] == uid
    names = node["fractions"].metadata["reference_names"]
    fitted = node["fractions"].read()[[names.index(n) for n in truth.references]]
    inside = truth.particles & (truth.thickness > 0.3 * truth.thickness.max())
    assert np.median(np.abs(fitted - truth.fractions)[:, inside]) < 0.05


@pytest.mark.parametrize("detector", ["inline", "hdf5"])
def test_runs_written_to_tiled_become_maps(source, detector):
    tiled, service, data_dir, _ = source
    assert service.status()["listening"]
    (run,) = simulate(tiled, data_dir, detector=detector, seed=21 if detector == "inline" else 22)
    (record,) = settled(service, [run.uid])
    assert record.status == "done", record.reason
    client = tiled.client()
    assert_maps_match_truth(client, run.uid, run.truth)
    assert list(client["xanes"]).count(run.uid) == 1
    assert service.counts["backfilled"] == 0  # followed, not read back as incomplete
    assert service.status()["listening"]  # and it keeps following


@pytest.mark.parametrize("detector", ["inline", "hdf5"])
def test_frames_are_registered_while_the_run_is_written(source, detector):
    """Frame-by-frame following: the service registers frames of a run while the RunEngine
    is still taking it (before its stop document even exists), and the maps (right after
    the stop) still match the truth.

    A callback after TiledWriter holds the RunEngine at the run's 5th event until the service
    has registered a frame (at most ``WAIT`` s): no race with the machine's load, and a
    service that only reads runs at their stop never registers one there."""
    tiled, service, data_dir, _ = source
    client = tiled.client()
    state: dict = {"uid": None, "seen": 0}

    def wait_for_a_frame(name, doc):
        if name == "start":
            state["uid"] = doc["uid"]
        elif name == "event" and doc["seq_num"] == 5 and not state["seen"]:
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline and not state["seen"]:
                record = service.records.get(state["uid"])
                state["seen"] = record.frames if record is not None else 0
                time.sleep(0.05)

    (run,) = simulate(tiled, data_dir, detector=detector, seed=26, callbacks=[wait_for_a_frame])
    assert state["uid"] == run.uid
    assert state["seen"] > 0, "no frame registered while the run was being taken"
    (record,) = settled(service, [run.uid])
    assert record.status == "done", record.reason
    assert_maps_match_truth(client, run.uid, run.truth)
    assert service.counts["backfilled"] == 0
    print(
        f"\n{detector}: {state['seen']} frames registered while the run was taken; stop to "
        f"maps {record.latency:.2f} s"
    )


def test_runs_there_before_the_start_are_left_to_the_sweep(source):
    tiled, service, _, earlier = source
    assert earlier not in service.records
    assert earlier not in tiled.client()["xanes"]


def test_a_run_that_is_no_energy_scan_is_ignored_and_following_goes_on(source, caplog):
    from bluesky_tiled_plugins import TiledWriter

    tiled, service, data_dir, _ = source
    beamline = make_beamline(detector="inline", data_dir=data_dir, shape=(48, 48), seed=23)
    engine = RunEngine({}, context_managers=[])
    engine.subscribe(TiledWriter(tiled.client(), batch_size=1))
    with caplog.at_level(logging.INFO, logger="xanes_stream.live.tiled_source"):
        other = engine(count([beamline.energy], num=3))[0]
        (run,) = simulate(tiled, data_dir, detector="inline", seed=24)
        (record,) = settled(service, [run.uid])
    assert record.status == "done", record.reason
    assert_maps_match_truth(tiled.client(), run.uid, run.truth)
    assert other not in service.records
    assert other not in tiled.client()["xanes"]
    assert f"ignored run {other[:8]}" in caplog.text
    # one record per run followed, and nothing else
    done = {uid for uid, r in service.records.items() if r.status == "done"}
    assert run.uid in done and len(service.records) == service._subscriber.runs


def until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


def test_a_shared_fxi_file_is_read_at_the_stop(tmp_path, caplog):
    """FXI's classic areaDetector writes dark, sample and flat into one file, of which Tiled
    keeps no offsets: the run is not followed frame by frame but read at its stop, from the
    files, and its maps match the truth."""
    data_dir = tmp_path / "detector"
    data_dir.mkdir()
    with contextlib.ExitStack() as running:
        tiled = start_tiled(tmp_path / "tiled", readable_dirs=[data_dir], timeout=60)
        running.callback(tiled.stop)
        config = ServiceConfig(
            profile="fxi",
            tiled_uri=tiled.uri,
            api_key=tiled.api_key,
            source="tiled",
            results_dir=str(tiled.results_dir),
            state_dir=str(tmp_path / "service-state"),
            allowed_roots=[str(data_dir)],
            recover_hours=0,
        )
        service = XanesService(config, client=tiled.client()).start()
        running.callback(service.stop)
        with caplog.at_level(logging.INFO, logger="xanes_stream.live.tiled_source"):
            (run,) = simulate(
                tiled, data_dir, plan="xanes_scan2", detector="ad_hdf5", seed=27,
                plan_kwargs={"chunk_size": 5},
            )  # fmt: skip
            (record,) = settled(service, [run.uid])
        assert record.status == "done", record.reason
        assert_maps_match_truth(tiled.client(), run.uid, run.truth)
        assert f"run {run.uid[:8]}: read at its stop, not frame by frame" in caplog.text
        assert "classic areaDetector files" in caplog.text
        assert service.counts["backfilled"] == 0
        print(f"\nFXI ad_hdf5 at the stop: stop to maps {record.latency:.2f} s")


def test_following_resumes_when_tiled_comes_back(source, caplog):
    """Last in the module: Tiled stops and starts again (same port, same catalog)."""
    tiled, service, data_dir, _ = source
    with caplog.at_level(logging.INFO, logger="xanes_stream.live.tiled_source"):
        tiled.stop()
        assert until(lambda: not service.status()["listening"], 60), "outage not noticed"
        again = start_tiled(tiled.root_dir, tiled.api_key, tiled.port, [data_dir], timeout=60)
        service.servers.append(again)
        assert until(lambda: service.status()["listening"], 90), "not following again"
        (run,) = simulate(again, data_dir, detector="inline", seed=25)
        (record,) = settled(service, [run.uid])
    assert record.status == "done", record.reason
    assert_maps_match_truth(again.client(), run.uid, run.truth)
    assert "lost the connection to Tiled" in caplog.text
    assert "Traceback" not in caplog.text
