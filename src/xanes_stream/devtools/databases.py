"""PostgreSQL and Redis servers for a local Tiled laid out as a facility runs it: the catalog
(and appendable tables) in PostgreSQL, the streaming cache in Redis.

Each runs as a subprocess (see :class:`~xanes_stream.devtools.processes.ManagedProcess`) in a
temporary directory removed by ``stop()``, on a free port of 127.0.0.1 only, with a bounded
start-up wait and a health check. PostgreSQL refuses to run as root: as root, ``initdb`` and
``postgres`` run as the ``postgres`` user (Debian's server binaries, ``POSTGRES_BIN``). For a
permanent installation see ``services/tiled/config-postgres.yml``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xanes_stream.devtools.processes import (
    HOST,
    ManagedProcess,
    child_env,
    free_port,
    service_user,
    start_until_ready,
)
from xanes_stream.errors import ServiceError

__all__ = [
    "POSTGRES_BIN",
    "PostgresProcess",
    "RedisProcess",
    "databases_available",
    "start_postgres",
    "start_redis",
]

#: Debian's PostgreSQL 15 server binaries (``apt-get install postgresql``).
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
#: The superuser initdb creates; Tiled connects as it over TCP with a password.
DB_USER = "xanes"
#: The databases made for Tiled: its catalog and its appendable tables.
DATABASES = ("tiled_catalog", "tiled_tabular")


def databases_available() -> str | None:
    """None when PostgreSQL and Redis can be started here, else why not."""
    missing = [
        str(POSTGRES_BIN / name)
        for name in ("initdb", "postgres", "pg_isready")
        if not (POSTGRES_BIN / name).exists()
    ]
    if shutil.which("redis-server") is None:
        missing.append("redis-server")
    if missing:
        return f"missing {', '.join(missing)} (scripts/ensure-servers.sh installs them)"
    return None


class PostgresProcess(ManagedProcess):
    """A running ``postgres``: ``port``, ``user``, ``password``, :meth:`uri`, ``stop()``."""

    stop_signal = signal.SIGINT  # fast shutdown: SIGTERM waits for every client to leave

    def __init__(self, *, port: int, password: str, socket_dir: Path, **kwargs: Any):
        super().__init__(**kwargs)
        self.port, self.user, self.password = port, DB_USER, password
        self.socket_dir = socket_dir

    def uri(self, database: str = DATABASES[0], driver: str | None = "asyncpg") -> str:
        """``postgresql[+driver]://user:password@127.0.0.1:port/database``: Tiled's catalog
        wants ``+asyncpg``, its tabular storage (ADBC) the plain ``postgresql://``."""
        scheme = "postgresql" if driver is None else f"postgresql+{driver}"
        return f"{scheme}://{self.user}:{self.password}@{HOST}:{self.port}/{database}"

    def healthy(self, timeout: float = 1.0) -> bool:
        """Whether the server runs and ``pg_isready`` says it accepts connections."""
        if not self.running:
            return False
        try:
            argv = [str(POSTGRES_BIN / "pg_isready"), "-q", "-h", HOST, "-p", str(self.port)]
            done = subprocess.run(
                [*argv, "-t", str(max(1, int(timeout)))],
                capture_output=True,
                timeout=timeout + 5.0,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return done.returncode == 0

    def sql(self, statement: str, database: str = "postgres", timeout: float = 30.0) -> str:
        """Run one SQL statement with ``psql`` over the unix socket (trusted); its output."""
        argv = [str(POSTGRES_BIN / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        argv += ["-h", str(self.socket_dir), "-p", str(self.port), "-U", self.user, "-d", database]
        try:
            done = subprocess.run(
                [*argv, "-c", statement],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                env=child_env({}),
            )
        except subprocess.TimeoutExpired:
            raise ServiceError(f"psql did not finish within {timeout:g} s: {statement}") from None
        if done.returncode != 0:
            raise ServiceError(f"psql failed ({done.returncode}): {statement}\n{done.stderr}")
        return done.stdout


def _run_as(argv: list[str], user, timeout: float) -> None:
    """Run a set-up command (``initdb``) as ``user``, bounded by ``timeout`` s."""
    extra = {} if user is None else {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False, **extra
        )
    except subprocess.TimeoutExpired:
        raise ServiceError(f"{argv[0]} did not finish within {timeout:g} s") from None
    except OSError as exc:
        raise ServiceError(f"cannot run {argv[0]}: {exc}") from None
    if done.returncode != 0:
        raise ServiceError(f"{argv[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def start_postgres(
    databases: Sequence[str] = DATABASES,
    *,
    timeout: float = 60.0,
    attempts: int = 3,
) -> PostgresProcess:
    """Start a throw-away PostgreSQL 15 on a free port of 127.0.0.1; wait (at most ``timeout``
    s) until it accepts connections, then create ``databases``.

    The cluster (``initdb``: superuser ``xanes`` with a random password over TCP, trusted on
    the unix socket, which lies in the temporary directory) and its log are removed by
    ``stop()``. Durability is off (``fsync=off``): this is for tests and the demo.
    """
    if not (POSTGRES_BIN / "postgres").exists():
        raise ServiceError(f"{POSTGRES_BIN / 'postgres'} is missing: run scripts/ensure-servers.sh")
    user = service_user("postgres")
    root = Path(tempfile.mkdtemp(prefix="xanes-postgres-"))
    try:
        if user is not None:
            os.chown(root, user.pw_uid, user.pw_gid)
        password = secrets.token_hex(16)
        pwfile = root / "pwfile"
        pwfile.write_text(password + "\n")
        if user is not None:
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        data = root / "data"
        initdb = [str(POSTGRES_BIN / "initdb"), "-D", str(data), "-U", DB_USER]
        initdb += ["--pwfile", str(pwfile), "--auth-local=trust", "--auth-host=scram-sha-256"]
        initdb += ["-E", "UTF8", "--locale=C", "--no-sync"]
        _run_as(initdb, user, timeout)
        pwfile.unlink()
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise

    def launch(attempt: int) -> PostgresProcess:
        port = free_port()
        argv = [str(POSTGRES_BIN / "postgres"), "-D", str(data), "-p", str(port)]
        argv += ["-c", f"listen_addresses={HOST}", "-c", f"unix_socket_directories={root}"]
        argv += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        return PostgresProcess(
            port=port,
            password=password,
            socket_dir=root,
            argv=argv,
            env=child_env({}),
            log_path=root / f"postgres-{attempt}.log",
            cleanup=[root],
            user=user,
        )

    server = start_until_ready(
        launch,
        lambda server: server.healthy(timeout=1.0),
        timeout=timeout,
        attempts=attempts,
        not_ready="PostgreSQL did not accept connections",
        exited="PostgreSQL exited during start-up ({code})",
    )
    try:
        for name in databases:
            server.sql(f'CREATE DATABASE "{name}"')
    except ServiceError as exc:
        raise server._fail(str(exc)) from None
    return server


class RedisProcess(ManagedProcess):
    """A running ``redis-server``: ``port``, ``uri`` (``redis://127.0.0.1:port``), ``stop()``."""

    def __init__(self, *, port: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.port = port
        self.uri = f"redis://{HOST}:{port}"

    def healthy(self, timeout: float = 1.0) -> bool:
        """Whether the server runs and answers ``PING`` with ``+PONG``."""
        if not self.running:
            return False
        try:
            with socket.create_connection((HOST, self.port), timeout=timeout) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False


def start_redis(*, timeout: float = 30.0, attempts: int = 3) -> RedisProcess:
    """Start ``redis-server`` on a free port of 127.0.0.1, nothing persisted (no RDB, no AOF);
    wait (at most ``timeout`` s) until it answers ``PING``. ``stop()`` removes its directory."""
    redis = shutil.which("redis-server")
    if redis is None:
        raise ServiceError("redis-server is missing: run scripts/ensure-servers.sh")
    root = Path(tempfile.mkdtemp(prefix="xanes-redis-"))

    def launch(attempt: int) -> RedisProcess:
        port = free_port()
        argv = [redis, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
        argv += ["--dir", str(root), "--daemonize", "no"]
        return RedisProcess(
            port=port,
            argv=argv,
            env=child_env({}),
            log_path=root / f"redis-{attempt}.log",
            cleanup=[root],
        )

    return start_until_ready(
        launch,
        lambda server: server.healthy(timeout=1.0),
        timeout=timeout,
        attempts=attempts,
        not_ready="redis-server did not answer PING",
        exited="redis-server exited during start-up ({code})",
        poll=0.05,
    )
