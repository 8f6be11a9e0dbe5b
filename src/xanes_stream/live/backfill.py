"""Runs read back from Tiled in threads of their own, so one run that cannot be read back (an
orphan stop, a run whose archive is late or never comes) never delays another scan's maps.

A job marked ``incomplete`` comes here instead of the analysis queue; a thread reads its run
back (waiting at most ``backfill_timeout`` s for TiledWriter) and hands the whole job to the
analysis queue. The queue is bounded: a run that finds it full waits for a later sweep, with a
record that says so; none is dropped silently.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from xanes_stream.documents.router import ScanJob
from xanes_stream.live.records import ScanRecord, ScanTable
from xanes_stream.store.tiled_store import TiledResultStore

__all__ = ["Backfills"]

log = logging.getLogger(__name__)

Backfill = Callable[[ScanJob, ScanRecord], "ScanJob | None"]


class Backfills:
    """Reads incomplete jobs back with ``backfill`` in ``threads`` threads (at most ``size``
    waiting) and gives each whole job to ``analyse``.

    Parameters
    ----------
    backfill : callable
        ``backfill(job, record)``: the whole job, or None (nothing to analyse now; the record
        says why), as :meth:`~xanes_stream.live.recovery.Recovery.backfill`.
    analyse : callable
        Puts a job on the analysis queue.
    table : ScanTable
        The scans' records.
    store : callable
        The Tiled result store (to see that a run already has maps).
    """

    def __init__(
        self,
        backfill: Backfill,
        analyse: Callable[[ScanJob], None],
        table: ScanTable,
        store: Callable[[], TiledResultStore],
        *,
        threads: int = 2,
        size: int = 64,
    ) -> None:
        self.backfill, self.analyse, self.table, self._store = backfill, analyse, table, store
        self.jobs: queue.Queue[ScanJob | None] = queue.Queue(size)
        self._threads = [
            threading.Thread(target=self._work, name=f"xanes-backfill-{n}", daemon=True)
            for n in range(threads)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop taking jobs; a thread still waiting on Tiled is left (its run waits for the
        next sweep, as any run not yet read back)."""
        for _ in self._threads:
            try:
                self.jobs.put(None, timeout=timeout)
            except queue.Full:
                break
        for thread in self._threads:
            thread.join(timeout / len(self._threads))

    def submit(self, job: ScanJob) -> None:
        """Queue ``job`` to be read back; if too many already wait, its record says so and a
        later sweep (which finds runs in Tiled lacking maps) retries it."""
        try:
            self.jobs.put_nowait(job)
        except queue.Full:
            reason = (
                f"{job.incomplete}; {self.jobs.maxsize} runs already wait to be read back "
                "from Tiled, so this one waits for a later sweep"
            )
            log.warning("scan %s: %s", job.uid[:8], reason)
            self.table.last_error = f"scan {job.uid[:8]}: {reason}"
            self.table.update(self.table.record(job), status="waiting", reason=reason)

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            record = self.table.record(job)
            try:
                full = self._read_back(job, record)
            except Exception as exc:  # the analysis worker records why, as for any failure
                log.exception("scan %s: reading it back from Tiled failed", job.uid[:8])
                job.failure = f"reading it back from Tiled failed: {type(exc).__name__}: {exc}"
                full = job
            if full is not None:
                self.analyse(full)

    def _read_back(self, job: ScanJob, record: ScanRecord) -> ScanJob | None:
        if self._has_maps(job.uid):  # e.g. a repeated stop: re-reading would change nothing
            log.info("scan %s: %s, but it already has maps; nothing to do", job.uid[:8],
                     job.incomplete)  # fmt: skip
            if record.status != "done":
                uri = f"{self._store().root.uri}/{job.uid}"
                self.table.update(record, status="done", uri=record.uri or uri)
            return None
        return self.backfill(job, record)

    def _has_maps(self, uid: str) -> bool:
        try:
            return self._store().status(uid) == "done"
        except Exception:  # Tiled away: the backfill says so
            return False
