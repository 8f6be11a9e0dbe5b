"""Results to Tiled, or to the local spool (keeping their order) while Tiled is away.

Both are :class:`~xanes_stream.store.sink.ResultSink`: a result is written the same way to
either. Once anything is spooled, later results are spooled behind it until the flusher has
written the spool back to Tiled, so Tiled receives them in order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from xanes_stream.documents.router import ScanJob
from xanes_stream.live.records import ScanTable
from xanes_stream.pipeline.results import Maps
from xanes_stream.store.refusals import refusal
from xanes_stream.store.sink import ResultConflict, ResultSink
from xanes_stream.store.spool import Spool, SpoolFlusher, is_outage

__all__ = ["Delivery"]

log = logging.getLogger(__name__)


class Delivery:
    """Writes each result to ``tiled()`` (None while it cannot be connected to) or ``spool``;
    when a spooled result reaches Tiled, its record in ``table`` says so."""

    def __init__(
        self, tiled: Callable[[], ResultSink | None], spool: Spool, table: ScanTable
    ) -> None:
        self.tiled = tiled
        self.spool = spool
        self.table = table
        self._flusher: SpoolFlusher | None = None

    def start(self) -> None:
        """Start writing the spool back to Tiled in a thread (at once, if it holds results)."""
        self._flusher = SpoolFlusher(self.spool, self._flush_sink, self._written).start()
        if len(self.spool):
            log.info("%d results spooled from before: writing them to Tiled", len(self.spool))
            self._flusher.wake()

    def stop(self) -> None:
        """Stop the spool's writer (what is spooled stays for the next start)."""
        if self._flusher is not None:
            self._flusher.stop()

    def write_maps(self, job: ScanJob, maps: Maps, metadata: dict) -> str | None:
        """Write the maps of ``job``'s scan; returns their URI in Tiled, or None if spooled."""
        return self._deliver(job, lambda sink: sink.write_maps(job.uid, maps, metadata))

    def write_failure(self, job: ScanJob, reason: str, metadata: dict) -> str | None:
        """Record that ``job``'s scan has no maps, and why; returns the record's URI in Tiled,
        or None if spooled."""
        return self._deliver(job, lambda sink: sink.write_failure(job.uid, reason, metadata))

    def _deliver(self, job: ScanJob, write: Callable[[ResultSink], str]) -> str | None:
        tiled = None if len(self.spool) else self.tiled()
        if tiled is not None:
            try:
                return write(tiled)
            except Exception as exc:
                if not is_outage(exc):
                    if getattr(exc, "response", None) is None:
                        raise
                    where = getattr(getattr(tiled, "client", None), "uri", "?")
                    raise refusal(exc, where) from exc  # the server said no: its words
                self.table.last_error = f"Tiled unreachable writing {job.uid[:8]}: {exc}"
        path = write(self.spool)
        log.warning(
            "scan %s (%s): Tiled unreachable; result spooled to %s (%d waiting)",
            job.scan_id,
            job.uid[:8],
            path,
            len(self.spool),
        )
        if self._flusher is not None:
            self._flusher.wake()
        return None

    def _flush_sink(self) -> ResultSink | None:
        """Tiled as the spool's writer sees it: a refusal also updates the scan's record."""
        tiled = self.tiled()
        return None if tiled is None else _Reporting(tiled, self._refused)

    def _refused(self, uid: str, conflict: ResultConflict) -> None:
        """A spooled result of ``uid`` was refused: good maps of another run are kept."""
        log.warning("spooled result of %s not written: %s", uid[:8], conflict)
        self.table.last_error = f"spooled result of {uid[:8]}: {conflict}"
        record = self.table.get(uid)
        if record is not None:
            self.table.update(
                record, status="done", uri=conflict.uri, reason=str(conflict), **conflict.kept
            )

    def _written(self, uid: str, uri: str) -> None:
        """A spooled result of ``uid`` is now in Tiled at ``uri``."""
        record = self.table.get(uid)
        if record is not None:
            status = "failed" if record.status == "failed" else "done"
            latency = time.time() - record.stopped_at if record.stopped_at else None
            self.table.update(record, status=status, uri=uri, latency=latency)


class _Reporting:
    """A :class:`ResultSink` that tells ``refused(uid, conflict)`` of each refusal, then
    raises it on as it came."""

    def __init__(self, sink: ResultSink, refused: Callable[[str, ResultConflict], None]) -> None:
        self.sink, self.refused = sink, refused

    def write_maps(self, uid: str, maps: Maps, metadata: dict) -> str:
        try:
            return self.sink.write_maps(uid, maps, metadata)
        except ResultConflict as conflict:
            self.refused(uid, conflict)
            raise

    def write_failure(self, uid: str, reason: str, metadata: dict) -> str:
        try:
            return self.sink.write_failure(uid, reason, metadata)
        except ResultConflict as conflict:
            self.refused(uid, conflict)
            raise
