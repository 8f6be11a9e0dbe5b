"""The service analysing on a real Dask cluster (a scheduler and two worker processes on
127.0.0.1): maps against the simulator's truth, one result per scan, a worker killed
mid-analysis, the cluster shut down while serving, and an unreachable scheduler at start."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from distributed.diagnostics.plugin import WorkerPlugin
from test_live import ENERGIES, core, simulate, wait_for

pytestmark = pytest.mark.timeout(300)
WAIT = 120.0


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    src = str(Path(__file__).resolve().parents[2] / "src")
    os.environ["PYTHONPATH"] = os.pathsep.join(  # the worker processes import this code
        [src, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    )
    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    try:
        yield cluster
    finally:
        cluster.close(timeout=30)


@pytest.fixture(scope="module")
def live(start_pipeline, cluster):
    return start_pipeline(dask=cluster.scheduler_address)


@pytest.fixture
def written(caplog):
    """``written(uid)``: how many times the service wrote maps for ``uid`` (its log)."""
    caplog.set_level(logging.INFO, logger="xanes_stream")

    def count(uid: str) -> int:
        return sum(
            "maps written to" in r.getMessage() and uid[:8] in r.getMessage()
            for r in caplog.records
        )

    return count


def check_maps(live, runs, records, written):
    """Every scan done, written once, its fractions within 0.05 of the truth in the core."""
    assert [r.status for r in records] == ["done"] * len(runs), [r.reason for r in records]
    places = []
    for run in runs:
        assert written(run.uid) == 1
        node = live.client["xanes"][run.uid]
        names = node["fractions"].metadata["reference_names"]
        fitted = node["fractions"].read()[[names.index(n) for n in run.truth.references]]
        inside = core(run.truth)
        assert np.median(np.abs(fitted - run.truth.fractions)[:, inside]) < 0.05
        places.append(node.metadata["analysed_on"])
    return places


def test_scans_are_analysed_on_the_workers(live, cluster, written):
    runs = simulate(live, n_scans=3, detector="inline", shape=(48, 48), seed=91,
                    energies=ENERGIES)  # fmt: skip
    records = wait_for(live.service, [r.uid for r in runs], WAIT)
    places = check_maps(live, runs, records, written)
    workers = {w.worker_address for w in cluster.workers.values()}
    assert set(places) <= workers, places  # on the cluster, none in-process


class DieAtTheFirstAnalysis(WorkerPlugin):
    """A worker plugin: the first worker to start executing a scan's analysis dies at once
    (``os._exit``: as a crash would), once in the whole cluster (a marker file says so)."""

    name = "die-at-the-first-analysis"

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def setup(self, worker):
        self.worker = worker

    def transition(self, key, start, finish, **kwargs):
        if finish == "executing" and "_analyse_on_worker" in str(key):
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return  # one died already
            os.write(fd, self.worker.address.encode())
            os.close(fd)
            os._exit(1)


def test_a_worker_killed_mid_analysis_still_gives_one_result(live, cluster, written, tmp_path):
    import cloudpickle
    from distributed import Client

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers lack this file
    marker = tmp_path / "died"
    with Client(cluster.scheduler_address, timeout=10, set_as_default=False) as client:
        client.register_plugin(DieAtTheFirstAnalysis(str(marker)))
        try:
            runs = simulate(live, n_scans=2, detector="inline", shape=(48, 48), seed=92,
                            energies=ENERGIES)  # fmt: skip
            records = wait_for(live.service, [r.uid for r in runs], WAIT)
        finally:
            client.unregister_worker_plugin(DieAtTheFirstAnalysis.name)
    assert marker.exists(), "no worker died"
    places = check_maps(live, runs, records, written)
    workers = {w.worker_address for w in cluster.workers.values()}
    assert set(places) <= workers - {marker.read_text()}, places  # again on the cluster
    cluster.wait_for_workers(2, timeout=60)  # its nanny started another, for the next test


def test_replay_on_the_cluster_gives_the_live_maps(live, cluster):
    from xanes_stream.live.replay import replay
    from xanes_stream.profiles import load_profile

    done = [r.uid for r in live.service.records.values() if r.status == "done"][:2]
    assert len(done) == 2
    client = live.tiled.client()
    options = {"root": "replayed", "allowed_roots": [str(live.data_dir)]}
    records = replay(
        client, done, profile=load_profile("sim"), dask=cluster.scheduler_address, **options
    )
    assert [r.status for r in records] == ["done"] * 2, [r.reason for r in records]
    workers = {w.worker_address for w in cluster.workers.values()}
    for uid in done:
        original, replayed = client["xanes"][uid], client["replayed"][uid]
        assert replayed.metadata["analysed_on"] in workers
        np.testing.assert_allclose(
            replayed["fractions"].read(), original["fractions"].read(), atol=1e-6
        )


def test_the_cluster_shut_down_while_serving(live, cluster, written, caplog):
    cluster.close(timeout=30)
    runs = simulate(live, n_scans=2, detector="inline", shape=(48, 48), seed=93,
                    energies=ENERGIES)  # fmt: skip
    records = wait_for(live.service, [r.uid for r in runs], WAIT)
    places = check_maps(live, runs, records, written)
    assert places == ["in-process"] * 2
    lost = [
        r for r in caplog.records if "lost" in r.getMessage() and "in-process" in r.getMessage()
    ]
    assert len(lost) == 1, [r.getMessage() for r in lost]


def test_serve_with_an_unreachable_scheduler_says_so(tmp_path):
    result = subprocess.run(
        [str(Path(sys.executable).parent / "xanes-stream"), "serve", "--dask", "127.0.0.1:1",
         "--state-dir", str(tmp_path)],
        env={**os.environ, "XANES_TILED_API_KEY": "secret"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "cannot reach the Dask scheduler at 127.0.0.1:1" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
