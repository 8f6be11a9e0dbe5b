"""From Bluesky documents to scans: an event-model RunRouter with one callback per energy scan.

Nothing a document does can stop the service: a document that cannot be used is logged with
what and why, its run is marked failed with that reason (and still gets a record at its stop),
and every other run carries on. Whatever goes wrong in a run's handling (a ``MemoryError``
included) fails that run with a record, never silently. A start whose uid could not safely be a
key or a file name is refused (:mod:`.identifiers`); at most ``limits.max_runs_in_flight`` runs
are followed at once, the oldest incomplete one failed (its frames dropped) when another
starts; a run's frames are held to ``limits.max_scan_bytes`` (:mod:`.limits`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable

import numpy as np
from event_model import DocumentRouter, RunRouter, unpack_event_page

from xanes_stream.documents.accumulator import ScanAccumulator
from xanes_stream.documents.codec import DocumentError
from xanes_stream.documents.external import ExternalFrames
from xanes_stream.documents.identifiers import is_uid
from xanes_stream.documents.job import DOCUMENT_NAMES, Progress, ScanJob, is_energy_scan
from xanes_stream.documents.limits import Limits
from xanes_stream.documents.start import check_frame_shape, read_start, short
from xanes_stream.documents.waiting import Waiting
from xanes_stream.profiles import Profile

__all__ = ["DOCUMENT_NAMES", "SafeRouter", "ScanCallback", "ScanJob", "is_energy_scan"]

log = logging.getLogger(__name__)


class ScanCallback(DocumentRouter):
    """Collects one energy scan; at its stop hands a :class:`ScanJob` to ``submit``."""

    def __init__(
        self,
        start: dict,
        profile: Profile,
        roots: list,
        submit: Callable[[ScanJob], None],
        progress: Progress | None = None,
        limits: Limits = Limits(),  # noqa: B008 (frozen)
    ) -> None:
        super().__init__()
        self.submit = submit
        self.progress = progress or (lambda job, seen, expected: None)
        self.limits = limits
        self.closed = False  # submitted (stopped or evicted): documents after are ignored
        md = start.get("xanes") if isinstance(start.get("xanes"), dict) else {}
        reading = read_start(start, md, profile, limits)
        for key in ("image_key", "energy_key", "i0_key", "energy_scale", "stream_kind"):
            setattr(self, key, getattr(reading, key))
        self.received: Counter[str] = Counter()  # frames per stream kind
        self.job = ScanJob(
            uid=start["uid"],
            start=start,
            stop=None,
            profile=profile,
            references=reading.references,
            received_at=time.time(),
            failure=reading.failure,
        )
        self.label = f"scan {short(start.get('scan_id'))} ({start['uid'][:8]})"
        self.job.settings = reading.settings  # analysis parameters only (run_overrides)
        self.expected = reading.expected
        self.accumulator = ScanAccumulator(
            reading.settings,
            mode=reading.mode,
            needs_flat=profile.dark_flat_source == "streams" and reading.mode == "transmission",
            expected=self.expected,
            max_bytes=limits.max_scan_bytes,
            label=self.label,
        )
        self.external = ExternalFrames(roots, max_frames=limits.max_frames)
        self.descriptors: dict[str, str] = {}  # descriptor uid -> stream kind
        self.waiting = Waiting(limits.max_frames)
        references = ", ".join(self.job.references) or "none"
        log.info("received %s: sample %r, %s energies, references %s", self.label,
                 short(self.job.sample), self.expected or "?", references)  # fmt: skip
        if self.job.failure is not None:
            log.error("%s: %s", self.label, self.job.failure)
        self.progress(self.job, 0, self.expected)

    # --- documents -----------------------------------------------------------------------
    def __call__(self, name, doc, validate=False):
        if self.closed or (self.job.failure is not None and name != "stop"):
            return None
        try:
            return super().__call__(name, doc, validate)
        except MemoryError:
            self._fail(f"out of memory on a {name} document: the scan is too large to hold")
        except (DocumentError, KeyError, TypeError, ValueError) as exc:
            self._fail(f"unusable {name} document: {exc}")
        except Exception as exc:  # whatever it was, the run gets a record of it
            self._fail(f"cannot use a {name} document: {type(exc).__name__}: {exc}")
        if name == "stop" and not self.closed:  # a stop that failed still hands the run on
            self._submit()
        return None

    def descriptor(self, doc):
        kind = self.stream_kind.get(doc.get("name"), "other")
        self.descriptors[doc["uid"]] = kind
        if kind == "primary":
            keys = doc.get("data_keys") or {}
            check_frame_shape(
                (keys.get(self.image_key) or {}).get("shape"), self.expected, self.limits
            )

    def event_page(self, doc):
        for event in unpack_event_page(doc):
            self.event(event)

    def event(self, doc):
        kind = self.descriptors.get(doc["descriptor"])
        if kind in (None, "other"):
            return
        key = (doc["descriptor"], int(doc["seq_num"]))
        data = doc["data"]
        if kind == "primary":
            self.waiting.hold_event(key, data)
        image = data.get(self.image_key)
        if image is not None and not isinstance(image, str):
            self._frame(kind, key, np.asarray(image), data)
        elif key in self.waiting.frames:
            self._frame(kind, key, self.waiting.take_frame(key), data)
        elif kind != "primary":
            self.waiting.hold_event(key, data)

    def stream_resource(self, doc):
        if doc.get("data_key", self.image_key) == self.image_key:
            self.external.add_resource(doc)

    def stream_datum(self, doc):
        if not self.external.knows(doc["stream_resource"]):
            return
        held = self.accumulator.nbytes + self.waiting.nbytes
        self.external.max_bytes = max(0, self.limits.max_scan_bytes - held)
        seq_nums, frames = self.external.read(doc)
        for seq_num, frame in zip(seq_nums, frames, strict=True):
            key = (doc["descriptor"], seq_num)
            kind = self.descriptors.get(doc["descriptor"], "other")
            if key in self.waiting.events:
                self._frame(kind, key, frame, self.waiting.events[key])
            else:
                self.waiting.hold_frame(key, frame)

    def stop(self, doc):
        self.job.stop = doc
        self.job.stopped_at = time.time()
        if self.job.failure is None:
            status = doc.get("exit_status", "success")
            if status != "success":
                self._fail(
                    f"run ended with exit_status {short(status)!r}: "
                    f"{short(doc.get('reason') or 'no reason given', 300)}",
                    log_level=logging.WARNING,
                )
            else:
                self.job.incomplete = self._missing(doc)
        if self.job.incomplete is not None:
            log.warning("%s: incomplete (%s)", self.label, self.job.incomplete)
        elif self.job.failure is None:
            try:
                self.job.frames, self.job.energies, self.job.shifts = self.accumulator.finish()
                self.job.timings["stack"] = time.time() - self.job.stopped_at
            except DocumentError as exc:
                self._fail(str(exc))
            else:
                if self.expected and self.job.frames.shape[0] != self.expected:
                    self.job.notes.append(
                        f"{self.job.frames.shape[0]} of {self.expected} frames received"
                    )
        self._submit()

    def evict(self, reason: str) -> None:
        """Give up on this run before its stop (too many runs in flight): fail it with
        ``reason``, drop its frames and hand it on; documents after this are ignored."""
        if self.closed:
            return
        self._fail(reason, log_level=logging.WARNING)
        self.job.stopped_at = time.time()
        self._submit()

    def _submit(self) -> None:
        self.closed = True
        self.submit(self.job)

    # --- helpers ----------------------------------------------------------------------------
    def _missing(self, stop: dict) -> str | None:
        """What 0MQ lost of this run, judged by the stop's ``num_events``; None if nothing."""
        counts = stop.get("num_events") or {}
        lost = [
            f"{self.received[kind]} of {counts[name]} {name} frames"
            for name, kind in self.stream_kind.items()
            if isinstance(counts.get(name), int) and self.received[kind] < counts[name]
        ]
        lost += self.waiting.lost({d for d, k in self.descriptors.items() if k == "primary"})
        return "received " + "; ".join(lost) if lost else None

    def _frame(self, kind, key, frame, data):
        self.waiting.events.pop(key, None)
        self.received[kind] += 1
        if kind == "dark":
            self.accumulator.add_dark(frame)
        elif kind == "flat":
            self.accumulator.add_flat(frame)
        else:
            energy = float(data[self.energy_key]) * self.energy_scale
            i0 = float(data[self.i0_key]) if self.i0_key and self.i0_key in data else None
            self.accumulator.add_frame(energy, frame, i0)
            self.progress(self.job, self.received["primary"], self.expected)
            if self.expected:
                seen = self.received["primary"]
                level = (
                    logging.INFO if seen in (self.expected, self.expected // 2) else logging.DEBUG
                )
                log.log(level, "%s: frames %d/%d", self.label, seen, self.expected)

    def _fail(self, reason: str, log_level=logging.ERROR) -> None:
        """Mark the run failed with ``reason`` and give back the memory of its frames."""
        self.job.failure = reason
        log.log(log_level, "%s: %s", self.label, reason)
        self.accumulator.release()
        self.waiting.clear()


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
    ) -> None:
        self.profile = profile
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
        callback = ScanCallback(
            start, self.profile, self.roots, self.submit, self.progress, self.limits
        )
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

    def _evict(self, uid: str, callback: ScanCallback | None) -> None:
        """Stop following run ``uid`` (the oldest in flight): fail it with a record, forget
        it, so that a late stop has it read back from Tiled."""
        if callback is not None:
            callback.evict(
                f"evicted before its stop: more than {self.limits.max_runs_in_flight} runs "
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
