"""Results waiting on local disk while Tiled cannot take them, written back in order.

Each entry is one file named ``<sequence>-<raw uid>.h5`` (maps, in the maps-file layout, with
the Tiled metadata in its attributes) or ``.failed.json`` (a failure record); the uid is one
:func:`~xanes_stream.documents.identifiers.check_uid` allows, so never a path. Entries survive a
restart of the service; :meth:`Spool.flush` writes them oldest first and stops at the first
that Tiled still refuses, so the order is kept.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from xanes_stream.documents.identifiers import check_uid, inside
from xanes_stream.io.maps_file import read_maps, write_maps
from xanes_stream.pipeline.results import Maps, jsonable
from xanes_stream.store.sink import ResultSink

log = logging.getLogger(__name__)


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means Tiled is unreachable or overloaded (worth retrying), rather than
    that it refused the request."""
    import httpx

    if isinstance(exc, httpx.TransportError | ConnectionError | TimeoutError):
        return True
    response = getattr(exc, "response", None)
    return response is not None and getattr(response, "status_code", 0) >= 500


class Spool:
    """A folder of results not yet in Tiled: a :class:`~xanes_stream.store.sink.ResultSink`."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._sequence = max((self._number(p) for p in self.entries()), default=0)

    @staticmethod
    def _number(path: Path) -> int:
        return int(path.name.split("-", 1)[0])

    def entries(self) -> list[Path]:
        """Waiting entries, oldest first."""
        files = [*self.folder.glob("*-*.h5"), *self.folder.glob("*-*.failed.json")]
        return sorted(files, key=self._number)

    def __len__(self) -> int:
        return len(self.entries())

    def uids(self) -> list[str]:
        return [self._uid(p) for p in self.entries()]

    @staticmethod
    def _uid(path: Path) -> str:
        return path.name.split("-", 1)[1].split(".", 1)[0]

    def _next(self, uid: str, suffix: str) -> Path:
        """The next entry's file: in the spool folder whatever ``uid`` says (it is checked to
        be a run uid, and the resolved path to be in the folder)."""
        check_uid(uid)
        with self._lock:
            self._sequence += 1
            return inside(self.folder, f"{self._sequence:09d}-{uid}{suffix}")

    def write_maps(self, uid: str, maps: Maps, metadata: dict) -> str:
        """Spool the maps of raw run ``uid`` with their Tiled ``metadata``; returns the file."""
        path = self._next(uid, ".h5")
        partial = path.with_suffix(".partial")
        write_maps(maps, partial, {"tiled_metadata": metadata})
        partial.rename(path)  # a crash mid-write leaves no half entry behind
        return str(path)

    def write_failure(self, uid: str, reason: str, metadata: dict) -> str:
        """Spool the record that raw run ``uid`` has no maps, and why; returns the file."""
        path = self._next(uid, ".failed.json")
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(jsonable({"reason": reason, "metadata": metadata})))
        partial.rename(path)
        return str(path)

    def flush(self, sink: ResultSink) -> list[tuple[str, str]]:
        """Write waiting entries to ``sink`` (Tiled) oldest first; returns (uid, uri) of those
        written. Stops at the first outage; an entry refused for another reason is set aside
        as ``.rejected``."""
        written = []
        for path in self.entries():
            uid = self._uid(path)
            try:
                if path.name.endswith(".failed.json"):
                    entry = json.loads(path.read_text())
                    uri = sink.write_failure(uid, entry["reason"], entry["metadata"])
                else:
                    maps = read_maps(path)
                    metadata = maps.metadata.pop("tiled_metadata", {})
                    uri = sink.write_maps(uid, maps, metadata)
            except Exception as exc:
                if is_outage(exc):
                    return written
                log.error("spooled result %s refused by Tiled (%s); kept as .rejected", path, exc)
                path.rename(path.with_name(path.name + ".rejected"))
                continue
            path.unlink()
            written.append((uid, uri))
            log.info("spooled result of %s written to Tiled", uid[:8])
        return written


class SpoolFlusher:
    """Retries a spool in a thread, backing off from ``interval`` to ``max_interval`` s.

    ``sink()`` gives the sink to write to (None while Tiled cannot even be connected to);
    ``written(uid, uri)`` is told of each entry written.
    """

    def __init__(
        self,
        spool: Spool,
        sink: Callable[[], ResultSink | None],
        written: Callable[[str, str], None] = lambda uid, uri: None,
        interval: float = 1.0,
        max_interval: float = 30.0,
    ):
        self.spool, self.sink, self.written = spool, sink, written
        self.interval, self.max_interval = interval, max_interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="xanes-spool", daemon=True)

    def start(self) -> SpoolFlusher:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        wait = self.interval
        while not self._stop.is_set():
            self._wake.wait(wait)
            self._wake.clear()
            if self._stop.is_set() or not len(self.spool):
                wait = self.interval
                continue
            started = time.monotonic()
            sink = self.sink()
            for uid, uri in self.spool.flush(sink) if sink is not None else ():
                self.written(uid, uri)
            if len(self.spool):
                wait = min(self.max_interval, max(wait * 2, time.monotonic() - started))
            else:
                wait = self.interval
