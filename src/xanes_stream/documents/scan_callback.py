"""One energy scan's documents collected into a :class:`~.job.ScanJob`: the per-run callback
of :class:`~.router.SafeRouter`.

Frames come inline in events, from ``stream_resource``/``stream_datum`` files (ophyd-async,
:mod:`.external`) or from classic ``resource``/``datum`` files (ophyd's areaDetector,
:mod:`.resources`). An image whose axis 0 is several exposures of one energy (a classic
datum's ``frame_per_point``, ophyd-async's collections per event, or any 3-D image if the
profile's ``frames.event_image`` says ``exposures``) is handed on as exposures, to be combined
by the accumulator (:mod:`.accumulator`). Whatever goes wrong in a run's handling fails that
run with a record, never silently; its frames are held to ``limits.max_scan_bytes``.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

import numpy as np
from event_model import unpack_event_page

from xanes_stream.documents.accumulator import ScanAccumulator
from xanes_stream.documents.codec import DocumentError
from xanes_stream.documents.external import ExternalFrames
from xanes_stream.documents.foil import FoilReadings
from xanes_stream.documents.job import Progress, ScanJob
from xanes_stream.documents.limits import Limits
from xanes_stream.documents.run_callback import RunCallback
from xanes_stream.documents.start import check_frame_shape, short
from xanes_stream.documents.waiting import Waiting
from xanes_stream.profiles import Profile

__all__ = ["ScanCallback"]

log = logging.getLogger(__name__)


class ScanCallback(RunCallback):
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
        super().__init__(start, profile, roots, submit, progress, limits)
        reading = self.reading
        keys = ("image_key", "energy_key", "i0_key", "energy_scale", "stream_kind", "event_image")
        for key in keys:
            setattr(self, key, getattr(reading, key))
        self.received: Counter[str] = Counter()  # frames per stream kind
        self.accumulator = ScanAccumulator(
            reading.settings,
            mode=reading.mode,
            needs_flat=profile.dark_flat_source == "streams" and reading.mode == "transmission",
            expected=self.expected,
            max_bytes=limits.max_scan_bytes,
            label=self.label,
            combine=profile.frames.combine,
            flats=profile.frames.flats,
        )
        self.foil = FoilReadings(profile.foil) if profile.foil is not None else None
        self.external = ExternalFrames(roots, max_frames=limits.max_frames)
        self.descriptors: dict[str, str] = {}  # descriptor uid -> stream kind
        self.shapes: dict[str, list] = {}  # descriptor uid -> the image's shape, as described
        self.stacked: dict[str, bool] = {}  # descriptor uid -> stream_datum of k > 1 frames
        self.unread: dict[str, str] = {}  # stream kind -> spec of its files, not read here
        self.waiting = Waiting(limits.max_frames)
        references = ", ".join(self.job.references) or "none"
        log.info("received %s: sample %r, %s energies, references %s", self.label,
                 short(self.job.sample), self.expected or "?", references)  # fmt: skip
        if self.job.failure is not None:
            log.error("%s: %s", self.label, self.job.failure)
        self.progress(self.job, 0, self.expected)

    # --- documents -----------------------------------------------------------------------
    def descriptor(self, doc):
        kind = self.stream_kind.get(doc.get("name"), "other")
        self.descriptors[doc["uid"]] = kind
        info = (doc.get("data_keys") or {}).get(self.image_key) or {}
        shape = info.get("shape") if isinstance(info, dict) else None
        self.shapes[doc["uid"]] = shape
        if kind == "primary":
            if isinstance(shape, list | tuple) and self._exposures(
                len(shape), bool(info.get("external"))
            ):
                shape = shape[1:]  # the stack holds one frame of the exposures
            check_frame_shape(shape, self.expected, self.limits)

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
        if isinstance(image, str) and self._classic(kind, key, image, data):
            return
        if image is not None and not isinstance(image, str):
            self._frame(kind, key, np.asarray(image), data)
        elif key in self.waiting.frames:
            stacked = self.stacked.get(doc["descriptor"], False)
            self._frame(kind, key, self.waiting.take_frame(key), data, stacked=stacked)
        elif kind != "primary":
            self.waiting.hold_event(key, data)

    def stream_resource(self, doc):
        if doc.get("data_key", self.image_key) == self.image_key:
            self.external.add_resource(doc)

    def stream_datum(self, doc):
        if not self.external.knows(doc["stream_resource"]):
            return
        self.external.max_bytes = self._bytes_left()
        shape = self.shapes.get(doc["descriptor"])
        seq_nums, frames, per_index = self.external.read_stacked(doc, shape)
        self.stacked[doc["descriptor"]] = stacked = per_index > 1
        for seq_num, frame in zip(seq_nums, frames, strict=True):
            key = (doc["descriptor"], seq_num)
            kind = self.descriptors.get(doc["descriptor"], "other")
            if key in self.waiting.events:
                self._frame(kind, key, frame, self.waiting.events[key], stacked=stacked)
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
            elif self.unread:
                self._fail(self._unread_reason(), log_level=logging.DEBUG)  # said at the event
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
                self.job.noise = self.accumulator.noise
                if self.foil is not None:
                    self.job.energy_offset, note = self.foil.offset()
                    self.job.notes.append(note)
                self.job.notes.extend(self._frame_notes())
        self._submit()

    # --- helpers ----------------------------------------------------------------------------
    def _frame_notes(self) -> list[str]:
        """What a person should know of how this scan's frames were made."""
        notes = []
        n = self.job.frames.shape[0]
        if self.expected and n != self.expected:
            notes.append(f"{n} of {self.expected} frames received")
        counts = self.accumulator.exposure_counts
        if counts.get("primary", 0) > n:
            notes.append(
                f"{counts['primary']} exposures combined into {n} frames "
                f"({self.accumulator.combine}); dark {counts.get('dark', 0)}, "
                f"flat {counts.get('flat', 0)} exposures"
            )
        if self.accumulator.flats == "per_energy" and self.accumulator.mean_flat_frames:
            notes.append(
                f"{self.accumulator.mean_flat_frames} frames had no flat at their energy and "
                "were corrected by the mean flat"
            )
        return notes

    def _missing(self, stop: dict) -> str | None:
        """What of this run was not received (0MQ drops messages), judged by the stop's
        ``num_events``; None if nothing."""
        counts = stop.get("num_events") or {}
        lost = [
            f"only {self.received[kind]} of {counts[name]} {name} frames received "
            f"({counts[name] - self.received[kind]} not received)"
            for name, kind in self.stream_kind.items()
            if isinstance(counts.get(name), int) and self.received[kind] < counts[name]
        ]
        lost += self.waiting.lost({d for d, k in self.descriptors.items() if k == "primary"})
        return "; ".join(lost) if lost else None

    def _unread_reason(self) -> str:
        """Why the run cannot be analysed: a stream's frames are in files of a spec not read
        here (the primary stream's, if it is one of them)."""
        kind = "primary" if "primary" in self.unread else next(iter(self.unread))
        what = "frames" if kind == "primary" else f"{kind} frames"
        return (
            f"{what} are in files of spec {self.unread[kind]!r}, which this service does not read"
        )

    def _bytes_left(self) -> int:
        held = self.accumulator.nbytes + self.waiting.nbytes
        return max(0, self.limits.max_scan_bytes - held)

    def _classic(self, kind, key, datum_id: str, data: dict) -> bool:
        """An event whose image is a classic ``datum``: its frames read now (the datum came
        first) and handed on; True if ``datum_id`` was a datum of this run's resources."""
        if self.classic.knows(datum_id):
            self.classic.max_bytes = self._bytes_left()
            self._frame(kind, key, self.classic.read(datum_id), data, stacked=True)
            return True
        spec = self.classic.unread_spec(datum_id)
        if spec is None:
            return False
        self.waiting.events.pop(key, None)
        if spec not in self.unread.values():
            log.error(
                "frames of %s are in files of spec %r, which this service does not read",
                self.label,
                short(spec),
            )
        self.unread.setdefault(kind, spec)
        return True

    def _exposures(self, ndim: int, stacked: bool) -> bool:
        """Whether axis 0 of an image of ``ndim`` dimensions is exposures of one energy: by
        the profile's ``frames.event_image``, ``auto`` going by whether the file format
        stacked them (``stacked``: a classic datum, a stream_datum of several frames)."""
        if ndim < 3 or self.event_image == "volume":
            return False
        return stacked or (self.event_image == "exposures" and ndim == 3)

    def _frame(self, kind, key, frame, data, *, stacked: bool = False):
        self.waiting.events.pop(key, None)
        self.received[kind] += 1
        exposures = self._exposures(np.ndim(frame), stacked)
        i0 = float(data[self.i0_key]) if self.i0_key and self.i0_key in data else None
        if kind == "dark":
            self.accumulator.add_dark(frame, exposures=exposures)
        elif kind == "flat":
            energy = data.get(self.energy_key)
            if isinstance(energy, int | float) and not isinstance(energy, bool):
                energy = float(energy) * self.energy_scale if np.isfinite(energy) else None
            else:
                energy = None
            self.accumulator.add_flat(frame, energy=energy, i0=i0, exposures=exposures)
        else:
            energy = float(data[self.energy_key]) * self.energy_scale
            self.accumulator.add_frame(energy, frame, i0, exposures=exposures)
            if self.foil is not None:
                self.foil.add(energy, data)
            self.progress(self.job, self.received["primary"], self.expected)
            if self.expected:
                seen = self.received["primary"]
                level = (
                    logging.INFO if seen in (self.expected, self.expected // 2) else logging.DEBUG
                )
                log.log(level, "%s: frames %d/%d", self.label, seen, self.expected)

    def _release(self) -> None:
        self.accumulator.release()
        self.waiting.clear()
