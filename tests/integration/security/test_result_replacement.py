"""A good result is never silently replaced: a later run reusing an analysed scan's uid (with
frames of its own, or only an aborted stop) leaves the maps in Tiled as they are and records
the conflict; a spooled result flushed later keeps good maps written meanwhile; an explicit
replay still replaces, with its provenance. Real Tiled, the real 0MQ proxy, the service."""

import dataclasses
import time

import numpy as np
import pytest

from xanes_stream.sim.run import connect_publisher, run_simulated_experiment

pytestmark = pytest.mark.timeout(300)
ENERGIES = np.concatenate(
    [np.arange(8250, 8320, 10.0), np.arange(8320, 8370, 2.0), np.arange(8370, 8451, 10.0)]
)
WAIT = 90.0


@pytest.fixture(scope="module")
def live(start_pipeline):
    return start_pipeline()


@pytest.fixture(scope="module")
def good(live):
    """A scan analysed live, its raw run archived in Tiled: (uid, its fractions, its sample)."""
    (run,) = run_simulated_experiment(
        live.tiled.uri,
        live.tiled.api_key,
        live.proxy.in_address,
        n_scans=1,
        detector="inline",
        data_dir=live.data_dir,
        shape=(48, 48),
        seed=41,
        energies=ENERGIES,
    )
    (record,) = live.service.wait_for([run.uid], WAIT)
    assert record is not None and record.status == "done", record and record.reason
    node = live.client["xanes"][run.uid]
    return run.uid, node["fractions"].read(), node.metadata["sample"]


def documents_of_another_run(seed: int) -> list[tuple[str, dict]]:
    """The documents of a different simulated scan (other chemistry), not sent anywhere."""
    documents = []
    run_simulated_experiment(
        None, None, None, n_scans=1, detector="inline", data_dir=None, shape=(48, 48),
        seed=seed, energies=ENERGIES, md={"sample": "impostor"},
        callbacks=[lambda name, doc: documents.append((name, dict(doc)))],
    )  # fmt: skip
    return documents


def with_uid(documents, uid):
    """``documents`` rewritten to claim run ``uid``."""
    out = []
    for name, doc in documents:
        doc = dict(doc)
        if name == "start":
            doc["uid"] = uid
        elif "run_start" in doc:
            doc["run_start"] = uid
        out.append((name, doc))
    return out


def publish_and_settle(live, uid, documents):
    """Send ``documents`` through the proxy; wait until the service has settled run ``uid``
    again (its record went back through queued to done or failed)."""
    seq = live.service.view.last_event()
    publisher = connect_publisher(live.proxy.in_address)
    try:
        for name, doc in documents:
            publisher(name, doc)
    finally:
        publisher.close()
    deadline = time.monotonic() + WAIT
    queued = False
    while time.monotonic() < deadline:
        for event in live.service.view.events_since(seq, 0.5):
            seq = event["seq"]
            scan = event["scan"]
            if scan["uid"] != uid:
                continue
            queued = queued or scan["status"] == "queued"
            if queued and scan["status"] in ("done", "failed"):
                return live.service.view.scan_record(uid)
    raise AssertionError(f"the service did not settle run {uid[:8]} again in {WAIT} s")


def assert_maps_kept(live, good, what):
    uid, fractions, sample = good
    node = live.client["xanes"][uid]
    assert node.metadata["status"] == "done", node.metadata.get("reason")
    assert node.metadata["sample"] == sample
    np.testing.assert_array_equal(node["fractions"].read(), fractions)
    conflicts = node.metadata.get("conflicts") or []
    assert any(c["refused"] == what for c in conflicts), conflicts
    return conflicts


def test_a_run_reusing_the_uid_with_its_own_frames_does_not_replace_the_maps(live, good):
    uid = good[0]
    kept = live.service.stacks._stacks.get(uid, {}).get("frames")
    record = publish_and_settle(live, uid, with_uid(documents_of_another_run(seed=42), uid))
    (conflict,) = [c for c in assert_maps_kept(live, good, "maps") if c["sample"] == "impostor"]
    assert "already has maps" in conflict["why"]
    # the live record still points at the good maps, and says why the new run was refused
    assert record.status == "done" and record.uri.endswith(uid)
    assert "already has maps" in record.reason
    # the page's pixel spectra are of the good scan's frames, not of the impostor's
    assert live.service.stacks._stacks.get(uid, {}).get("frames") is kept


def test_an_aborted_run_reusing_the_uid_does_not_replace_the_maps(live, good):
    uid = good[0]
    start = {"uid": uid, "time": time.time(), "scan_id": 999, "plan_name": "xanes_scan",
             "sample": "aborted impostor", "xanes": {"references": ["NiO", "LiNiO2"]}}  # fmt: skip
    stop = {"uid": "stop-of-impostor", "run_start": uid, "time": time.time(),
            "exit_status": "abort", "reason": "made up", "num_events": {}}  # fmt: skip
    record = publish_and_settle(live, uid, [("start", start), ("stop", stop)])
    conflicts = assert_maps_kept(live, good, "failure")
    assert any("made up" in c.get("reason", "") for c in conflicts), conflicts
    assert record.status == "done" and record.uri.endswith(uid)


def test_a_spooled_result_keeps_good_maps_written_meanwhile(live, good, tmp_path):
    from xanes_stream.store.spool import Spool
    from xanes_stream.store.tiled_store import TiledResultStore

    store = TiledResultStore(live.tiled.client(), root="spool_conflict")
    maps = TiledResultStore(live.tiled.client()).read_maps(good[0])
    spool = Spool(tmp_path / "spool")
    # analysed while Tiled was away: spooled; then good maps are written by another writer
    spool.write_maps("run-a", maps, {"sample": "spooled", "result_id": "spooled-1"})
    newer = dataclasses.replace(maps, fractions=np.full_like(maps.fractions, 0.5))
    store.write_maps("run-a", newer, {"sample": "newer", "result_id": "newer-1"})
    assert spool.flush(store) == []
    node = live.client["spool_conflict"]["run-a"]
    assert node.metadata["sample"] == "newer"
    np.testing.assert_array_equal(node["fractions"].read(), newer.fractions)
    (conflict,) = node.metadata["conflicts"]
    assert conflict["refused"] == "maps" and conflict["result_id"] == "spooled-1"
    assert len(spool) == 0 and list(spool.folder.glob("*.rejected"))  # set aside, not lost
    # the same result flushed twice (written, then the service died before forgetting it)
    spool.write_maps("run-b", maps, {"sample": "once", "result_id": "once-1"})
    spool.write_maps("run-b", maps, {"sample": "once", "result_id": "once-1"})
    assert [uid for uid, _ in spool.flush(store)] == ["run-b", "run-b"]
    assert "conflicts" not in live.client["spool_conflict"]["run-b"].metadata


def test_an_explicit_replay_replaces_with_provenance(live, good):
    from xanes_stream.live.replay import replay
    from xanes_stream.profiles import load_profile

    uid = good[0]
    (record,) = replay(
        live.tiled.client(),
        [uid],
        profile=load_profile("sim"),
        root="xanes",
        results_dir=str(live.tiled.results_dir),
        allowed_roots=[str(live.data_dir)],
    )
    assert record.status == "done", record.reason
    node = live.client["xanes"][uid]
    assert node.metadata["replayed"] is True and "replayed_at" in node.metadata
    np.testing.assert_allclose(node["fractions"].read(), good[1], atol=1e-6)
