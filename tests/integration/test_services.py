"""A real Tiled server and a real 0MQ proxy on 127.0.0.1, fed by the simulated beamline."""

import asyncio
import threading
import time
from collections import Counter
from pathlib import Path

import h5py
import httpx
import numpy as np
import pytest
from bluesky.callbacks.zmq import RemoteDispatcher
from tiled.client import from_uri

from xanes_stream.devtools.launcher import (
    ServiceError,
    port_is_open,
    start_proxy,
    start_tiled,
)
from xanes_stream.documents import codec
from xanes_stream.sim.devices import DATASET
from xanes_stream.sim.run import connect_publisher, run_simulated_experiment

ENERGIES = [8300.0, 8335.0, 8345.0, 8350.0, 8360.0, 8400.0]
SHAPE = (32, 48)
PREFIX = b"xanes"
PROBE = "xanes-probe-"


class DispatcherThread:
    """A RemoteDispatcher (made in its own thread: it creates its event loop) collecting
    documents; ``stop()`` cancels its poll task from the loop's thread."""

    def __init__(self, address: str):
        self.address = address
        self.docs: list[tuple[str, dict]] = []
        self.error: BaseException | None = None
        self.changed = threading.Condition()
        self._ready = threading.Event()
        self.dispatcher = None
        self.thread = threading.Thread(target=self._run, name="test-dispatcher", daemon=True)

    def _collect(self, name, doc):
        with self.changed:
            self.docs.append((name, doc))
            self.changed.notify_all()

    def _run(self):
        d = RemoteDispatcher(self.address, prefix=PREFIX, deserializer=codec.unpackb)
        d.subscribe(self._collect)
        self.dispatcher = d
        d.loop.call_soon(self._ready.set)
        try:
            d.start()
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # reported by the test
            self.error = exc

    def start(self, timeout=10.0):
        self.thread.start()
        assert self._ready.wait(timeout), "RemoteDispatcher did not start"
        return self

    def wait_for(self, predicate, timeout):
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self.docs), timeout)

    def wait_subscribed(self, proxy_in_address, timeout=10.0):
        """Send probe documents through the proxy until one arrives, then forget them."""
        publisher = connect_publisher(proxy_in_address, prefix=PREFIX, timeout=timeout)
        deadline = time.monotonic() + timeout
        try:
            for n in range(10**6):
                publisher("start", {"uid": f"{PROBE}{n}", "time": 0.0})
                if self.wait_for(lambda docs: docs, 0.05) or time.monotonic() > deadline:
                    break
        finally:
            publisher.close()
        time.sleep(0.1)
        with self.changed:
            assert self.docs, "no probe came through the proxy"
            self.docs.clear()

    def stop(self, timeout=5.0):
        d = self.dispatcher
        if d is not None and not d.loop.is_closed():
            try:
                d.loop.call_soon_threadsafe(lambda: d._task and d._task.cancel())
            except RuntimeError:
                pass  # loop closed meanwhile
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def real_docs(self):
        return [(n, d) for n, d in self.docs if not str(d.get("uid", "")).startswith(PROBE)]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("detector")
    t0 = time.monotonic()
    proxy = start_proxy()
    try:
        tiled = start_tiled(readable_dirs=[data_dir], timeout=60)
    except BaseException:
        proxy.stop()
        raise
    print(f"services up in {time.monotonic() - t0:.1f} s (tiled {tiled.startup_seconds:.1f} s)")
    yield tiled, proxy, data_dir
    tiled.stop()
    proxy.stop()
    # everything is gone: processes, ports, temporary directories
    assert tiled.process.poll() is not None and proxy.process.poll() is not None
    assert not port_is_open(tiled.port)
    assert not port_is_open(proxy.in_port) and not port_is_open(proxy.out_port)
    assert not tiled.root_dir.exists() and not proxy.log_path.parent.exists()


def run_through_services(servers, detector, n_scans):
    tiled, proxy, data_dir = servers
    dispatcher = DispatcherThread(proxy.out_address).start()
    local = []
    try:
        dispatcher.wait_subscribed(proxy.in_address)
        t0 = time.monotonic()
        runs = run_simulated_experiment(
            tiled.uri,
            tiled.api_key,
            proxy.in_address,
            n_scans=n_scans,
            detector=detector,
            data_dir=data_dir,
            shape=SHAPE,
            energies=ENERGIES,
            prefix=PREFIX,
            callbacks=[lambda name, doc: local.append((name, doc))],
        )
        print(f"{n_scans} {detector} scans through Tiled and 0MQ: {time.monotonic() - t0:.1f} s")

        def all_stops(docs):
            return sum(n == "stop" for n, _ in docs) >= n_scans

        assert dispatcher.wait_for(all_stops, 20.0), "the dispatcher missed documents"
        time.sleep(0.1)  # nothing else should arrive
    finally:
        assert dispatcher.stop(), "dispatcher thread did not stop"
    assert dispatcher.error is None
    remote = dispatcher.real_docs()
    # every document, in order, as the RunEngine emitted it
    assert [(n, d["uid"]) for n, d in remote] == [(n, d["uid"]) for n, d in local]
    return runs, remote, local


