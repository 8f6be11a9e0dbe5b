"""Many beamlines, one facility: two services (one per beamline, each on its own 0MQ proxy)
write into one Tiled under their own roots, ``tes/xanes`` and ``fxi/xanes``, analysing on one
shared Dask cluster, while both beamlines scan at once. Each beamline's raw runs go to its own
container (``/<beamline>/raw``, the service's ``source_uri``), so neither service's sweep for
scans lacking maps picks up the other's: every scan is mapped once, under its own root only."""

import contextlib
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import fraction_error

from xanes_stream.devtools.launcher import start_proxy, start_tiled
from xanes_stream.live.config import ServiceConfig
from xanes_stream.live.service import XanesService
from xanes_stream.sim.run import run_simulated_experiment
from xanes_stream.store.roots import ensure_root, find_root

pytestmark = pytest.mark.timeout(300)
WAIT = 150.0
ENERGIES = np.concatenate(
    [np.arange(8250, 8320, 10.0), np.arange(8320, 8370, 2.0), np.arange(8370, 8451, 10.0)]
)
# 48 x 48: at 32 x 32 the particles' thick core is a few dozen pixels, too few for a median
BEAMLINES = {"tes": dict(n_scans=3, shape=(48, 48), seed=91),
             "fxi": dict(n_scans=2, shape=(48, 48), seed=92)}  # fmt: skip


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    src = str(Path(__file__).resolve().parents[2] / "src")
    os.environ["PYTHONPATH"] = os.pathsep.join(  # the worker processes import this code
        [src, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    )
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    try:
        yield cluster
    finally:
        cluster.close(timeout=30)


@pytest.fixture(scope="module")
def facility(cluster, tmp_path_factory):
    """One Tiled; per beamline a proxy, a raw-run container and a service on the cluster."""
    with contextlib.ExitStack() as running:
        tiled = running.enter_context(start_tiled(timeout=60))
        client = tiled.client()
        beamlines = {}
        for name in BEAMLINES:
            ensure_root(client, f"{name}/raw")  # where its TiledWriter writes
            proxy = running.enter_context(start_proxy())
            raw_uri = f"{tiled.uri}/api/v1/metadata/{name}/raw"
            config = ServiceConfig(
                tiled_uri=tiled.uri,
                api_key=tiled.api_key,
                source_uri=raw_uri,
                zmq_address=proxy.out_address,
                profile="sim",
                results_root=f"{name}/xanes",
                state_dir=str(tmp_path_factory.mktemp(f"state-{name}")),
                dask=cluster.scheduler_address,
            )
            service = XanesService(config).start()
            running.callback(service.stop)
            beamlines[name] = (proxy, raw_uri, service)
        yield tiled, client, beamlines


def test_two_beamlines_scanning_at_once_map_each_scan_once_under_its_own_root(facility):
    tiled, client, beamlines = facility
    runs, errors = {}, []

    def scan(name: str) -> None:
        proxy, raw_uri, _ = beamlines[name]
        try:
            runs[name] = run_simulated_experiment(
                raw_uri, tiled.api_key, proxy.in_address, detector="inline", data_dir=None,
                energies=ENERGIES, **BEAMLINES[name],
            )  # fmt: skip
        except Exception as exc:  # said below, not lost in the thread
            errors.append(f"{name}: {exc!r}")

    threads = [threading.Thread(target=scan, args=(name,)) for name in BEAMLINES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not errors and not any(t.is_alive() for t in threads), errors

    for name, (_, _, service) in beamlines.items():
        uids = [run.uid for run in runs[name]]
        records = service.wait_for(uids, WAIT)
        assert [r and r.status for r in records] == ["done"] * len(uids), records
        assert service.wait_idle(WAIT)
    for name, (_, _, service) in beamlines.items():
        own = find_root(client, f"{name}/xanes")
        assert sorted(own) == sorted(run.uid for run in runs[name])  # each once, none other
        for run in runs[name]:
            assert fraction_error(own[run.uid], run.truth) < 0.05
            assert own[run.uid].metadata["analysed_on"] != "this process"
        assert service.table.counts["recovered"] == 0  # none of the other's, nor its own again
    # and the raw runs stayed apart too: what each service could have swept is its own
    for name in BEAMLINES:
        assert sorted(find_root(client, f"{name}/raw")) == sorted(r.uid for r in runs[name])
