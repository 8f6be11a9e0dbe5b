"""Where a scan's analysis runs: in this process (the default), or on a Dask cluster.

An :class:`Analyser` takes the arguments of :func:`~xanes_stream.pipeline.scan.analyze_scan`
and returns a :class:`Pending` whose ``result()`` gives ``(maps, where)``: the maps and the
name of what analysed them (``"in-process"`` or the Dask worker's address).

:class:`DaskAnalyser` scatters each scan's frames to the cluster (they are not put in the
task graph) and submits the analysis with ``retries=2``, so a worker that dies mid-scan has
it re-run elsewhere. An error of the analysis itself is raised as it would be in-process; a
failure of the cluster (the connection lost, the task cancelled or its data lost) re-runs
that scan in this process, and once the scheduler is gone every later scan is analysed here
too, said by one log line. A scan's result is taken once, so it is delivered once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from xanes_stream.errors import XanesStreamError
from xanes_stream.pipeline.scan import analyze_scan

__all__ = ["Analyser", "DaskAnalyser", "InProcess", "Pending", "analyser_for"]

log = logging.getLogger(__name__)

IN_PROCESS = "in-process"


class Pending(Protocol):
    """An analysis submitted: ``result()`` blocks until ``(maps, where)``."""

    def result(self): ...


class Analyser(Protocol):
    """Runs :func:`analyze_scan` somewhere: ``submit(frames, **kwargs) -> Pending``."""

    def submit(self, frames, **kwargs) -> Pending: ...

    def warm_up(self, warm_up: Callable[..., None], *args) -> None: ...

    def close(self) -> None: ...


class _Now:
    """An analysis run in this thread when its result is asked for."""

    def __init__(self, frames, kwargs: dict) -> None:
        self._frames, self._kwargs = frames, kwargs

    def result(self):
        return analyze_scan(self._frames, **self._kwargs), IN_PROCESS


class InProcess:
    """The embedded default: :func:`analyze_scan` in the calling thread."""

    def submit(self, frames, **kwargs) -> _Now:
        return _Now(frames, kwargs)

    def warm_up(self, warm_up: Callable[..., None], *args) -> None:
        """Nothing: the service warms this process up itself."""

    def close(self) -> None:
        pass


class _Failed(Exception):
    """An error of the analysis on a worker, carried back as a value (not a cluster error)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.error = error


def _analyse_on_worker(frames, kwargs: dict):
    """The task: the maps and the worker's address; an analysis error comes back as a value,
    so that any exception the client sees is the cluster's."""
    from distributed import get_worker

    try:
        return analyze_scan(frames, **kwargs), get_worker().address
    except Exception as exc:
        return _Failed(exc), get_worker().address


def _worker_version() -> str:
    """Run on each worker at the start: the analysis imports there; this package's version."""
    import xanes_stream.pipeline.scan  # noqa: F401  (what the tasks need, imported once)
    from xanes_stream import __version__

    return __version__


class _OnCluster:
    """A scan submitted to the cluster. ``result()`` submits it once more if the cluster
    failed it while still up (e.g. the worker holding its frames died), and analyses it in
    this process if that fails too or the cluster is gone."""

    def __init__(self, analyser: DaskAnalyser, frames, kwargs: dict, futures: tuple) -> None:
        self._analyser, self._frames, self._kwargs = analyser, frames, kwargs
        self._futures = futures

    def result(self, resubmits: int = 1):
        for attempt in range(resubmits + 1):
            if attempt:
                self._futures = self._analyser.send(self._frames, self._kwargs)
                if self._futures is None:
                    break
            data, future = self._futures
            try:
                value = self._analyser.wait(future)
            finally:  # the cluster holds neither the frames nor the maps any longer
                for held in (future, data):
                    with contextlib.suppress(Exception):
                        held.release()
            if value is not None:
                maps, where = value
                if isinstance(maps, _Failed):
                    raise maps.error
                return maps, where
            if self._analyser.lost:
                break
        if not self._analyser.lost:  # a lost cluster said so once, for every scan
            log.warning("analysing a scan in-process: the Dask cluster could not")
        return analyze_scan(self._frames, **self._kwargs), IN_PROCESS