@pytest.mark.timeout(180)
def test_hdf5_runs_reach_tiled_and_the_dispatcher(servers):
    tiled, _, data_dir = servers
    runs, remote, _ = run_through_services(servers, "hdf5", n_scans=2)
    n = len(ENERGIES)
    counts = Counter(name for name, _ in remote)
    assert counts == {
        "start": 2,
        "descriptor": 6,
        "stream_resource": 6,
        "stream_datum": 2 * (n + 2),
        "event": 2 * (n + 2),
        "stop": 2,
    }
    client = tiled.client()
    try:
        series = set()
        for index, run in enumerate(runs):
            node = client[run.uid]
            start = node.metadata["start"]
            assert node.metadata["stop"]["exit_status"] == "success"
            assert start["xanes"]["series_index"] == index
            assert start["xanes"]["energies"] == ENERGIES
            assert start["xanes"]["references"] == list(run.truth.references)
            series.add(start["xanes"]["series"])
            assert {"primary", "dark", "flat"} <= set(node)
            dark_file, flat_file, sample_file = run.truth.files
            for stream, path, frames in [("dark", dark_file, 1), ("flat", flat_file, 1),
                                         ("primary", sample_file, n)]:  # fmt: skip
                image = node[stream]["camera_image"]
                source = image.data_sources()[0]
                assert source.mimetype == "application/x-hdf5"
                assert source.management == "external"
                stack = image.read()
                assert stack.shape == (frames, *SHAPE) and stack.dtype == np.float32
                with h5py.File(path, "r") as f:
                    np.testing.assert_array_equal(stack, f[DATASET][()])
                assert Path(path).parent == data_dir.resolve()
            np.testing.assert_allclose(node["primary"]["energy"].read(), ENERGIES)
            assert run.truth.energies == ENERGIES and run.truth.uid == run.uid
        assert len(series) == 1
    finally:
        client.context.close()


@pytest.mark.timeout(180)
def test_inline_run_images_match_in_tiled_and_over_0mq(servers):
    tiled, _, _ = servers
    (run,), remote, local = run_through_services(servers, "inline", n_scans=1)
    remote_events = [d for n, d in remote if n == "event"]
    local_events = [d for n, d in local if n == "event"]
    assert len(remote_events) == len(ENERGIES) + 2
    for r, loc in zip(remote_events, local_events, strict=True):
        image = r["data"]["camera_image"]
        assert isinstance(image, np.ndarray) and image.dtype == np.float32
        np.testing.assert_array_equal(image, loc["data"]["camera_image"])
    client = tiled.client()
    try:
        primary = client[run.uid]["primary"]
        stack = primary["camera_image"].read()
        expected = np.stack([e["data"]["camera_image"] for e in remote_events[2:]])
        np.testing.assert_array_equal(stack, expected)
    finally:
        client.context.close()


@pytest.mark.timeout(180)
def test_tiled_refuses_requests_without_the_api_key(servers, monkeypatch):
    tiled, _, _ = servers
    monkeypatch.delenv("TILED_API_KEY", raising=False)
    with httpx.Client(trust_env=False) as http:
        assert http.post(f"{tiled.uri}/api/v1/metadata/", json={}).status_code == 401
        assert http.get(f"{tiled.uri}/api/v1/metadata/").status_code == 401
        wrong = {"Authorization": "Apikey wrong0key"}
        assert http.post(f"{tiled.uri}/api/v1/metadata/", json={}, headers=wrong).status_code == 401
        right = {"Authorization": f"Apikey {tiled.api_key}"}
        assert http.get(f"{tiled.uri}/api/v1/metadata/", headers=right).status_code == 200
    with pytest.raises(Exception, match=r"(?i)api key|401"):
        from_uri(tiled.uri)
    with pytest.raises(ServiceError, match="letters and digits"):
        start_tiled(api_key="not-a-valid-key")


@pytest.mark.timeout(60)
def test_proxy_stops_and_frees_its_ports():
    with start_proxy() as proxy:
        assert proxy.healthy() and proxy.in_address.startswith("127.0.0.1:")
        ports = (proxy.in_port, proxy.out_port)
    assert proxy.process.poll() is not None
    assert not any(port_is_open(p) for p in ports)
    assert not proxy.log_path.parent.exists()
