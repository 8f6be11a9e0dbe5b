"""``xanes-stream demo``: the whole live path on one machine, on embedded defaults."""

from __future__ import annotations

import logging
import shutil
import signal
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

WAIT_PER_SCAN = 60.0


def run_demo(
    output: Path,
    *,
    n_scans: int = 4,
    size: int = 128,
    keep: bool = False,
    detector: str = "hdf5",
    web_port: int | None = 0,
    postgres: bool = False,
) -> int:
    from xanes_stream.devtools.launcher import local_pipeline
    from xanes_stream.io.plotting import plot_maps
    from xanes_stream.sim.run import run_simulated_experiment
    from xanes_stream.store.tiled_store import TiledResultStore

    output = output.resolve()
    for stale in ("tiled", "detector"):
        shutil.rmtree(output / stale, ignore_errors=True)
    data_dir = output / "detector"
    data_dir.mkdir(parents=True)
    catalog = "postgres" if postgres else "sqlite"
    layout = "PostgreSQL catalog, Redis streaming cache" if postgres else "SQLite catalog"
    print(f"starting Tiled ({layout}) and the 0MQ proxy on 127.0.0.1 ...", flush=True)
    pipeline = local_pipeline(output / "tiled", data_dir, web_port=web_port, catalog=catalog)
    with pipeline as (tiled, proxy, service):
        if service.web is not None:
            print(f"live page: {service.web.url}  (open it to watch the scans)", flush=True)
        print(f"running {n_scans} simulated XANES scans (in-operando series) ...", flush=True)
        runs = run_simulated_experiment(
            tiled.uri,
            tiled.api_key,
            proxy.in_address,
            n_scans=n_scans,
            detector=detector,
            data_dir=data_dir,
            shape=(size, size),
        )
        uids = [run.uid for run in runs]
        service.wait_for(uids, WAIT_PER_SCAN * n_scans)
        store = TiledResultStore(tiled.client())
        rows = _table(store, runs, service)
        last = next((run for run in reversed(runs) if store.status(run.uid) == "done"), None)
        if last is not None:
            figure = plot_maps(
                store.read_maps(last.uid),
                output / "last_scan.png",
                title=f"scan {store.root[last.uid].metadata['scan_id']}",
            )
            print(f"\nfigure of the last scan's maps: {figure}")
        print(f"\nmaps are in Tiled at {tiled.uri}/api/v1/metadata/xanes")
        print("read them with the Tiled client (this demo server's throwaway API key):\n")
        print("    from tiled.client import from_uri")
        print(
            f"    maps = from_uri({tiled.uri!r}, api_key={tiled.api_key!r})['xanes'][{uids[-1]!r}]"
        )
        print(
            "    maps['fractions'].read()  # layers: maps['fractions'].metadata['reference_names']"
        )
        print("    maps['r_factor'].read(), maps['edge_energy'].read(), maps.metadata")
        if keep:
            if service.web is not None:
                print(f"\nlive page: {service.web.url}", flush=True)
            print("serving on 127.0.0.1; Ctrl-C to stop", flush=True)
            _wait_for_interrupt()
        missing = [row for row in rows if row["status"] != "done"]
        return 1 if missing else 0


def _table(store, runs, service) -> list[dict]:
    print(
        "\nscan  sample                          "
        + "  ".join(f"{name:>7s}" for name in runs[0].truth.references)
        + "   truth-err  R-factor  latency"
    )
    rows = []
    for run in runs:
        status = store.status(run.uid)
        record = service.records.get(run.uid)
        row = {"uid": run.uid, "status": status or "missing"}
        rows.append(row)
        if status != "done":
            reason = record.reason if record else "no result in time"
            print(f"{'?':>4s}  {status or 'missing'}: {reason}")
            continue
        node = store.root[run.uid]
        md = node.metadata
        summary = md["summary"]
        truth = run.truth
        inside = truth.particles & (truth.thickness > 0.3 * truth.thickness.max())
        names = node["fractions"].metadata["reference_names"]
        fitted = node["fractions"].read()[[names.index(n) for n in truth.references]]
        error = float(np.nanmedian(np.abs(fitted - truth.fractions)[:, inside]))
        fractions = "  ".join(f"{summary['mean_fractions'][n]:7.3f}" for n in truth.references)
        latency = f"{record.latency:6.2f} s" if record and record.latency else "   ?"
        print(
            f"{md['scan_id']!s:>4s}  {md['sample'][:30]:30s}  {fractions}   {error:9.3f}"
            f"  {summary['median_r_factor']:8.2g}  {latency}"
        )
    return rows


def _wait_for_interrupt() -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
