"""From Bluesky documents to scans: an event-model RunRouter with one callback per energy scan
(:class:`~.scan_callback.ScanCallback`).

Nothing a document does can stop the service: a document that cannot be used is logged with
what and why, its run is marked failed with that reason (and still gets a record at its stop),
and every other run carries on. A start whose uid could not safely be a key or a file name is
refused (:mod:`.identifiers`); at most ``limits.max_runs_in_flight`` runs are followed at once,
the oldest incomplete one failed (its frames dropped) when another starts.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from event_model import RunRouter

from xanes_stream.documents.identifiers import is_uid
from xanes_stream.documents.job import DOCUMENT_NAMES, Progress, ScanJob, is_energy_scan
from xanes_stream.documents.limits import Limits
from xanes_stream.documents.scan_callback import ScanCallback
from xanes_stream.documents.start import short
from xanes_stream.documents.tomo_job import TomographyScanCallback, is_tomography_run
from xanes_stream.profiles import Profile

__all__ = ["DOCUMENT_NAMES", "SafeRouter", "ScanCallback", "ScanJob", "is_energy_scan"]

log = logging.getLogger(__name__)


class SafeRouter:
    """A RunRouter that survives anything: bad documents are logged, never raised.

    ``submit`` gets each scan's :class:`ScanJob` at its stop; ``progress(job, frames_seen,
    frames_expected)`` is called at its start and at each frame. A start whose uid is not a
    safe uid (:func:`~.identifiers.check_uid`) is refused; beyond ``limits.max_runs_in_flight``
    runs started and not stopped, the oldest is evicted with a failed record (should its stop
    come later, the run is read back from Tiled).
    """

    def __init__(
        self,
        profile: Profile,
        roots: list,
        submit: Callable[[ScanJob], None],
        progress: Progress | None = None,
        limits: Limits = Limits(),  # noqa: B008 (frozen)
        source: str = "live",
    ) -> None:
        self.profile = profile
        self.source = source  # where the documents come from, for each job's record
        self.note: str | None = None  # a note for each job's record (how its frames were read)
        self.roots = roots
        self.submit = submit
        self.progress = progress
        self.limits = limits
        self.rejected = 0
        self.router = RunRouter([self._factory])
        self._starts: OrderedDict[str, None] = OrderedDict()  # the newest run uids seen
        self._in_flight: OrderedDict[str, ScanCallback | None] = OrderedDict()  # not stopped
        self._strays: OrderedDict[str, None] = OrderedDict()  # unknown descriptors, resources
        self.stray_documents = 0

    def _factory(self, name, start):
        self._starts[start["uid"]] = None
        while len(self._starts) > 10_000:
            self._starts.popitem(last=False)
        if not is_energy_scan(start, self.profile):
            log.info(
                "ignored run %s (scan %s, plan %r): not an energy scan",
                start["uid"][:8],
                short(start.get("scan_id")),
                short(start.get("plan_name")),
            )
            self._in_flight[start["uid"]] = None
            return [], []
        if is_tomography_run(start):  # projections per energy: volumes reconstructed live
            callback = TomographyScanCallback(
                start, self.profile, self.roots, self.submit, self.progress, self.limits
            )
        else:
            callback = ScanCallback(
                start, self.profile, self.roots, self.submit, self.progress, self.limits
            )
        callback.job.source = self.source
        if self.note:
            callback.job.notes.append(self.note)
        self._in_flight[start["uid"]] = callback
        return [callback], []

    def __call__(self, name, doc) -> None:
        if name not in DOCUMENT_NAMES or not isinstance(doc, dict):
            self.rejected += 1
            log.error("unusable document: name %r, type %s", short(name), type(doc).__name__)
            return
        if name == "start" and not self._acceptable_start(doc):
            return
        run_start = doc.get("run_start")
        if name == "stop" and not (isinstance(run_start, str) and run_start in self._starts):
            self._orphan_stop(doc)
            return
        try:
            self.router(name, doc)
        except KeyError as exc:
            parent = exc.args[0] if exc.args else None
            refers_to = (doc.get("descriptor"), doc.get("run_start"), doc.get("stream_resource"))
            if parent is None or parent not in refers_to:
                self._reject(name, doc, exc)
                return
            # of a run whose start or descriptor never came (lost by 0MQ): one line for each
            self.stray_documents += 1
            parent = str(parent)
            if parent not in self._strays:
                self._strays[parent] = None
                while len(self._strays) > 10_000:
                    self._strays.popitem(last=False)
                log.warning(
                    "%s documents of %s, whose run's start or descriptor never arrived, are "
                    "ignored (its stop, if it comes, has the run read back from Tiled)",
                    name,
                    short(parent, 8),
                )
        except Exception as exc:  # a document event-model cannot route: drop it, keep going
            self._reject(name, doc, exc)
        finally:
            if name == "stop" and isinstance(run_start, str):
                self._in_flight.pop(run_start, None)

    def _acceptable_start(self, doc: dict) -> bool:
        """Whether start ``doc`` is followed: its uid is safe (else one line, refused); room
        is made for it by evicting the oldest run in flight."""
        uid = doc.get("uid")
        if not is_uid(uid):
            self.rejected += 1
            log.error(
                "refused a start document (scan %s): its uid %s is not a run uid (letters, "
                "digits, '-' and '_'); it would name a key or a file",
                short(doc.get("scan_id")),
                short(uid),
            )
            return False
        if uid in self._in_flight:
            return True  # event-model says what is wrong with a second start
        while len(self._in_flight) >= self.limits.max_runs_in_flight:
            self._evict(*self._in_flight.popitem(last=False))
        return True

    def abandon(self, reason: str) -> None:
        """Fail every run started and not stopped with ``reason`` and forget it (the
        documents will not come: a file ended, a replay stops)."""
        while self._in_flight:
            self._evict(*self._in_flight.popitem(last=False), reason=reason)

    def _evict(self, uid: str, callback: ScanCallback | None, reason: str | None = None) -> None:
        """Stop following run ``uid`` (the oldest in flight): fail it with a record, forget
        it, so that a late stop has it read back from Tiled."""
        if callback is not None:
            callback.evict(
                reason
                or f"evicted before its stop: more than {self.limits.max_runs_in_flight} runs "
                "were started and not stopped (max_runs_in_flight); it is analysed again if "
                "its stop comes"
            )
        self._starts.pop(uid, None)
        try:  # event-model's caches of the run are dropped with a stop it alone sees
            self.router("stop", {"uid": f"evicted-{uid}", "run_start": uid, "time": time.time()})
        except Exception as exc:
            log.debug("cleaning up evicted run %s: %s", uid[:8], exc)

    def _reject(self, name: str, doc: dict, exc: Exception) -> None:
        self.rejected += 1
        log.error(
            "unusable %s document (uid %s): %s: %s",
            name,
            str(doc.get("uid", "?"))[:8],
            type(exc).__name__,
            exc,
        )

    def _orphan_stop(self, doc: dict) -> None:
        """A stop whose start never came (a slow joiner, a restart, a full queue): hand the
        run on as incomplete, so that it is read back from Tiled rather than lost."""
        uid = doc.get("run_start")
        if not is_uid(uid):
            self.rejected += 1
            log.error("unusable stop document: run_start %s is not a run uid", short(uid))
            return
        log.warning("stop of run %s whose start never arrived: will read it from Tiled", uid[:8])
        self.submit(
            ScanJob(
                uid=uid,
                start={"uid": uid},
                stop=doc,
                profile=self.profile,
                references=[],
                incomplete="its start document never arrived",
                received_at=time.time(),
                stopped_at=time.time(),
            )
        )
