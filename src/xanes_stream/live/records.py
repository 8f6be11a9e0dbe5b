"""What happened to each scan: its record, the table of records, and the status report.

Every change of a record is published on the table's :class:`~xanes_stream.live.events.EventLog`
(kind ``scan``), so the live page follows the scans without polling.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from xanes_stream.documents.router import ScanJob
from xanes_stream.live.events import EventLog
from xanes_stream.pipeline.results import jsonable

__all__ = ["SETTLED", "ScanRecord", "ScanTable", "write_status"]

log = logging.getLogger(__name__)

#: Statuses after which a scan's record no longer changes by itself.
SETTLED = ("done", "failed")


@dataclass
class ScanRecord:
    """What happened to one scan, for status reports and the demo's table."""

    uid: str
    scan_id: object
    sample: str
    status: str  # receiving | queued | analysing | spooled | waiting | done | failed
    frames: int = 0
    expected: int | None = None
    series: str | None = None
    received_at: float | None = None
    uri: str | None = None
    reason: str | None = None
    latency: float | None = None
    analysis_seconds: float | None = None
    summary: dict = field(default_factory=dict)
    stopped_at: float | None = None
    timings: dict = field(default_factory=dict)  # s: stack, from_stop_to_analysis, analysis, write
    last_frame_at: float | None = None  # epoch s of the last frame received live
    started_at: object = None  # the start document's time: which run of this uid it is

    def as_dict(self) -> dict:
        """The record as JSON-ready values."""
        return jsonable(asdict(self))


class ScanTable:
    """The records of the scans seen, by raw uid, and the counts and last error beside them.

    ``lock`` (re-entrant) guards the records; take it to read or change several at once.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.records: dict[str, ScanRecord] = {}
        self.events = EventLog()
        self.counts = {"backfilled": 0, "recovered": 0}
        self.last_error: str | None = None

    def get(self, uid: str) -> ScanRecord | None:
        """The record of scan ``uid``, or None if it has not been seen."""
        with self.lock:
            return self.records.get(uid)

    def snapshot(self) -> list[ScanRecord]:
        """The records as they are now, in the order the scans were first seen."""
        with self.lock:
            return list(self.records.values())

    def record(self, job: ScanJob) -> ScanRecord:
        """The record of ``job``'s scan, made (as receiving) if it has none yet."""
        with self.lock:
            record = self.records.get(job.uid)
            if record is None:
                record = self.records[job.uid] = ScanRecord(
                    job.uid,
                    job.scan_id,
                    job.sample,
                    "receiving",
                    series=(job.start.get("xanes") or {}).get("series"),
                    received_at=job.received_at,
                    started_at=job.start.get("time"),
                )
            return record

    def update(self, record: ScanRecord, **changes) -> None:
        """Change a scan's record and tell the event log's readers."""
        with self.lock:
            for name, value in changes.items():
                setattr(record, name, value)
            self.events.publish("scan", scan=record.as_dict())

    def forget(self, uid: str) -> None:
        """Drop the record of ``uid`` (a run that turned out not to be an energy scan)."""
        with self.lock:
            self.records.pop(uid, None)

    def progress(self, job: ScanJob, frames: int, expected: int | None) -> None:
        """Frames received so far; published at the first, every fifth and the last."""
        record = self.record(job)
        record.last_frame_at = time.time()
        if frames == 0 or frames == expected or frames % 5 == 0:
            self.update(record, frames=frames, expected=expected)
        else:
            record.frames, record.expected = frames, expected

    def busy(self) -> bool:
        """Whether any scan is queued or being analysed."""
        return any(r.status in ("queued", "analysing") for r in self.snapshot())

    def wait_for(self, uids: list[str], timeout: float) -> list[ScanRecord | None]:
        """The records of ``uids`` once each is done or failed, or as they are after
        ``timeout`` s (None for a scan not seen yet)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                records = [self.records.get(uid) for uid in uids]
            settled = all(r is not None and r.status in SETTLED for r in records)
            if settled or time.monotonic() >= deadline:
                return records
            time.sleep(0.05)

    def status(self, *, profile: str, listening: bool, queued: int, spooled: int, rejected: int):
        """The status report (see :meth:`XanesService.status`) from the records and the facts
        only the service knows."""
        records = self.snapshot()
        now = time.time()
        unfinished = [r.stopped_at for r in records if r.stopped_at and r.status not in SETTLED]
        return {
            "profile": profile,
            "listening": listening,
            "receiving": sum(r.status == "receiving" for r in records),
            "queued": queued,
            "done": sum(r.status == "done" for r in records),
            "failed": sum(r.status == "failed" for r in records),
            "spooled": spooled,
            "lag_seconds": round(now - min(unfinished), 3) if unfinished else 0.0,
            **self.counts,
            "rejected_documents": rejected,
            "last_error": self.last_error,
            "updated": now,
        }


def write_status(path: Path, status: dict) -> None:
    """Write ``status`` to ``path`` as JSON, atomically; a failure is only logged."""
    try:
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(jsonable(status, finite=True), indent=1))
        temporary.replace(path)
    except OSError as exc:
        log.debug("cannot write %s: %s", path, exc)
