"""A day of scans: many small scans back to back through ``xanes-stream serve``, as deployed.

A real Tiled and 0MQ proxy on 127.0.0.1, the service as a subprocess (``xanes-stream serve``,
so its memory is its own), and the simulated beamline's RunEngine here (TiledWriter, then the
proxy). Scans go in chunks; after each chunk, once its maps are written, the service's
resident memory (``VmRSS`` of ``/proc/<pid>/status``) is read, and a thread samples it
meanwhile for the peak. What the service wrote is read from its log (``maps written to
<uri> (<lag> s after its stop document)``, one line per write) and from Tiled (the keys under
the root): every scan mapped, each exactly once, is the answer to expect.

Used by ``benchmarks/bench_soak.py`` (the table) and ``tests/integration/test_soak.py``.
"""

from __future__ import annotations

import re
import statistics
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xanes_stream.devtools.launcher import start_proxy, start_tiled
from xanes_stream.devtools.processes import ManagedProcess, child_env, tool
from xanes_stream.errors import ServiceError
from xanes_stream.sim.run import run_simulated_experiment
from xanes_stream.store.client import API_KEY_ENV
from xanes_stream.store.roots import find_root

__all__ = ["SoakResult", "rss_kib", "run_soak"]

#: 41 energies across the Ni K edge, as the tests use
ENERGIES = np.concatenate(
    [np.arange(8250, 8320, 10.0), np.arange(8320, 8370, 2.0), np.arange(8370, 8451, 10.0)]
)
_WRITTEN = re.compile(r"maps written to (\S+) \(([0-9.]+) s after its stop document\)")
_READY = "xanes-stream serving profile"


@dataclass
class SoakResult:
    """What a soak measured: scans sent and mapped, memory and lag."""

    uids: list[str]  # the scans sent, in order
    under_root: list[str]  # the keys under the results root at the end
    writes: Counter  # maps writes per uid, from the service's log
    lags: dict[str, float]  # stop document to maps written, s, per uid (the last write)
    rss_after: list[tuple[int, int]] = field(default_factory=list)  # (scans mapped, KiB)
    rss_samples: list[int] = field(default_factory=list)  # KiB, every sample of the thread
    seconds: float = 0.0

    @property
    def mapped_once(self) -> bool:
        """Every scan sent is under the root, written once, and nothing else is there."""
        return (
            sorted(self.under_root) == sorted(self.uids)
            and all(self.writes[uid] == 1 for uid in self.uids)
            and sum(self.writes.values()) == len(self.uids)
        )

    def rss(self) -> dict[str, float]:
        """First (after the first chunk), peak and last resident memory, MiB."""
        first, last = self.rss_after[0][1], self.rss_after[-1][1]
        peak = max([*self.rss_samples, *(kib for _, kib in self.rss_after)])
        return {"first": first / 1024, "peak": peak / 1024, "last": last / 1024}

    def lag(self) -> dict[str, float]:
        """Median and maximum of stop-to-maps, s."""
        values = list(self.lags.values())
        return {"median": statistics.median(values), "max": max(values)} if values else {}


def rss_kib(pid: int) -> int | None:
    """The resident memory of process ``pid`` in KiB (``VmRSS``), None once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _written(log: Path) -> tuple[Counter, dict[str, float]]:
    """Maps writes per uid and their lag, from the service's log so far."""
    writes, lags = Counter(), {}
    text = log.read_text(errors="replace") if log.exists() else ""
    for match in _WRITTEN.finditer(text):
        uid = match.group(1).rstrip("/").rsplit("/", 1)[-1]
        writes[uid] += 1
        lags[uid] = float(match.group(2))
    return writes, lags


def _wait(predicate, timeout: float, what: str, service: ManagedProcess) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if not service.running:
            raise ServiceError(f"the service exited while {what}:\n{service.log_text()}")
        if time.monotonic() >= deadline:
            raise ServiceError(f"{what}: not within {timeout:g} s\n{service.log_text()}")
        time.sleep(0.25)


def run_soak(
    n_scans: int = 200,
    *,
    chunk: int = 10,
    shape: tuple[int, int] = (64, 64),
    batch_size: int = 10,
    root: str = "soak/xanes",
    sample_every: float = 1.0,
    timeout: float = 300.0,
    progress=None,
) -> SoakResult:
    """Send ``n_scans`` simulated scans of ``shape`` (``chunk`` per RunEngine plan) through a
    local Tiled, proxy and ``xanes-stream serve`` subprocess, and measure (:class:`SoakResult`).
    ``batch_size`` is TiledWriter's (events per request; the service reads 0MQ, so the raw
    runs need not be frame by frame in Tiled, only complete at their stop).

    Each chunk's maps are awaited (at most ``timeout`` s) before the next chunk starts, so the
    memory read after it is the service's after those scans. ``progress(mapped, rss_mib)`` is
    called after each chunk. Everything started is stopped on return or error.

    Raises
    ------
    ServiceError
        A server or the service did not start, exited, or a chunk's maps did not come.
    """
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="xanes-soak-") as tmp,
        start_tiled(timeout=60) as tiled,
        start_proxy() as proxy,
    ):
        log = Path(tmp) / "serve.log"
        state = str(Path(tmp) / "state")
        argv = [tool("xanes-stream"), "serve", "--tiled-uri", tiled.uri,
                "--zmq", proxy.out_address, "--root", root, "--state-dir", state]  # fmt: skip
        with ManagedProcess(argv, child_env({API_KEY_ENV: tiled.api_key}), log, []) as service:
            _wait(lambda: _READY in service.log_text(20_000), 120, "starting", service)
            time.sleep(1.0)  # the subscriber's first connection (0MQ's slow joiner)
            result = SoakResult([], [], Counter(), {})
            stop_sampling = threading.Event()

            def sample() -> None:
                while not stop_sampling.wait(sample_every):
                    kib = rss_kib(service.pid)
                    if kib is not None:
                        result.rss_samples.append(kib)

            sampler = threading.Thread(target=sample, name="soak-rss", daemon=True)
            sampler.start()
            try:
                for first in range(0, n_scans, chunk):
                    runs = run_simulated_experiment(
                        tiled.uri, tiled.api_key, proxy.in_address,
                        n_scans=min(chunk, n_scans - first), detector="inline", data_dir=None,
                        shape=shape, energies=ENERGIES, seed=first, batch_size=batch_size,
                    )  # fmt: skip
                    result.uids.extend(run.uid for run in runs)  # the truths are not kept
                    del runs
                    _wait(
                        lambda: all(uid in _written(log)[0] for uid in result.uids),
                        timeout,
                        f"maps of scans {first + 1}-{len(result.uids)}",
                        service,
                    )
                    kib = rss_kib(service.pid) or 0
                    result.rss_after.append((len(result.uids), kib))
                    if progress is not None:
                        progress(len(result.uids), kib / 1024)
                time.sleep(2.0)  # a late duplicate would be written by now: let it show
            finally:
                stop_sampling.set()
                sampler.join(5)
            result.writes, result.lags = _written(log)
            client = tiled.client()
            node = find_root(client, root)
            result.under_root = [] if node is None else list(node)
            client.context.close()
    result.seconds = time.monotonic() - started
    return result
