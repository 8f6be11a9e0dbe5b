"""A real ``xanes-stream serve`` (a subprocess, its own Tiled and 0MQ proxy) for hostile
documents: published through the proxy as any host on the beamline network could, its memory
read from ``/proc``, its records read back from Tiled. Every wait is bounded."""

import json
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from xanes_stream.devtools.launcher import start_proxy, start_tiled
from xanes_stream.sim.run import connect_publisher

WAIT = 60.0


@dataclass
class Served:
    """The running service and what a test needs of it."""

    process: subprocess.Popen
    tiled: object
    proxy: object
    data_dir: Path
    state_dir: Path
    log_path: Path
    publisher: object

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout: float = WAIT) -> re.Match:
        """The first match of ``pattern`` in the service's log, waited for."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log())
            if found:
                return found
            assert self.process.poll() is None, f"serve exited:\n{self.log()[-3000:]}"
            time.sleep(0.2)
        raise AssertionError(f"{pattern!r} never in the log:\n{self.log()[-3000:]}")

    def peak_rss_mb(self) -> float:
        """The service's peak resident memory so far (VmHWM), MiB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024

    def publish(self, docs) -> None:
        for name, doc in docs:
            self.publisher(name, doc)

    def settle(self) -> None:
        """Publish a probe (a run that is not an energy scan) until the service logs it."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            uid = str(uuid.uuid4())
            self.publisher("start", {"uid": uid, "time": time.time(), "plan_name": "count"})
            self.publisher("stop", {"uid": str(uuid.uuid4()), "run_start": uid,
                                    "time": time.time(), "exit_status": "success"})  # fmt: skip
            try:
                self.wait_log(f"ignored run {uid[:8]}", timeout=2.0)
                return
            except AssertionError:
                continue
        raise AssertionError("the service never saw a probe")

    def record(self, uid: str, timeout: float = WAIT) -> dict:
        """The metadata of run ``uid``'s result in Tiled, once there."""
        client = self.tiled.client()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "xanes" in client and uid in client["xanes"]:
                metadata = dict(client["xanes"][uid].metadata)
                if metadata.get("status"):
                    return metadata
            time.sleep(0.3)
        raise AssertionError(f"no record of {uid} in Tiled:\n{self.log()[-3000:]}")


def _listening(state_dir: Path, process, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if json.loads((state_dir / "status.json").read_text())["listening"]:
                return True
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    """``serve(**env)`` starts Tiled, the proxy and ``xanes-stream serve`` (with ``XANES_*``
    settings ``env``) for the module's tests; all are stopped at its end."""
    started = []

    def start(**env) -> Served:
        base = tmp_path_factory.mktemp("served")
        data_dir, state_dir = base / "detector", base / "state"
        data_dir.mkdir()
        tiled = start_tiled(base / "tiled", readable_dirs=[data_dir])
        started.append(tiled.stop)
        proxy = start_proxy()
        started.append(proxy.stop)
        log_path = base / "serve.log"
        argv = [str(Path(sys.executable).parent / "xanes-stream"), "serve", "--profile", "sim",
                "--tiled-uri", tiled.uri, "--zmq", proxy.out_address,
                "--results-dir", str(tiled.results_dir), "--state-dir", str(state_dir),
                "--allowed-root", str(data_dir)]  # fmt: skip
        environment = {**os.environ, "XANES_TILED_API_KEY": tiled.api_key}
        environment.update({f"XANES_{k.upper()}": str(v) for k, v in env.items()})
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                argv, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        started.append(lambda: _stop(process))
        assert _listening(state_dir, process, WAIT), log_path.read_text()
        publisher = connect_publisher(proxy.in_address)
        started.append(publisher.close)
        served = Served(process, tiled, proxy, data_dir, state_dir, log_path, publisher)
        served.settle()
        return served

    yield start
    for stop in reversed(started):
        stop()


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(10)
