"""Subprocesses of the local services: free ports, the child environment, and a managed
process (own session, log file, bounded stop, temporary directories removed).

Shared by :mod:`~xanes_stream.devtools.launcher` (Tiled, the 0MQ proxy) and
:mod:`~xanes_stream.devtools.databases` (PostgreSQL, Redis).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from xanes_stream.errors import ServiceError

__all__ = [
    "HOST",
    "ManagedProcess",
    "child_env",
    "free_port",
    "port_is_open",
    "service_user",
    "tool",
]

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A TCP port that is free on ``host`` right now (another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def tool(name: str) -> str:
    """A console script of this environment (next to the interpreter), else from PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise ServiceError(f"{name} not found next to {sys.executable} nor on PATH")
    return found


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment without TILED_* variables (they override the config file) plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TILED_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def service_user(name: str) -> pwd.struct_passwd | None:
    """The account ``name`` a server must run as when this process is root (PostgreSQL
    refuses root), else None: a normal user runs its servers itself."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise ServiceError(f"running as root, but there is no {name!r} user to run as") from None


def _as_user(user: pwd.struct_passwd | None) -> dict[str, Any]:
    """``subprocess.Popen`` arguments that run the child as ``user`` (None: as this process)."""
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


class ManagedProcess:
    """A subprocess in its own session, its log file, and the directories to remove.

    ``user`` (an account from :func:`service_user`) runs it as that user; ``stop_signal`` is
    what :meth:`stop` sends first (SIGTERM; PostgreSQL's fast shutdown is SIGINT).
    """

    stop_signal: int = signal.SIGTERM

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        log_path: Path,
        cleanup: list[Path],
        user: pwd.struct_passwd | None = None,
    ):
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
                **_as_user(user),
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
        """``stop_signal``, then SIGKILL after ``timeout`` s; remove temp dirs; the exit code."""
        atexit.unregister(self.stop)
        # Signal the group only while its leader is unreaped, so the id cannot be reused.
        if self.process.poll() is None:
            self._signal_group(self.stop_signal)
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


P = TypeVar("P", bound=ManagedProcess)


def start_until_ready(
    launch: Callable[[int], P],
    ready: Callable[[P], bool],
    *,
    timeout: float,
    attempts: int,
    not_ready: str,
    exited: str,
    port_given: bool = False,
    poll: float = 0.1,
) -> P:
    """Start a server on a port of its own, retrying on another when that port was taken.

    Parameters
    ----------
    launch : callable
        ``launch(attempt)`` (1, 2, ...) starts the process on a newly chosen port.
    ready : callable
        ``ready(process)``: whether it answers yet; polled every ``poll`` s for at most
        ``timeout`` s.
    timeout : float
        Seconds one attempt may take to become ready.
    attempts : int
        How many ports to try when the previous one was taken.
    not_ready, exited : str
        The errors, formatted with ``process`` (and ``code``, its exit status): ``not_ready``
        (``within N s`` is added) for a process still running but not ready, ``exited`` for
        one that exited otherwise.
    port_given : bool
        The caller chose the port: a taken port is an error, not a retry.
    poll : float
        Seconds between checks.

    Returns
    -------
    ManagedProcess
        The ready process, its ``startup_seconds`` set.

    Raises
    ------
    ServiceError
        With the process' output, once it cannot be started.
    """
    for attempt in range(1, max(1, attempts) + 1):
        process = launch(attempt)
        started = time.monotonic()
        deadline = started + timeout
        while process.running and time.monotonic() < deadline:
            if ready(process):
                process.startup_seconds = time.monotonic() - started
                return process
            time.sleep(poll)
        if process.running:
            raise process._fail(f"{not_ready.format(process=process)} within {timeout:g} s")
        taken = "address already in use" in process.log_text().lower()
        if port_given or not taken or attempt == attempts:
            code = process.process.returncode
            raise process._fail(exited.format(process=process, code=code))
        process._cleanup = []  # keep what the next attempt needs (its directory)
        process.stop()
    raise AssertionError("unreachable")
