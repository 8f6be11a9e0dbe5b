"""Start and stop the services of one beamline host: a Tiled server and a 0MQ proxy.

Each runs as a subprocess in its own process group, bound to 127.0.0.1, with a bounded
readiness check; ``stop()`` (also on leaving a ``with`` block and at interpreter exit) sends
SIGTERM to the group, then SIGKILL after a timeout, and removes the temporary directories made
here. For a permanent installation use the systemd units in ``services/systemd`` and the config
template ``services/tiled/config.yml`` instead; :func:`tiled_config` writes the same layout.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from xanes_stream.devtools.processes import HOST as _HOST
from xanes_stream.devtools.processes import (
    ManagedProcess,
    child_env,
    free_port,
    port_is_open,
    start_until_ready,
    tool,
)
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

_API_KEY_PATTERN = re.compile(r"^[A-Za-z0-9]+$")
#: HTTP without any *_proxy environment settings: the servers are on this host.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def tiled_config(
    root_dir: str | Path,
    readable_dirs: Sequence[str | Path] = (),
    *,
    api_key_env: str = API_KEY_ENV,
    init_if_not_exists: bool = True,
    streaming_cache: str | None = "memory",
    public: bool = False,
    catalog_uri: str | None = None,
    tabular_uri: str | None = None,
) -> dict[str, Any]:
    """The Tiled server config of xanes-stream for a root directory (catalog and writes).

    The API key is not in it: Tiled expands ``${XANES_TILED_API_KEY}`` from its environment.
    ``streaming_cache`` is the ``uri`` of the server's streaming cache, which websocket
    subscriptions (``serve --source tiled``) need: ``"memory"`` (one server process) or a
    Redis URI (``"redis://127.0.0.1:6379"``); None: none. ``public``: anyone may read
    without a key (writing still needs it), as a facility's read-only archive.
    ``catalog_uri`` (e.g. ``postgresql+asyncpg://user:pw@host:5432/tiled_catalog``) and
    ``tabular_uri`` (``postgresql://...``) replace the SQLite catalog and tables in
    ``root_dir`` (``services/tiled/config-postgres.yml``).
    """
    root = Path(root_dir).resolve()
    config = {
        "authentication": {
            "single_user_api_key": "${" + api_key_env + "}",
            "allow_anonymous_access": public,
        },
        "catalog": {
            "uri": catalog_uri or f"sqlite:///{root}/catalog.db",
            "init_if_not_exists": init_if_not_exists,
            "writable_storage": [
                f"file://localhost{root}/data",
                tabular_uri or f"sqlite:///{root}/tabular.db",
            ],
            "readable_storage": [str(root / "results")]
            + [str(Path(d).resolve()) for d in readable_dirs],
        },
        "media_types": {
            "BlueskyRun": {
                "application/json-seq": "bluesky_tiled_plugins.exporters:json_seq_exporter"
            }
        },
    }
    if streaming_cache is not None:
        config["streaming_cache"] = {"uri": streaming_cache, "data_ttl": 3600, "seq_ttl": 3600}
    return config


class TiledProcess(ManagedProcess):
    """A running ``tiled serve config``: ``uri``, ``api_key``, ``root_dir``, ``stop()``."""

    def __init__(
        self, *, uri: str, port: int, api_key: str, root_dir: Path, config_path: Path, **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.uri, self.port, self.api_key = uri, port, api_key
        self.root_dir, self.config_path = root_dir, config_path
        self.results_dir = root_dir / "results"  # readable by the server: maps files go here
        #: servers started for this one (PostgreSQL, Redis), stopped after it
        self.companions: list[ManagedProcess] = []
        self.catalog_uri: str | None = None
        self.streaming_cache: str | None = None

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop Tiled, then the servers started for it (PostgreSQL, Redis)."""
        code = super().stop(timeout)
        companions, self.companions = self.companions, []
        for companion in reversed(companions):
            companion.stop(timeout)
        return code

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
    streaming_cache: str | None = "default",
    public: bool = False,
    catalog: str = "sqlite",
) -> TiledProcess:
    """Start a Tiled server on 127.0.0.1 and wait (at most ``timeout`` s) until it answers.

    ``root_dir`` holds the config, catalog, written data and log; None makes a temporary one,
    removed by ``stop()``. ``api_key`` (letters and digits) defaults to a random one; it reaches
    the server only through its environment. ``readable_dirs`` are where detector files may
    be registered from. With ``port`` None a free port is chosen (and re-chosen if taken).
    ``streaming_cache`` (websocket subscriptions: ``serve --source tiled``) is ``"memory"``,
    a Redis URI or None (see :func:`tiled_config`); ``"default"``: ``"memory"``, or with
    ``catalog="postgres"`` a Redis started here. ``public``: anonymous clients may read.

    ``catalog``: ``"sqlite"`` (in ``root_dir``), ``"postgres"`` (a PostgreSQL and a Redis are
    started for this server, as a facility deploys Tiled, and stopped after it: see
    :mod:`~xanes_stream.devtools.databases`) or a ``postgresql+asyncpg://`` URI of an
    existing database.
    """
    companions: list[ManagedProcess] = []
    catalog_uri = tabular_uri = None
    if catalog == "postgres":
        from xanes_stream.devtools.databases import start_postgres, start_redis

        postgres = start_postgres(timeout=timeout)
        companions.append(postgres)
        catalog_uri, tabular_uri = postgres.uri(), postgres.uri("tiled_tabular", driver=None)
        if streaming_cache == "default":
            try:
                redis = start_redis(timeout=timeout)
            except BaseException:
                postgres.stop()
                raise
            companions.append(redis)
            streaming_cache = redis.uri
    elif catalog.startswith(("postgresql", "postgres:")):
        catalog_uri = catalog
    elif catalog != "sqlite":
        raise ServiceError(f"catalog must be 'sqlite', 'postgres' or a PostgreSQL URI: {catalog}")
    if streaming_cache == "default":
        streaming_cache = "memory"
    try:
        server = _start_tiled(
            root_dir,
            api_key,
            port,
            readable_dirs,
            timeout=timeout,
            attempts=attempts,
            streaming_cache=streaming_cache,
            public=public,
            catalog_uri=catalog_uri,
            tabular_uri=tabular_uri,
        )
    except BaseException:
        for companion in reversed(companions):
            companion.stop()
        raise
    server.companions = companions
    server.catalog_uri, server.streaming_cache = catalog_uri, streaming_cache
    return server


def _start_tiled(
    root_dir: str | Path | None,
    api_key: str | None,
    port: int | None,
    readable_dirs: Sequence[str | Path],
    *,
    timeout: float,
    attempts: int,
    streaming_cache: str | None,
    public: bool,
    catalog_uri: str | None,
    tabular_uri: str | None,
) -> TiledProcess:
    """:func:`start_tiled` once its catalog and streaming cache are chosen."""
    api_key = api_key or secrets.token_hex(16)
    if not _API_KEY_PATTERN.match(api_key):
        raise ServiceError("the Tiled API key must consist of letters and digits only")
    temporary = root_dir is None
    root = Path(tempfile.mkdtemp(prefix="xanes-tiled-") if temporary else root_dir).resolve()
    try:
        (root / "data").mkdir(parents=True, exist_ok=True)
        (root / "results").mkdir(exist_ok=True)
        config_path = root / "config.yml"
        config_path.write_text(
            yaml.safe_dump(
                tiled_config(
                    root,
                    readable_dirs,
                    streaming_cache=streaming_cache,
                    public=public,
                    catalog_uri=catalog_uri,
                    tabular_uri=tabular_uri,
                ),
                sort_keys=False,
            )
        )
    except OSError as exc:
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
        raise ServiceError(f"cannot prepare the Tiled directory {root}: {exc}") from None
    env = child_env({API_KEY_ENV: api_key})
    tiled = tool("tiled")

    def launch(attempt: int) -> TiledProcess:
        chosen = port or free_port()
        argv = [tiled, "serve", "config", str(config_path), "--host", _HOST, "--port", str(chosen)]
        return TiledProcess(
            uri=f"http://{_HOST}:{chosen}",
            port=chosen,
            api_key=api_key,
            root_dir=root,
            config_path=config_path,
            argv=argv,
            env=env,
            log_path=root / "server.log",
            cleanup=[root] if temporary else [],
        )

    return start_until_ready(
        launch,
        lambda server: server.healthy(timeout=1.0),
        timeout=timeout,
        attempts=attempts,
        not_ready="Tiled did not answer at {process.uri}/api/v1/",
        exited="Tiled exited during start-up (code {code})",
        port_given=port is not None,
    )


class ProxyProcess(ManagedProcess):
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
    proxy_tool = tool("bluesky-0MQ-proxy")

    def launch(attempt: int) -> ProxyProcess:
        p_in = in_port or free_port()
        p_out = out_port or free_port()
        while p_out == p_in:
            p_out = free_port()
        argv = [proxy_tool, "--in-address", f"{_HOST}:{p_in}", "--out-address", f"{_HOST}:{p_out}"]
        return ProxyProcess(
            in_port=p_in,
            out_port=p_out,
            argv=argv,
            env=child_env({}),
            log_path=log_dir / f"proxy-{attempt}.log",
            cleanup=[log_dir],
        )

    return start_until_ready(
        launch,
        # the proxy prints this line once both sockets are bound
        lambda proxy: "Receiving on address" in proxy.log_text() and proxy.healthy(),
        timeout=timeout,
        attempts=attempts,
        not_ready="the 0MQ proxy did not bind",
        exited="the 0MQ proxy exited (code {code})",
        port_given=bool(in_port and out_port),
        poll=0.05,
    )


@contextlib.contextmanager
def local_pipeline(
    tiled_root: str | Path,
    data_dir: str | Path,
    *,
    profile: str = "sim",
    catalog: str = "sqlite",
    **service_options,
):
    """Tiled, the proxy and the analysis service together on this machine, for the demo and
    the tests: yields ``(tiled, proxy, service)``, the service reading detector files from
    ``data_dir``; ``service_options`` are further :class:`ServiceConfig` fields (e.g.
    ``web_port=0`` serves the live page on a free port, at ``service.web.url``). Everything
    is stopped on leaving the block. ``catalog="postgres"``: Tiled on PostgreSQL with a Redis
    streaming cache (see :func:`start_tiled`)."""
    from xanes_stream.live.service import ServiceConfig, XanesService

    tiled_server = start_tiled(tiled_root, readable_dirs=[data_dir], catalog=catalog)
    with tiled_server as tiled, start_proxy() as proxy:
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