class DaskAnalyser:
    """Analyses on the Dask cluster at ``address``; in-process once the cluster is lost.

    Parameters
    ----------
    address : str
        The scheduler, e.g. ``tcp://10.0.0.5:8786`` or ``127.0.0.1:8786``.
    timeout : float
        Seconds to reach the scheduler at the start.

    Raises
    ------
    XanesStreamError
        The scheduler cannot be reached (one sentence, no traceback).
    """

    def __init__(self, address: str, *, timeout: float = 10.0) -> None:
        from distributed import Client

        self.address = address
        try:
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except Exception as exc:
            raise XanesStreamError(
                f"cannot reach the Dask scheduler at {address}: {type(exc).__name__}: {exc}"
            ) from None
        self._lost = threading.Event()
        self._lock = threading.Lock()
        self._check_workers(timeout)
        log.info("analysing on the Dask cluster at %s", address)

    def _check_workers(self, timeout: float) -> None:
        """The workers import this package, of this version (else one clear error)."""
        from xanes_stream import __version__

        try:
            versions = self.client.run(_worker_version, wait=True, on_error="return")
        except Exception as exc:
            self.close()
            raise XanesStreamError(
                f"the Dask cluster at {self.address} did not answer: {type(exc).__name__}: {exc}"
            ) from None
        broken = {w: v for w, v in versions.items() if isinstance(v, BaseException)}
        if broken:
            self.close()
            worker, error = next(iter(broken.items()))
            raise XanesStreamError(
                f"the Dask workers at {self.address} cannot run the analysis ({worker}: "
                f"{type(error).__name__}: {error}): install xanes-stream {__version__} there"
            )
        others = sorted({v for v in versions.values() if v != __version__})
        if others:
            log.warning("Dask workers run xanes-stream %s, this is %s", others, __version__)
        if not versions:
            log.warning("the Dask cluster at %s has no workers yet", self.address)

    @property
    def lost(self) -> bool:
        """Whether the cluster went away (every scan is then analysed in-process)."""
        return self._lost.is_set()

    def _lose(self, why: str) -> None:
        with self._lock:
            if self._lost.is_set():
                return
            self._lost.set()
        log.warning(
            "Dask cluster at %s lost (%s): analysing in-process from now on", self.address, why
        )

    def warm_up(self, warm_up: Callable[..., None], *args) -> None:
        """``warm_up(*args)`` on every worker (first-call costs not paid by the first scans);
        bounded, and a failure is only logged."""
        try:
            self.client.run(warm_up, *args, wait=True, on_error="return")
        except Exception as exc:  # only a warm-up
            log.debug("warming up the Dask workers: %s", exc)

    def send(self, frames, kwargs: dict) -> tuple | None:
        """Scatter ``frames`` and submit their analysis: ``(data, future)``, or None (and the
        cluster marked lost) when the scheduler is gone."""
        if self.lost:
            return None
        try:
            data = self.client.scatter(frames, hash=False)
            future = self.client.submit(_analyse_on_worker, data, kwargs, pure=False, retries=2)
        except Exception as exc:  # the scheduler is gone (or refuses)
            self._lose(f"{type(exc).__name__}: {exc}")
            return None
        return data, future

    def submit(self, frames, **kwargs) -> Pending:
        futures = self.send(frames, kwargs)
        if futures is None:
            return _Now(frames, kwargs)
        return _OnCluster(self, frames, kwargs, futures)

    def wait(self, future, poll: float = 1.0, grace: float = 10.0):
        """``future``'s value, or None when the cluster failed it (lost, cancelled, data
        gone, retries used up on dying workers) or stayed unreachable ``grace`` s."""
        from distributed import TimeoutError as DaskTimeout

        unreachable_since = None
        while True:
            try:
                return future.result(timeout=poll)
            except (DaskTimeout, TimeoutError):
                if self.client.status == "running":
                    unreachable_since = None
                    continue
                unreachable_since = unreachable_since or time.monotonic()
                if time.monotonic() - unreachable_since > grace:
                    self._lose(f"no connection for {grace:.0f} s")
                    return None
            except Exception as exc:  # comm closed, cancelled, KilledWorker, lost data
                why = f"{type(exc).__name__}: {exc}"
                if self.client.status != "running":
                    self._lose(why)
                else:
                    log.warning("Dask could not analyse a scan (%s): submitting it again", why)
                return None

    def close(self) -> None:
        try:
            self.client.close(timeout=5)
        except Exception as exc:  # the cluster may be gone already
            log.debug("closing the Dask client: %s", exc)


def analyser_for(dask: str | None) -> Analyser:
    """:class:`InProcess` without an address, else a :class:`DaskAnalyser` on it."""
    return InProcess() if not dask else DaskAnalyser(dask)
