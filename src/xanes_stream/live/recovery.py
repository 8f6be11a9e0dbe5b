"""Scans the live path lost, found again in Tiled's archive of raw runs.

The sweep queues recent energy scans that have no maps (0MQ lost their documents, or the
service was down when they ran); the backfill reads such a scan, or one whose documents came
incomplete, back whole from Tiled.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from xanes_stream.documents.router import ScanJob
from xanes_stream.live.config import ServiceConfig
from xanes_stream.live.connection import TiledConnection
from xanes_stream.live.records import ScanRecord, ScanTable
from xanes_stream.profiles import Profile
from xanes_stream.store.raw_runs import RawRunNotReady, read_scan, unanalysed_runs
from xanes_stream.store.spool import Spool, is_outage

__all__ = ["Recovery"]

log = logging.getLogger(__name__)


class Recovery:
    """Sweeps Tiled for scans lacking maps and ``submit``\\ s them; backfills short jobs."""

    def __init__(
        self,
        config: ServiceConfig,
        profile: Profile,
        roots: list[str],
        *,
        table: ScanTable,
        tiled: TiledConnection,
        spool: Spool,
        submit: Callable[[ScanJob], None],
        raw_runs: Callable[[], object] | None = None,
    ) -> None:
        self.config, self.profile, self.roots = config, profile, roots
        # the raw runs' container (a separate, maybe read-only archive); None: the results' Tiled
        self.raw_runs = raw_runs or (lambda: tiled.store().client)
        self.table, self.tiled, self.spool, self.submit = table, tiled, spool, submit

    def keep_sweeping(self, stopping: threading.Event) -> None:
        """Sweep at once (retrying failed scans), then every ``sweep_interval`` s until
        ``stopping`` is set."""
        self.sweep(retry_failed=True)  # recovery on start
        while not stopping.wait(self.config.sweep_interval):
            self.sweep()

    def sweep(self, *, retry_failed: bool = False) -> list[str]:
        """Queue every recent energy scan in Tiled that has no maps and is not in hand: what
        0MQ lost and what finished while the service was down. ``retry_failed`` (on start)
        also retries, once, scans whose analysis failed although their run ended well.

        Returns
        -------
        list of str
            The uids queued.
        """
        store = self.tiled.store_or_none()
        if store is None or self.config.recover_hours <= 0:
            return []
        since = time.time() - 3600 * self.config.recover_hours
        try:
            uids = unanalysed_runs(
                store.client,
                self.config.results_root,
                self.profile,
                since,
                retry_failed=retry_failed,
                runs=self.raw_runs(),
            )
        except Exception as exc:
            self.table.last_error = f"sweep for scans lacking maps: {exc}"
            log.warning("%s", self.table.last_error)
            return []
        queued, spooled = [], set(self.spool.uids())  # one look at the spool, not one per uid
        now = time.time()
        for uid in uids:
            record = self.table.get(uid)
            if record is not None and not self._lost(record, now):
                continue
            if uid in spooled:
                continue
            why = "no maps in Tiled"
            if record is not None and record.status == "receiving":
                why = "its run ended in Tiled, but its last documents never arrived live"
            log.info("scan %s: %s; analysing it from the archive", uid[:8], why)
            self.table.counts["recovered"] += 1
            job = ScanJob(
                uid=uid,
                start={"uid": uid},
                stop=None,
                profile=self.profile,
                references=[],
                incomplete=why,
                received_at=time.time(),
            )
            self.submit(job)
            queued.append(uid)
        return queued

    def _lost(self, record: ScanRecord, now: float) -> bool:
        """Whether a scan Tiled has whole, but without maps, should be taken from the archive:
        it failed or waits, or it is still receiving although no frame came for a whole sweep
        interval (0MQ lost its stop, or its last documents)."""
        if record.status in ("failed", "waiting"):
            return True
        last = record.last_frame_at or record.received_at or now
        return record.status == "receiving" and now - last > self.config.sweep_interval

    def backfill(self, job: ScanJob, record: ScanRecord) -> ScanJob | None:
        """The whole scan of ``job`` read back from Tiled (None: not an energy scan, or not
        readable yet, in which case the record says why and a later sweep retries)."""
        label = f"scan {job.uid[:8]}"
        log.info("%s: %s; reading it back from Tiled", label, job.incomplete)
        try:
            full = read_scan(
                self.raw_runs(),
                job.uid,
                self.profile,
                self.roots,
                self.config.backfill_timeout,
            )
        except Exception as exc:
            if not (isinstance(exc, RawRunNotReady) or is_outage(exc)):
                raise
            reason = f"{job.incomplete}, and it cannot be read from Tiled yet: {exc}"
            self.table.last_error = f"{label}: {reason}"
            log.warning("%s: %s; a later sweep retries", label, reason)
            self.table.update(record, status="waiting", reason=reason)
            return None
        if full is None:
            log.info("%s: not an energy scan; nothing to do", label)
            self.table.forget(job.uid)
            return None
        full.stopped_at = job.stopped_at or full.stopped_at
        full.notes.append(f"re-read from Tiled: {job.incomplete}")
        self.table.counts["backfilled"] += 1
        self.table.update(
            record,
            scan_id=full.scan_id,
            sample=full.sample,
            series=(full.start.get("xanes") or {}).get("series"),
            frames=0 if full.frames is None else int(full.frames.shape[0]),
        )
        return full
