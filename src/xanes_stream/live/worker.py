"""The analysis worker: one thread that takes each scan job off a queue, analyses it with
:func:`~xanes_stream.pipeline.scan.analyze_scan` and delivers the maps (or why there are none).

So the subscriber never waits for an analysis, and one scan's failure never stops the next.
With a Dask cluster (:mod:`.compute`) the thread only submits each scan; a second thread
takes the results in the order the scans finished and delivers each once, so several scans
are analysed at once on the cluster's workers.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable

import numpy as np

from xanes_stream.documents.router import ScanJob
from xanes_stream.io.references import bundled_reference
from xanes_stream.live.compute import IN_PROCESS, Analyser, InProcess, Pending
from xanes_stream.live.delivery import Delivery
from xanes_stream.live.records import ScanRecord, ScanTable
from xanes_stream.live.references import ReferenceCache
from xanes_stream.live.series import SeriesTables
from xanes_stream.live.stacks import KeptStacks
from xanes_stream.pipeline.analyze import analyze
from xanes_stream.pipeline.first_look import FIRST_LOOK_NOTE
from xanes_stream.pipeline.settings import AnalysisSettings
from xanes_stream.store.sink import ResultConflict
from xanes_stream.store.tiled_store import TiledResultStore

__all__ = ["AnalysisWorker", "warm_up_analysis"]

log = logging.getLogger(__name__)


def _unregistered(settings: AnalysisSettings) -> AnalysisSettings:
    """``settings`` without registration (the accumulator registered the frames as they came)."""
    return settings.model_copy(
        update={"registration": settings.registration.model_copy(update={"method": "none"})}
    )


def warm_up_analysis(settings: AnalysisSettings) -> None:
    """One tiny analysis, so the imports and first-call costs of the analysis (scikit-learn's
    k-means, ...) are not paid by the first scan; a failure is only logged."""
    try:
        references = [bundled_reference("NiO"), bundled_reference("LiNiO2")]
        energies = np.linspace(8250.0, 8450.0, 60)
        mix = np.linspace(0, 1, 16 * 16).reshape(16, 16)
        spectra = [np.interp(energies, r.energy, r.mu) for r in references]
        stack = np.multiply.outer(spectra[0], mix) + np.multiply.outer(spectra[1], 1 - mix)
        analyze(stack.astype(np.float32), energies, references, mode="absorbance",
                settings=_unregistered(settings))  # fmt: skip
    except Exception as exc:  # only a warm-up: the first scan will say what is wrong
        log.debug("analysis warm-up failed: %s", exc)


class AnalysisWorker:
    """Analyses queued :class:`ScanJob` s one at a time in a thread and delivers each result.

    Jobs come complete (an ``incomplete`` one was read back from Tiled first, by
    :mod:`~xanes_stream.live.backfill`; one still short is recorded as failed).
    ``provenance`` is merged into every result's metadata. ``load_model(path, trusted)`` reads
    the model files the operator's settings name (confined to the model roots).
    """

    def __init__(
        self,
        *,
        table: ScanTable,
        delivery: Delivery,
        references: ReferenceCache,
        stacks: KeptStacks,
        series: SeriesTables,
        store: Callable[[], TiledResultStore],
        provenance: dict,
        load_model: Callable[..., object],
        in_flight: int = 8,
    ) -> None:
        self.table, self.delivery, self.references = table, delivery, references
        self.stacks, self.series = stacks, series
        self._store, self.provenance = store, provenance
        self.load_model = load_model  # reads model files inside the model roots only
        self.analyser: Analyser = InProcess()
        self.jobs: queue.Queue[ScanJob | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="xanes-analysis", daemon=True)
        # submitted to the cluster, in the order the scans finished (bounded: back-pressure)
        self._submitted: queue.Queue[tuple | None] = queue.Queue(maxsize=in_flight)
        self._deliverer: threading.Thread | None = None

    @property
    def in_flight(self) -> int:
        """Scans submitted and not yet delivered (0 in-process)."""
        return self._submitted.qsize()

    def start(self, analyser: Analyser | None = None) -> None:
        """Start analysing, with ``analyser`` (default: in this process)."""
        self.analyser = analyser or InProcess()
        if not isinstance(self.analyser, InProcess):
            self._deliverer = threading.Thread(
                target=self._deliver_in_order, name="xanes-analysis-results", daemon=True
            )
            self._deliverer.start()
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Finish the jobs already queued (waiting at most ``timeout`` s), then stop."""
        deadline = time.monotonic() + timeout
        self.jobs.put(None)
        self._thread.join(timeout)
        if self._deliverer is not None:
            self._deliverer.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive() or (self._deliverer and self._deliverer.is_alive()):
            log.error("analysis worker still busy after %.0f s; leaving it", timeout)
        self.analyser.close()

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                if self._deliverer is not None:
                    self._submitted.put(None)
                return
            record = self.table.record(job)
            self.table.update(record, status="analysing")
            with self._guard(job, record):
                submitted = self._submit(job, record)
                if submitted is None:
                    continue
                if self._deliverer is None:
                    self._finish(*submitted)  # in-process: analysed here, now
                else:
                    self._submitted.put(submitted)

    def _deliver_in_order(self) -> None:
        while True:
            submitted = self._submitted.get()
            if submitted is None:
                return
            job, record = submitted[0], submitted[1]
            with self._guard(job, record):
                self._finish(*submitted)

    @contextlib.contextmanager
    def _guard(self, job: ScanJob, record: ScanRecord):
        """One scan's failure is recorded, never stops the worker."""
        try:
            yield
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            self.table.last_error = f"scan {job.scan_id} ({job.uid[:8]}): {reason}"
            log.exception("scan %s (%s): analysis failed", job.scan_id, job.uid[:8])
            self._fail(job, record, reason)

    def _metadata(self, job: ScanJob) -> dict:
        return {
            "scan_id": job.scan_id,
            "sample": job.sample,
            "plan_name": job.start.get("plan_name"),
            "series": (job.start.get("xanes") or {}).get("series"),
            "raw_time": job.start.get("time"),
            "profile": job.profile.name,
            "notes": job.notes,
            "frames_from": job.source,  # live over 0MQ, live from Tiled, re-read from ...
            "result_id": uuid.uuid4().hex,  # this analysis: the same result written again may
            **self.provenance,  # replace it; another run's may not (store.conflicts)
        }

    def _submit(
        self, job: ScanJob, record: ScanRecord
    ) -> tuple[ScanJob, ScanRecord, Pending, float] | None:
        """Hand ``job``'s analysis to the analyser; None if it was failed at once instead."""
        if job.failure is not None:
            self._fail(job, record, job.failure)
            return None
        if job.incomplete is not None:  # still short when read back (live.backfill)
            self._fail(job, record, f"incomplete even in Tiled: {job.incomplete}")
            return None
        started = time.perf_counter()
        if job.stopped_at:
            job.timings["from_stop_to_analysis"] = time.time() - job.stopped_at
        references = self._references(job)
        settings = _unregistered(job.settings or job.profile.settings)  # md overrides in it
        extra = [n for n in settings.products.library or () if n not in job.references]
        if not settings.products.enabled():
            extra = []  # the library serves the products alone
        pending = self.analyser.submit(
            job.frames,
            energies=job.energies,
            references=references,
            settings=settings,
            library=references + self.references(extra),
            mode="absorbance",  # the accumulator corrected the frames and took -ln
            shifts=job.shifts,
            load_model=self.load_model,
            noise=job.noise,  # the accumulator's per-energy noise: the chi-square's sigma
            energy_offset=job.energy_offset,  # the profile's foil: known - measured E0
            energy_units="eV",  # the accumulator's, scaled by the profile's energy_units
        )
        return job, record, pending, started

    def _references(self, job: ScanJob) -> list:
        """The job's references; none (none named, or none of those named found): a first
        look, noted in the job's notes and logged. Some found and some not is an error."""
        found, missing = self.references.available(list(job.references))
        if found and missing:
            self.references(missing)  # raises, naming the first that is missing
        if not found:
            why = (
                f"references {', '.join(missing)} are neither in the Tiled library nor bundled"
                if missing
                else "no references named by the start document (md['xanes']['references']) "
                "or the profile"
            )
            job.notes = [*job.notes, f"first look: {why}"]
            log.info("scan %s (%s): %s; %s", job.scan_id, job.uid[:8], FIRST_LOOK_NOTE, why)
        return found

    def _finish(self, job: ScanJob, record: ScanRecord, pending: Pending, started: float) -> None:
        """Wait for ``job``'s maps and deliver them (once)."""
        label = f"scan {job.scan_id} ({job.uid[:8]})"
        maps, where = pending.result()
        analysed = time.perf_counter() - started
        shape = " x ".join(str(n) for n in job.frames.shape)
        on = "" if where == IN_PROCESS else f" on {where}"
        log.info("%s: analysed in %.2f s (%s)%s", label, analysed, shape, on)
        metadata = self._metadata(job)
        metadata["timings"] = {**job.timings, "analysis": analysed}
        metadata["analysed_on"] = where
        summary = maps.summary()
        try:
            uri = self.delivery.write_maps(job, maps, metadata)
        except ResultConflict as conflict:
            self._kept(job, record, conflict)
            return
        self.stacks.keep(job.uid, job.frames, job.energies, maps)  # only maps that were kept
        job.timings.update(analysis=analysed, write=time.perf_counter() - started - analysed)
        changes = {"analysis_seconds": analysed, "summary": summary, "timings": job.timings}
        if maps.metadata.get("method") == "first_look":  # said on the record, not only in Tiled
            changes["reason"] = FIRST_LOOK_NOTE
        if uri is None:
            self.table.update(record, status="spooled", **changes)
            self.series.add(job, maps, write=False)  # Tiled is away: with the next scan
            return
        latency = time.time() - job.stopped_at if job.stopped_at else None
        self.series.add(job, maps)  # before "done": readers then find it in Tiled
        self.table.update(record, latency=latency, status="done", uri=uri, **changes)
        log.info(
            "%s: maps written to %s (%.2f s after its stop document)", label, uri, latency or 0
        )

    def _attempts(self, uid: str) -> int:
        """How many failed analyses of ``uid`` Tiled has recorded (0 if unknown)."""
        try:
            root = self._store().root
            return int((root[uid].metadata or {}).get("attempts") or 1) if uid in root else 0
        except Exception:
            return 0

    def _fail(self, job: ScanJob, record: ScanRecord, reason: str) -> None:
        """Record in Tiled (or the spool) that the scan has no maps, and why."""
        metadata = {**self._metadata(job), "attempts": self._attempts(job.uid) + 1}
        try:
            uri = self.delivery.write_failure(job, reason, metadata)
            if uri is not None:
                log.info("scan %s (%s): no maps; recorded why at %s", job.scan_id, job.uid[:8], uri)
        except ResultConflict as conflict:
            self._kept(job, record, conflict)
            return
        except Exception as exc:
            self.table.last_error = f"cannot record failure of {job.uid[:8]}: {exc}"
            log.error("%s", self.table.last_error)
        self.table.update(record, status="failed", reason=reason)  # only once it is recorded

    def _kept(self, job: ScanJob, record: ScanRecord, conflict: ResultConflict) -> None:
        """Good maps of ``job``'s uid from another run are in Tiled and were kept: the record
        points at them again and says why this run's result is not there."""
        log.warning(
            "scan %s (%s, sample %r): result not written: %s",
            job.scan_id,
            job.uid[:8],
            job.sample[:80],
            conflict,
        )
        self.table.last_error = f"scan {job.scan_id} ({job.uid[:8]}): {conflict}"
        self.table.update(record, status="done", uri=conflict.uri, reason=str(conflict),
                          **conflict.kept)  # fmt: skip
