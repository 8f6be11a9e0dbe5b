"""The maps written and searched on both Tiled layouts: the SQLite catalog with the in-process
streaming cache, and a facility's PostgreSQL catalog with a Redis streaming cache (real
``postgres`` and ``redis-server`` on 127.0.0.1, started by ``start_tiled(catalog=...)``)."""

import contextlib
import threading
import uuid

import numpy as np
import pytest
from tiled.queries import Eq

from xanes_stream.devtools.databases import databases_available
from xanes_stream.devtools.launcher import local_pipeline
from xanes_stream.live.replay import find_runs
from xanes_stream.profiles import load_profile
from xanes_stream.sim.run import run_simulated_experiment
from xanes_stream.store.raw_runs import unanalysed_runs
from xanes_stream.store.tiled_store import TiledResultStore

pytestmark = pytest.mark.timeout(300)
WAIT = 120.0
ENERGIES = np.concatenate(
    [np.arange(8250, 8320, 10.0), np.arange(8320, 8370, 2.0), np.arange(8370, 8451, 10.0)]
)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live(request, tmp_path_factory):
    """A local pipeline on one catalog, two simulated scans analysed: yields
    ``(tiled, proxy, service, data_dir, runs)``; all stopped before the next catalog's."""
    if request.param == "postgres" and (why := databases_available()):
        pytest.skip(why)
    data_dir = tmp_path_factory.mktemp("detector")
    root = tmp_path_factory.mktemp("tiled")
    with local_pipeline(root, data_dir, catalog=request.param) as (tiled, proxy, service):
        runs = simulate(tiled, proxy, data_dir, n_scans=2, seed=11)
        records = service.wait_for([run.uid for run in runs], WAIT)
        assert all(r is not None and r.status == "done" for r in records), records
        yield tiled, proxy, service, data_dir, runs


def simulate(tiled, proxy, data_dir, **options):
    return run_simulated_experiment(
        tiled.uri,
        tiled.api_key,
        proxy.in_address,
        data_dir=data_dir,
        detector="hdf5",
        shape=(48, 48),
        energies=ENERGIES,
        **options,
    )


def test_the_catalog_is_where_it_was_asked(live, request):
    tiled, *_ = live
    names = [type(server).__name__ for server in tiled.companions]
    if "postgres" in request.node.callspec.id:
        assert names == ["PostgresProcess", "RedisProcess"]
        assert tiled.catalog_uri.startswith("postgresql+asyncpg://xanes:")
        assert tiled.streaming_cache == tiled.companions[1].uri
        # the runs and the maps are rows of PostgreSQL's catalog, not of a SQLite file
        postgres = tiled.companions[0]
        keys = postgres.sql("SELECT key FROM nodes", database="tiled_catalog").split()
        assert "xanes" in keys and all(run.uid in keys for run in live[4])
        assert not (tiled.root_dir / "catalog.db").exists()
    else:
        assert names == [] and tiled.streaming_cache == "memory"
        assert (tiled.root_dir / "catalog.db").exists()


def test_maps_read_back_match_the_truth(live):
    tiled, _, _, _, runs = live
    client = tiled.client()
    store = TiledResultStore(client)
    for run in runs:
        node = client["xanes"][run.uid]
        assert node.metadata["status"] == "done" and node.metadata["raw_uid"] == run.uid
        names = node["fractions"].metadata["reference_names"]
        fitted = node["fractions"].read()[[names.index(n) for n in run.truth.references]]
        truth = run.truth
        inside = truth.particles & (truth.thickness > 0.3 * truth.thickness.max())
        assert np.median(np.abs(fitted - truth.fractions)[:, inside]) < 0.05
        assert node["r_factor"].read()[inside].mean() < 0.01
        maps = store.read_maps(run.uid)  # the store's own reader
        np.testing.assert_allclose(maps.energies, truth.energies)


def test_the_services_searches(live):
    tiled, _, _, _, runs = live
    client = tiled.client()
    uids = [run.uid for run in runs]
    profile = load_profile("sim")
    starts = [client[uid].metadata["start"] for uid in uids]
    # the sweep: nothing left to analyse; with the results gone from view, both runs again
    assert unanalysed_runs(client, "xanes", profile, since=0.0) == []
    assert unanalysed_runs(client, "no-results", profile, since=0.0)[-2:] == uids
    assert unanalysed_runs(client, "no-results", profile, since=starts[1]["time"]) == uids[1:]
    # a failure written by the store is found by status, apart from the maps
    store = TiledResultStore(client)
    failed = uuid.uuid4().hex
    store.write_failure(failed, "synthetic failure", {"scan_id": -1})
    results = client["xanes"]
    assert list(results.search(Eq("status", "failed"))) == [failed]
    assert set(uids) <= set(results.search(Eq("status", "done")))
    assert store.status(failed) == "failed"
    # the replay's find_runs: by scan id range, by sample, by uid
    scan_ids = (starts[0]["scan_id"], starts[1]["scan_id"])
    assert find_runs(client, scan_ids=scan_ids) == uids
    assert find_runs(client, scan_ids=(scan_ids[1], scan_ids[1])) == uids[1:]
    assert find_runs(client, sample=starts[0]["sample"])[-2:] == uids
    assert find_runs(client, uids=uids[:1]) == uids[:1]


def test_a_subscription_gets_the_next_run(live):
    """The streaming cache (memory, or Redis) tells a websocket subscriber of a new run."""
    tiled, proxy, service, data_dir, _ = live
    client = tiled.client()
    created, arrived = [], threading.Event()

    def on_created(update):
        created.append(update.key)
        arrived.set()

    subscription = client.subscribe()
    subscription.child_created.add_callback(on_created)
    receiver = threading.Thread(target=subscription.start, name="test-ws", daemon=True)
    receiver.start()
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(receiver.join, 5.0)
        cleanup.callback(subscription.disconnect, wait=False)
        (run,) = simulate(tiled, proxy, data_dir, n_scans=1, seed=12)
        assert arrived.wait(WAIT), "no child-created update for the new run"
        assert run.uid in created
        (record,) = service.wait_for([run.uid], WAIT)
        assert record is not None and record.status == "done"
    if tiled.companions:  # the update went through Redis: the server keeps its sequences there
        redis = tiled.companions[1]
        import socket

        with socket.create_connection(("127.0.0.1", redis.port), timeout=5) as sock:
            sock.sendall(b"DBSIZE\r\n")
            assert int(sock.recv(64).strip().lstrip(b":")) > 0
