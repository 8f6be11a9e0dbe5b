"""Run the live page's app with uvicorn in a thread, with bounded start and stop."""

from __future__ import annotations

import logging
import socket
import threading
import time

import uvicorn

from xanes_stream.errors import ServiceError
from xanes_stream.live.web.app import make_app
from xanes_stream.live.web.guard import HostNames
from xanes_stream.live.web.source import ScanSource

log = logging.getLogger(__name__)


class WebServer:
    """The live page of ``service`` (a :class:`~xanes_stream.live.web.source.ScanSource`) on
    ``host:port`` (port 0: a free one); ``url`` once started. It answers only to the
    ``allowed_hosts`` names (None: ``host``, ``localhost``, ``127.0.0.1``, ``::1``) with its
    port (:mod:`.guard`)."""

    def __init__(
        self,
        service: ScanSource,
        host: str = "127.0.0.1",
        port: int = 0,
        allowed_hosts: list[str] | None = None,
    ):
        self.service = service
        self.host = host
        self.port = port
        self.hosts = HostNames(host, allowed_hosts)
        self.app = make_app(service, self.hosts)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self, timeout: float = 15.0) -> WebServer:
        """Bind, serve in a daemon thread, and wait (at most ``timeout`` s) until it serves."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            msg = f"the live page cannot listen on {self.host}:{self.port}: {exc}"
            raise ServiceError(msg) from None
        self.port = self.hosts.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_config=None,  # leave the service's logging as it is
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=3,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="xanes-web", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ServiceError(f"the live page did not start on {self.url} in {timeout:g} s")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close the event streams, stop serving, and wait (at most ``timeout`` s)."""
        self.app.state.closing.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("the live page's server still runs after %.0f s; leaving it", timeout)

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
