"""From Bluesky documents to scans: an event-model RunRouter with one callback per energy scan.

Nothing a document does can stop the service: a document that cannot be used is logged with
what and why, its run is marked failed with that reason (and still gets a record at its stop),
and every other run carries on.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from event_model import DocumentRouter, RunRouter, unpack_event_page

from xanes_stream.documents.accumulator import ScanAccumulator
from xanes_stream.documents.codec import DocumentError
from xanes_stream.documents.external import ExternalFrames
from xanes_stream.errors import XanesStreamError
from xanes_stream.pipeline.settings import AnalysisSettings
from xanes_stream.profiles import Profile
from xanes_stream.profiles.overrides import run_overrides

log = logging.getLogger(__name__)

DOCUMENT_NAMES = {
    "start",
    "descriptor",
    "event",
    "event_page",
    "stop",
    "resource",
    "datum",
    "datum_page",
    "stream_resource",
    "stream_datum",
}


@dataclass
class ScanJob:
    """A scan whose documents are complete: what the analysis needs, and where it came from."""

    uid: str
    start: dict
    stop: dict | None
    profile: Profile
    references: list[str]
    frames: np.ndarray | None = None
    energies: np.ndarray | None = None
    shifts: np.ndarray | None = None
    failure: str | None = None
    incomplete: str | None = None  # documents were lost on the way: re-read the run from Tiled
    settings: AnalysisSettings | None = None  # the profile's, with the start document's overrides
    received_at: float = 0.0
    stopped_at: float = 0.0
    timings: dict = field(default_factory=dict)  # s: stack (finishing the frames), ...
    notes: list[str] = field(default_factory=list)

    @property
    def scan_id(self):
        return self.start.get("scan_id")

    @property
    def sample(self) -> str:
        return str(self.start.get("sample") or self.start.get("xanes", {}).get("sample") or "")


Progress = Callable[["ScanJob", int, int | None], None]


def is_energy_scan(start: dict, profile: Profile) -> bool:
    selection = profile.runs
    if selection.md_key and isinstance(start.get(selection.md_key), dict):
        return True
    return start.get("plan_name") in selection.plan_names


class ScanCallback(DocumentRouter):
    """Collects one energy scan; at its stop hands a :class:`ScanJob` to ``submit``."""

    def __init__(
        self,
        start: dict,
        profile: Profile,
        roots: list,
        submit: Callable[[ScanJob], None],
        progress: Progress | None = None,
    ) -> None:
        super().__init__()
        self.submit = submit
        self.progress = progress or (lambda job, seen, expected: None)
        md = start.get("xanes") if isinstance(start.get("xanes"), dict) else {}
        try:  # keys, choices, names, analysis parameters: no path, model or type to trust
            run, failure = run_overrides(profile, md), None
        except XanesStreamError as exc:  # bad overrides: the run gets a record of why
            run, failure = run_overrides(profile, {}), str(exc)
        self.image_key, self.energy_key, self.i0_key = run.image_key, run.energy_key, run.i0_key
        self.energy_scale = 1000.0 if run.energy_units == "keV" else 1.0
        self.stream_kind = {
            run.streams.primary: "primary",
            run.streams.dark: "dark",
            run.streams.flat: "flat",
        }
        self.received: Counter[str] = Counter()  # frames per stream kind
        self.job = ScanJob(
            uid=start["uid"],
            start=start,
            stop=None,
            profile=profile,
            references=list(run.references),
            received_at=time.time(),
            settings=run.settings,
        )
        self.expected = start.get("num_points") or len(run.energies or []) or None
        self.accumulator = ScanAccumulator(
            run.settings,
            mode=run.mode,
            needs_flat=profile.dark_flat_source == "streams" and run.mode == "transmission",
            expected=self.expected,
            label=f"scan {start.get('scan_id')} ({start['uid'][:8]})",
        )
        if failure is not None:
            self._fail(failure)
        self.external = ExternalFrames(roots)
        self.descriptors: dict[str, str] = {}  # descriptor uid -> stream kind
        self.pending: dict[tuple[str, int], dict] = {}  # (descriptor, seq_num) -> event data
        self.frames_waiting: dict[tuple[str, int], np.ndarray] = {}
        log.info(
            "received %s: sample %r, %s energies, references %s",
            self.accumulator.label,
            self.job.sample,
            self.expected or "?",
            ", ".join(self.job.references) or "none",
        )
        self.progress(self.job, 0, self.expected)

    # --- documents -----------------------------------------------------------------------
    def __call__(self, name, doc, validate=False):
        if self.job.failure is not None and name != "stop":
            return None
        try:
            return super().__call__(name, doc, validate)
        except (DocumentError, KeyError, TypeError, ValueError) as exc:
            self._fail(f"unusable {name} document: {exc}")
        return None

    def descriptor(self, doc):
        self.descriptors[doc["uid"]] = self.stream_kind.get(doc.get("name"), "other")

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
            self.pending[key] = data
        image = data.get(self.image_key)
        if image is not None and not isinstance(image, str):
            self._frame(kind, key, np.asarray(image), data)
        elif key in self.frames_waiting:
            self._frame(kind, key, self.frames_waiting.pop(key), data)
        elif kind != "primary":
            self.pending[key] = data

    def stream_resource(self, doc):
        if doc.get("data_key", self.image_key) == self.image_key:
            self.external.add_resource(doc)

    def stream_datum(self, doc):
        if not self.external.knows(doc["stream_resource"]):
            return
        seq_nums, frames = self.external.read(doc)
        for seq_num, frame in zip(seq_nums, frames, strict=True):
            key = (doc["descriptor"], seq_num)
            kind = self.descriptors.get(doc["descriptor"], "other")
            if key in self.pending:
                self._frame(kind, key, frame, self.pending[key])
            else:
                self.frames_waiting[key] = frame

    def stop(self, doc):
        self.job.stop = doc
        self.job.stopped_at = time.time()
        if self.job.failure is None:
            status = doc.get("exit_status", "success")
            if status != "success":
                self._fail(
                    f"run ended with exit_status {status!r}: "
                    f"{doc.get('reason') or 'no reason given'}",
                    log_level=logging.WARNING,
                )
            else:
                self.job.incomplete = self._missing(doc)
        if self.job.incomplete is not None:
            log.warning("%s: incomplete (%s)", self.accumulator.label, self.job.incomplete)
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
        if self.frames_waiting:
            lost.append(f"{len(self.frames_waiting)} frames without their event")
        unmatched = sum(1 for key in self.pending if self.descriptors.get(key[0]) == "primary")
        if unmatched:
            lost.append(f"{unmatched} events without their frame")
        return "received " + "; ".join(lost) if lost else None

    def _frame(self, kind, key, frame, data):
        self.pending.pop(key, None)
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
                log.debug(
                    "%s: frames %d/%d",
                    self.accumulator.label,
                    self.received["primary"],
                    self.expected,
                )
                if self.received["primary"] in (self.expected, self.expected // 2):
                    log.info(
                        "%s: frames %d/%d",
                        self.accumulator.label,
                        self.received["primary"],
                        self.expected,
                    )

    def _fail(self, reason: str, log_level=logging.ERROR) -> None:
        self.job.failure = reason
        log.log(log_level, "%s: %s", self.accumulator.label, reason)


class SafeRouter:
    """A RunRouter that survives anything: bad documents are logged, never raised.

    ``submit`` gets each scan's :class:`ScanJob` at its stop; ``progress(job, frames_seen,
    frames_expected)`` is called at its start and at each frame.
    """

    def __init__(
        self,
        profile: Profile,
        roots: list,
        submit: Callable[[ScanJob], None],
        progress: Progress | None = None,
    ) -> None:
        self.profile = profile
        self.roots = roots
        self.submit = submit
        self.progress = progress
        self.rejected = 0
        self.router = RunRouter([self._factory])
        self._starts: OrderedDict[str, None] = OrderedDict()  # the newest run uids seen
        self._strays: OrderedDict[str, None] = OrderedDict()  # unknown descriptors, resources
        self.stray_documents = 0

    def _factory(self, name, start):
        self._starts[start["uid"]] = None
        while len(self._starts) > 10_000:
            self._starts.popitem(last=False)
        if not is_energy_scan(start, self.profile):
            log.info(
                "ignored run %s (scan %s, plan %r): not an energy scan",
                start.get("uid", "?")[:8],
                start.get("scan_id"),
                start.get("plan_name"),
            )
            return [], []
        return [ScanCallback(start, self.profile, self.roots, self.submit, self.progress)], []

    def __call__(self, name, doc) -> None:
        if name not in DOCUMENT_NAMES or not isinstance(doc, dict):
            self.rejected += 1
            log.error("unusable document: name %r, type %s", name, type(doc).__name__)
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
                    parent[:8],
                )
        except Exception as exc:  # a document event-model cannot route: drop it, keep going
            self._reject(name, doc, exc)

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
        if not isinstance(uid, str):
            self.rejected += 1
            log.error("unusable stop document: no run_start uid")
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
