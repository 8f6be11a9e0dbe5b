"""Start and stop the services of one beamline host: a Tiled server and a 0MQ proxy.

Each runs as a subprocess in its own process group, bound to 127.0.0.1, with a bounded
readiness check; ``stop()`` (also on leaving a ``with`` block and at interpreter exit) sends
SIGTERM to the group, then SIGKILL after a timeout, and removes the temporary directories made
here. For a permanent installation use the systemd units in ``services/systemd`` and the config
template ``services/tiled/config.yml`` instead; :func:`tiled_config` writes the same layout.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from xanes_stream.errors import ServiceError
from xanes_stream.store.client import API_KEY_ENV, tiled_client

__all__ = [
    "API_KEY_ENV",
    "ProxyProcess",
    "ServiceError",
    "TiledProcess",
    "free_port",
    "port_is_open",
    "start_proxy",
    "start_tiled",
    "tiled_config",
]

_HOST = "127.0.0.1"
_API_KEY_PATTERN = re.compile(r"^[A-Za-z0-9]+$")
#: HTTP without any *_proxy environment settings: the servers are on this host.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port(host: str = _HOST) -> int:
    """A TCP port that is free on ``host`` right now (another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_open(port: int, host: str = _HOST, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def _tool(name: str) -> str:
    """A console script of this environment (next to the interpreter), else from PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise ServiceError(f"{name} not found next to {sys.executable} nor on PATH")
    return found


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment without TILED_* variables (they override the config file) plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILED_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class _ManagedProcess:
    """A subprocess in its own session, its log file, and the directories to remove."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path, cleanup: list[Path]):
        self.argv = argv
        self.log_path = log_path
        self._cleanup = cleanup
        self._log = open(log_path, "wb")  # closed in stop()
        try:
            self.process = subprocess.Popen(
                argv,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # own process group: stop() signals exactly it
            )
        except OSError as exc:
            self._log.close()
            for path in cleanup:
                shutil.rmtree(path, ignore_errors=True)
            raise ServiceError(f"cannot run {argv[0]}: {exc}") from None
        self.startup_seconds: float | None = None
        atexit.register(self.stop)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log_text(self, tail: int = 4000) -> str:
        """The last ``tail`` characters of the process output."""
        if not self._log.closed:
            self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` s; remove temp dirs. Returns the exit code."""
        atexit.unregister(self.stop)
        # Signal the group only while its leader is unreaped, so the id cannot be reused.
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.process.wait(timeout=10.0)
        if not self._log.closed:
            self._log.close()
        for path in self._cleanup:
            shutil.rmtree(path, ignore_errors=True)
        self._cleanup = []
        return self.process.returncode

    def _fail(self, message: str) -> ServiceError:
        log = self.log_text()
        self.stop()
        return ServiceError(f"{message}\n--- output ---\n{log}")

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def tiled_config(
    root_dir: str | Path,
    readable_dirs: Sequence[str | Path] = (),
    *,
    api_key_env: str = API_KEY_ENV,
    init_if_not_exists: bool = True,
) -> dict[str, Any]:
    """The Tiled server config of xanes-stream for a root directory (catalog and writes).

    The API key is not in it: Tiled expands ``${XANES_TILED_API_KEY}`` from its environment.
    """
    root = Path(root_dir).resolve()
    return {
        "authentication": {
            "single_user_api_key": "${" + api_key_env + "}",
            "allow_anonymous_access": False,
        },
        "catalog": {
            "uri": f"sqlite:///{root}/catalog.db",
            "init_if_not_exists": init_if_not_exists,
            "writable_storage": [f"file://localhost{root}/data", f"sqlite:///{root}/tabular.db"],
            "readable_storage": [str(root / "results")]
            + [str(Path(d).resolve()) for d in readable_dirs],
        },
        "media_types": {
            "BlueskyRun": {
                "application/json-seq": "bluesky_tiled_plugins.exporters:json_seq_exporter"
            }
        },
        "streaming_cache": {"uri": "memory", "data_ttl": 3600, "seq_ttl": 3600},
    }


class TiledProcess(_ManagedProcess):
    """A running ``tiled serve config``: ``uri``, ``api_key``, ``root_dir``, ``stop()``."""

    def __init__(
        self, *, uri: str, port: int, api_key: str, root_dir: Path, config_path: Path, **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.uri, self.port, self.api_key = uri, port, api_key
        self.root_dir, self.config_path = root_dir, config_path
        self.results_dir = root_dir / "results"  # readable by the server: maps files go here

    def client(self, **kwargs: Any):
        """A Tiled client with the API key."""
        return tiled_client(self.uri, self.api_key, **kwargs)

    def healthy(self, timeout: float = 2.0) -> bool:
        """Whether ``/api/v1/`` answers 200."""
        try:
            with _DIRECT.open(f"{self.uri}/api/v1/", timeout=timeout) as response:
                return response.status == 200
        except (OSError, urllib.error.URLError):
            return False


def start_tiled(
    root_dir: str | Path | None = None,
    api_key: str | None = None,
    port: int | None = None,
    readable_dirs: Sequence[str | Path] = (),
    *,
    timeout: float = 60.0,
    attempts: int = 3,
) -> TiledProcess:
    """Start a Tiled server on 127.0.0.1 and wait (at most ``timeout`` s) until it answers.

    ``root_dir`` holds the config, catalog, written data and log; None makes a temporary one,
    removed by ``stop()``. ``api_key`` (letters and digits) defaults to a random one; it reaches
    the server only through its environment. ``readable_dirs`` are where detector files may
    be registered from. With ``port`` None a free port is chosen (and re-chosen if taken).
    """
    api_key = api_key or secrets.token_hex(16)
    if not _API_KEY_PATTERN.match(api_key):
        raise ServiceError("the Tiled API key must consist of letters and digits only")
    temporary = root_dir is None
    root = Path(tempfile.mkdtemp(prefix="xanes-tiled-") if temporary else root_dir).resolve()
    try:
        (root / "data").mkdir(parents=True, exist_ok=True)
        (root / "results").mkdir(exist_ok=True)
        config_path = root / "config.yml"
        config_path.write_text(yaml.safe_dump(tiled_config(root, readable_dirs), sort_keys=False))
    except OSError as exc:
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
        raise ServiceError(f"cannot prepare the Tiled directory {root}: {exc}") from None
    env = _child_env({API_KEY_ENV: api_key})
    tiled = _tool("tiled")
    for attempt in range(1, max(1, attempts) + 1):
        chosen = port or free_port()
        uri = f"http://{_HOST}:{chosen}"
        argv = [tiled, "serve", "config", str(config_path), "--host", _HOST, "--port", str(chosen)]
        server = TiledProcess(
            uri=uri,
            port=chosen,
            api_key=api_key,
            root_dir=root,
            config_path=config_path,
            argv=argv,
            env=env,
            log_path=root / "server.log",
            cleanup=[root] if temporary else [],
        )
        started = time.monotonic()
        deadline = started + timeout
        while server.running and time.monotonic() < deadline:
            if server.healthy(timeout=1.0):
                server.startup_seconds = time.monotonic() - started
                return server
            time.sleep(0.1)
        if server.running:
            raise server._fail(f"Tiled did not answer at {uri}/api/v1/ within {timeout:g} s")
        log = server.log_text()
        address_taken = "address already in use" in log.lower()
        if port is not None or not address_taken or attempt == attempts:
            raise server._fail(f"Tiled exited during start-up (code {server.process.returncode})")
        server._cleanup = []  # keep the temporary root for the next attempt
        server.stop()
    raise AssertionError("unreachable")


class ProxyProcess(_ManagedProcess):
    """A running ``bluesky-0MQ-proxy``: publishers connect to ``in_address``, dispatchers to
    ``out_address`` (both ``"127.0.0.1:port"``)."""

    def __init__(self, *, in_port: int, out_port: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.in_port, self.out_port = in_port, out_port
        self.in_address = f"{_HOST}:{in_port}"
        self.out_address = f"{_HOST}:{out_port}"

    def healthy(self) -> bool:
        """Whether the process runs and both ports accept connections."""
        return self.running and port_is_open(self.in_port) and port_is_open(self.out_port)


def start_proxy(
    in_port: int | None = None,
    out_port: int | None = None,
    *,
    timeout: float = 15.0,
    attempts: int = 3,
) -> ProxyProcess:
    """Start ``bluesky-0MQ-proxy`` bound to 127.0.0.1; wait (at most ``timeout`` s) until it
    has bound both ports. Free ports are chosen for those not given (re-chosen if taken)."""
    log_dir = Path(tempfile.mkdtemp(prefix="xanes-proxy-"))
    tool = _tool("bluesky-0MQ-proxy")
    for attempt in range(1, max(1, attempts) + 1):
        p_in = in_port or free_port()
        p_out = out_port or free_port()
        while p_out == p_in:
            p_out = free_port()
        argv = [tool, "--in-address", f"{_HOST}:{p_in}", "--out-address", f"{_HOST}:{p_out}"]
        proxy = ProxyProcess(
            in_port=p_in,
            out_port=p_out,
            argv=argv,
            env=_child_env({}),
            log_path=log_dir / f"proxy-{attempt}.log",
            cleanup=[log_dir],
        )
        started = time.monotonic()
        deadline = started + timeout
        while proxy.running and time.monotonic() < deadline:
            # the proxy prints this line once both sockets are bound
            if "Receiving on address" in proxy.log_text() and proxy.healthy():
                proxy.startup_seconds = time.monotonic() - started
                return proxy
            time.sleep(0.05)
        if proxy.running:
            raise proxy._fail(f"the 0MQ proxy did not bind within {timeout:g} s")
        log = proxy.log_text()
        taken = "address already in use" in log.lower()
        if (in_port and out_port) or not taken or attempt == attempts:
            raise proxy._fail(f"the 0MQ proxy exited (code {proxy.process.returncode})")
        proxy._cleanup = []
        proxy.stop()
    raise AssertionError("unreachable")


@contextlib.contextmanager
def local_pipeline(
    tiled_root: str | Path, data_dir: str | Path, *, profile: str = "sim", **service_options
):
    """Tiled, the proxy and the analysis service together on this machine, for the demo and
    the tests: yields ``(tiled, proxy, service)``, the service reading detector files from
    ``data_dir``; ``service_options`` are further :class:`ServiceConfig` fields (e.g.
    ``web_port=0`` serves the live page on a free port, at ``service.web.url``). Everything
    is stopped on leaving the block."""
    from xanes_stream.live.service import ServiceConfig, XanesService

    with start_tiled(tiled_root, readable_dirs=[data_dir]) as tiled, start_proxy() as proxy:
        config = ServiceConfig(
            tiled_uri=tiled.uri,
            zmq_address=proxy.out_address,
            profile=profile,
            results_dir=str(tiled.results_dir),
            state_dir=str(Path(tiled_root) / "service-state"),
            allowed_roots=[str(data_dir)],
            **service_options,
        )
        service = XanesService(config, client=tiled.client()).start()
        try:
            yield tiled, proxy, service
        finally:
            service.stop()
