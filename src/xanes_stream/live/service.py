"""The long-running consumer: 0MQ documents in, maps in Tiled out.

Threads: the 0MQ subscriber routes documents to per-run accumulators (correction and
registration happen as frames arrive); at each stop document a :class:`ScanJob` goes on a
queue; one analysis worker fits it and writes the maps, so the subscriber never waits.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from xanes_stream.documents.router import SafeRouter, ScanJob
from xanes_stream.documents.subscriber import SubscriberThread
from xanes_stream.errors import XanesStreamError
from xanes_stream.live.events import EventLog
from xanes_stream.pipeline.analyze import analyze
from xanes_stream.pipeline.results import jsonable
from xanes_stream.pipeline.scan import analyze_scan
from xanes_stream.pipeline.series import SeriesSummary
from xanes_stream.profiles import Profile, load_profile
from xanes_stream.spectra.references import Reference, bundled_reference
from xanes_stream.store.raw_runs import RawRunNotReady, read_scan, unanalysed_runs
from xanes_stream.store.spool import Spool, SpoolFlusher, is_outage
from xanes_stream.store.tiled_store import TiledResultStore

log = logging.getLogger(__name__)


class ServiceConfig(BaseModel):
    """Where the service listens and writes. The API key comes from XANES_TILED_API_KEY."""

    model_config = ConfigDict(extra="forbid")
    tiled_uri: str = "http://127.0.0.1:8000"
    api_key: SecretStr | None = Field(
        default_factory=lambda: (
            SecretStr(os.environ["XANES_TILED_API_KEY"])
            if os.environ.get("XANES_TILED_API_KEY")
            else None
        )
    )
    zmq_address: str = "127.0.0.1:5578"
    zmq_prefix: str = ""
    profile: str = "sim"
    results_root: str = "xanes"
    results_dir: str | None = Field(
        default_factory=lambda: os.environ.get("XANES_RESULTS_DIR") or None,
        description="folder Tiled can read: maps are written there as one HDF5 file per scan "
        "and registered (one request); None uploads each map (XANES_RESULTS_DIR)",
    )
    allowed_roots: list[str] = Field(default_factory=list)
    allow_pickle: bool = False
    state_dir: str = Field(
        default_factory=lambda: (
            os.environ.get("XANES_STATE_DIR")
            or str(Path.home() / ".local" / "state" / "xanes-stream")
        ),
        description="spooled results and status.json (XANES_STATE_DIR)",
    )
    recover_hours: float = Field(
        24.0, ge=0, description="on start and every sweep, analyse scans this recent lacking maps"
    )
    sweep_interval: float = Field(60.0, gt=0, description="s between sweeps for scans lacking maps")
    backfill_timeout: float = Field(
        60.0, gt=0, description="s to wait for TiledWriter to finish a run that must be re-read"
    )
    # the live web page: None = none; 0 = any free port (see XanesService.web.url)
    web_port: int | None = None
    web_host: str = "127.0.0.1"
    kept_stacks: int = Field(default=2, ge=0)  # scans whose frames stay for pixel spectra


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

    def as_dict(self) -> dict:
        return jsonable(asdict(self))


class XanesService:
    """Subscribes to documents, analyses each energy scan at its stop, writes maps to Tiled."""

    def __init__(
        self,
        config: ServiceConfig,
        *,
        profile: Profile | None = None,
        client=None,
        provenance: dict | None = None,
    ):
        self.config = config
        self.provenance = dict(provenance or {})  # merged into every result's metadata
        self.profile = profile or load_profile(config.profile)
        self.roots = [*self.profile.allowed_roots, *config.allowed_roots]
        self._client = client
        self._store: TiledResultStore | None = None
        self._jobs: queue.Queue[ScanJob | None] = queue.Queue()
        self._router = SafeRouter(self.profile, self.roots, self._submit, self._progress)
        self._subscriber: SubscriberThread | None = None
        self._worker = threading.Thread(target=self._work, name="xanes-analysis", daemon=True)
        self._references: dict[str, Reference] = {}
        self.records: dict[str, ScanRecord] = {}
        self.events = EventLog()
        self.last_error: str | None = None
        self._lock = threading.RLock()
        self.state_dir = Path(config.state_dir)
        self.spool = Spool(self.state_dir / "spool")
        self._flusher: SpoolFlusher | None = None
        self._housekeepers: list[threading.Thread] = []
        self._stopping = threading.Event()
        self.counts = {"backfilled": 0, "recovered": 0}
        self._stacks: OrderedDict[str, dict] = OrderedDict()  # uid -> kept stack, newest last
        self._series: dict[str, SeriesSummary] = {}  # series id -> its summary so far
        self._series_restored: set[str] = set()  # series whose Tiled table has been merged
        self.web = None  # the live page's WebServer, while it runs

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self, *, subscribe: bool = True) -> XanesService:
        """Start the analysis worker and (unless ``subscribe`` is False, as for replay, where
        documents are fed by calling the service) the 0MQ subscriber."""
        # In this thread, before any other starts: the first Tiled write imports much (dask),
        # and concurrent first imports from two threads can fail; it also warms the server.
        try:
            self.store.warm_up()
        except Exception as exc:  # Tiled not there yet: the first scan will say so
            self.last_error = f"Tiled at {self.config.tiled_uri}: {exc}"
            log.error("cannot reach Tiled at %s yet: %s", self.config.tiled_uri, exc)
        self._warm_up_analysis()  # here too: its imports must not race another thread's
        if self.config.web_port is not None:
            from xanes_stream.live.web import WebServer

            self.web = WebServer(self, self.config.web_host, self.config.web_port).start()
            log.info("live page at %s", self.web.url)
        self._worker.start()
        self._flusher = SpoolFlusher(self.spool, self.store_or_none, self._spooled_written)
        self._flusher.start()
        if len(self.spool):
            log.info("%d results spooled from before: writing them to Tiled", len(self.spool))
            self._flusher.wake()
        if not subscribe:
            return self
        self._subscriber = SubscriberThread(
            self.config.zmq_address,
            self._router,
            prefix=self.config.zmq_prefix.encode(),
            allow_pickle=self.config.allow_pickle,
        ).start()
        log.info(
            "xanes-stream serving profile %r: maps to %s/%s",
            self.profile.name,
            self.config.tiled_uri,
            self.config.results_root,
        )
        self._housekeepers = [
            threading.Thread(target=target, name=f"xanes-{target.__name__[1:]}", daemon=True)
            for target in (self._keep_status, self._keep_sweeping)
        ]
        for thread in self._housekeepers:
            thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop listening, finish the scans already queued (bounded), stop the worker."""
        if self._subscriber is not None:
            self._subscriber.stop()
        self._stopping.set()
        self._jobs.put(None)
        self._worker.join(timeout)
        if self._worker.is_alive():
            log.error("analysis worker still busy after %.0f s; leaving it", timeout)
        if self._flusher is not None:
            self._flusher.stop()
        for thread in self._housekeepers:
            thread.join(10)
        self._write_status()
        if self.web is not None:
            self.web.stop()
            self.web = None
        log.info("xanes-stream stopped")

    def __enter__(self) -> XanesService:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- feeding documents directly (replay, tests) -------------------------------------------
    def __call__(self, name: str, doc: dict) -> None:
        self._router(name, doc)

    def wait_for(self, uids: list[str], timeout: float) -> list[ScanRecord | None]:
        """The records of ``uids`` once each is done or failed, or as they are after
        ``timeout`` s (None for a scan not seen yet)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                records = [self.records.get(uid) for uid in uids]
            settled = all(r is not None and r.status in ("done", "failed") for r in records)
            if settled or time.monotonic() >= deadline:
                return records
            time.sleep(0.05)

    def wait_idle(self, timeout: float) -> bool:
        """Block until every queued scan is handled (or ``timeout`` s pass)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                busy = any(r.status in ("queued", "analysing") for r in self.records.values())
            if self._jobs.empty() and not busy:
                return True
            time.sleep(0.05)
        return False

    # --- status --------------------------------------------------------------------------------
    def status(self) -> dict:
        """What a person or a health check needs: is it listening, what is in flight, how far
        behind it is (``lag_seconds``: since the stop of the oldest scan not yet in Tiled),
        what is spooled, and the last error."""
        with self._lock:
            records = list(self.records.values())
        now = time.time()
        unfinished = [
            r.stopped_at for r in records if r.stopped_at and r.status not in ("done", "failed")
        ]
        return {
            "profile": self.profile.name,
            "listening": bool(self._subscriber and self._subscriber.alive),
            "receiving": sum(r.status == "receiving" for r in records),
            "queued": self._jobs.qsize(),
            "done": sum(r.status == "done" for r in records),
            "failed": sum(r.status == "failed" for r in records),
            "spooled": len(self.spool),
            "lag_seconds": round(now - min(unfinished), 3) if unfinished else 0.0,
            **self.counts,
            "rejected_documents": self._router.rejected,
            "last_error": self.last_error,
            "updated": now,
        }

    def _write_status(self) -> None:
        path = self.state_dir / "status.json"
        try:
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(jsonable(self.status(), finite=True), indent=1))
            temporary.replace(path)
        except OSError as exc:
            log.debug("cannot write %s: %s", path, exc)

    # --- housekeeping: status file, and the sweep for scans lacking maps ----------------------
    def _keep_status(self) -> None:
        while not self._stopping.wait(1.0):
            self._write_status()

    def _keep_sweeping(self) -> None:
        self.sweep(retry_failed=True)  # recovery on start
        while not self._stopping.wait(self.config.sweep_interval):
            self.sweep()

    def sweep(self, *, retry_failed: bool = False) -> list[str]:
        """Queue every recent energy scan in Tiled that has no maps and is not in hand: what
        0MQ lost and what finished while the service was down. ``retry_failed`` (on start)
        also retries, once, scans whose analysis failed although their run ended well."""
        store = self.store_or_none()
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
            )
        except Exception as exc:
            self.last_error = f"sweep for scans lacking maps: {exc}"
            log.warning("%s", self.last_error)
            return []
        queued, spooled = [], set(self.spool.uids())  # one look at the spool, not one per uid
        for uid in uids:
            with self._lock:
                record = self.records.get(uid)
                if record is not None and record.status not in ("failed", "waiting"):
                    continue
            if uid in spooled:
                continue
            log.info("scan %s has no maps in Tiled: analysing it from the archive", uid[:8])
            self.counts["recovered"] += 1
            job = ScanJob(
                uid=uid,
                start={"uid": uid},
                stop=None,
                profile=self.profile,
                references=[],
                incomplete="no maps in Tiled",
                received_at=time.time(),
            )
            self._submit(job)
            queued.append(uid)
        return queued

    # --- the analysis worker ---------------------------------------------------------------
    @property
    def store(self) -> TiledResultStore:
        if self._store is None:
            if self._client is None:
                from tiled.client import from_uri

                key = self.config.api_key.get_secret_value() if self.config.api_key else None
                self._client = from_uri(self.config.tiled_uri, api_key=key)
            self._store = TiledResultStore(
                self._client, root=self.config.results_root, results_dir=self.config.results_dir
            )
        return self._store

    def store_or_none(self) -> TiledResultStore | None:
        """The store, or None while Tiled cannot be connected to."""
        try:
            return self.store
        except Exception as exc:
            self.last_error = f"Tiled at {self.config.tiled_uri}: {exc}"
            return None

    def _record(self, job: ScanJob) -> ScanRecord:
        with self._lock:
            record = self.records.get(job.uid)
            if record is None:
                record = self.records[job.uid] = ScanRecord(
                    job.uid,
                    job.scan_id,
                    job.sample,
                    "receiving",
                    series=(job.start.get("xanes") or {}).get("series"),
                    received_at=job.received_at,
                )
            return record

    def _update(self, record: ScanRecord, **changes) -> None:
        """Change a scan's record and tell the event log's readers."""
        with self._lock:
            for name, value in changes.items():
                setattr(record, name, value)
            self.events.publish("scan", scan=record.as_dict())

    def _progress(self, job: ScanJob, frames: int, expected: int | None) -> None:
        record = self._record(job)
        if frames == 0 or frames == expected or frames % 5 == 0:
            self._update(record, frames=frames, expected=expected)
        else:
            record.frames, record.expected = frames, expected

    def _submit(self, job: ScanJob) -> None:
        with self._lock:
            record = self.records.get(job.uid)
            if job.incomplete and record is not None and record.status in ("queued", "analysing"):
                return  # already in hand (e.g. found by the sweep, then its orphan stop came)
            record = self._record(job)
            self._update(record, status="queued", stopped_at=job.stopped_at or None)
        self._jobs.put(job)

    def _warm_up_analysis(self) -> None:
        """One tiny analysis at start, so the imports and first-call costs of the analysis
        (scikit-learn's k-means, ...) are not paid by the first scan."""
        try:
            references = [bundled_reference("NiO"), bundled_reference("LiNiO2")]
            energies = np.linspace(8250.0, 8450.0, 60)
            mix = np.linspace(0, 1, 16 * 16).reshape(16, 16)
            spectra = [np.interp(energies, r.energy, r.mu) for r in references]
            stack = np.multiply.outer(spectra[0], mix) + np.multiply.outer(spectra[1], 1 - mix)
            settings = self.profile.settings.model_copy(
                update={
                    "registration": self.profile.settings.registration.model_copy(
                        update={"method": "none"}
                    )
                }
            )
            analyze(stack.astype(np.float32), energies, references, mode="absorbance",
                    settings=settings)  # fmt: skip
        except Exception as exc:  # only a warm-up: the first scan will say what is wrong
            log.debug("analysis warm-up failed: %s", exc)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            record = self._record(job)
            self._update(record, status="analysing")
            try:
                self._handle(job, record)
            except Exception as exc:  # never let one scan stop the worker
                reason = f"{type(exc).__name__}: {exc}"
                self.last_error = f"scan {job.scan_id} ({job.uid[:8]}): {reason}"
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
            **self.provenance,
        }

    def _backfill(self, job: ScanJob, record: ScanRecord) -> ScanJob | None:
        """The whole scan read back from Tiled (None: not an energy scan, or not readable yet,
        in which case the record says why and a later sweep retries)."""
        label = f"scan {job.uid[:8]}"
        log.info("%s: %s; reading it back from Tiled", label, job.incomplete)
        try:
            full = read_scan(
                self.store.client, job.uid, self.profile, self.roots, self.config.backfill_timeout
            )
        except Exception as exc:
            if not (isinstance(exc, RawRunNotReady) or is_outage(exc)):
                raise
            reason = f"{job.incomplete}, and it cannot be read from Tiled yet: {exc}"
            self.last_error = f"{label}: {reason}"
            log.warning("%s: %s; a later sweep retries", label, reason)
            self._update(record, status="waiting", reason=reason)
            return None
        if full is None:
            log.info("%s: not an energy scan; nothing to do", label)
            with self._lock:
                self.records.pop(job.uid, None)
            return None
        full.stopped_at = job.stopped_at or full.stopped_at
        full.notes.append(f"re-read from Tiled: {job.incomplete}")
        self.counts["backfilled"] += 1
        self._update(
            record,
            scan_id=full.scan_id,
            sample=full.sample,
            series=(full.start.get("xanes") or {}).get("series"),
            frames=0 if full.frames is None else int(full.frames.shape[0]),
        )
        return full

    def _handle(self, job: ScanJob, record: ScanRecord) -> None:
        if job.incomplete is not None:
            job = self._backfill(job, record)
            if job is None:
                return
        label = f"scan {job.scan_id} ({job.uid[:8]})"
        if job.failure is not None:
            self._fail(job, record, job.failure)
            return
        if job.incomplete is not None:  # still short even in the archive
            self._fail(job, record, f"incomplete even in Tiled: {job.incomplete}")
            return
        started = time.perf_counter()
        if job.stopped_at:
            job.timings["from_stop_to_analysis"] = time.time() - job.stopped_at
        references = [self._reference(name) for name in job.references]
        if not references:
            raise XanesStreamError("no references: set md['xanes']['references'] or the profile's")
        chosen = job.settings or job.profile.settings  # the profile's, with md overrides
        settings = chosen.model_copy(  # frames were registered as they came
            update={"registration": chosen.registration.model_copy(update={"method": "none"})}
        )
        extra = [n for n in settings.products.library or () if n not in job.references]
        if not settings.products.enabled():
            extra = []  # the library serves the products alone
        maps = analyze_scan(
            job.frames,
            job.energies,
            references,
            settings=settings,
            library=references + [self._reference(name) for name in extra],
            mode="absorbance",  # the accumulator corrected the frames and took -ln
            shifts=job.shifts,
        )
        analysed = time.perf_counter() - started
        self._keep_stack(job, maps)
        shape = " x ".join(str(n) for n in job.frames.shape)
        log.info("%s: analysed in %.2f s (%s)", label, analysed, shape)
        metadata = self._metadata(job)
        metadata["timings"] = {**job.timings, "analysis": analysed}
        summary = maps.summary()
        uri = self._deliver(
            job,
            lambda store: store.write_maps(job.uid, maps, metadata),
            lambda: self.spool.write_maps(job.uid, maps, metadata),
        )
        job.timings.update(analysis=analysed, write=time.perf_counter() - started - analysed)
        changes = {"analysis_seconds": analysed, "summary": summary, "timings": job.timings}
        if uri is None:
            self._update(record, status="spooled", **changes)
            self._summarise_series(job, maps, write=False)  # Tiled is away: with the next scan
            return
        latency = time.time() - job.stopped_at if job.stopped_at else None
        self._summarise_series(job, maps)  # before "done": readers then find it in Tiled
        self._update(record, latency=latency, status="done", uri=uri, **changes)
        log.info(
            "%s: maps written to %s (%.2f s after its stop document)", label, uri, latency or 0
        )

    def _summarise_series(self, job: ScanJob, maps, *, write: bool = True) -> None:
        """Add the scan to its series' summary and (if ``write``) write the table to Tiled;
        a failure here is logged, never the scan's."""
        series = (job.start.get("xanes") or {}).get("series")
        if not series:
            return
        try:
            summary = self._series.setdefault(series, SeriesSummary(str(series)))
            if write and series not in self._series_restored:  # rows from before a restart
                stored = self.store.read_series(str(series))
                if stored is not None:
                    taken = summary.merge_table(stored[0], stored[1].get("e0_bin_edges"))
                    log.info("series %s: %d earlier scans read back from Tiled", series, taken)
                self._series_restored.add(series)
            summary.add(job.uid, float(job.start.get("time") or time.time()), maps)
            if not write:
                return
            product = summary.to_product()
            self.store.write_series(str(series), product.tables["series/summary"], product.metadata)
        except Exception as exc:
            self.last_error = f"series {series} summary after {job.uid[:8]}: {exc}"
            log.warning("%s", self.last_error)

    def _deliver(self, job: ScanJob, write, spool) -> str | None:
        """Write a result to Tiled, or spool it (keeping the order) while Tiled is away;
        returns the URI, or None if spooled."""
        store = None if len(self.spool) else self.store_or_none()
        if store is not None:
            try:
                return write(store)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                self.last_error = f"Tiled unreachable writing {job.uid[:8]}: {exc}"
        path = spool()
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

    def _spooled_written(self, uid: str, uri: str) -> None:
        with self._lock:
            record = self.records.get(uid)
        if record is not None:
            status = "failed" if record.status == "failed" else "done"
            latency = time.time() - record.stopped_at if record.stopped_at else None
            self._update(record, status=status, uri=uri, latency=latency)

    def _attempts(self, uid: str) -> int:
        """How many failed analyses of ``uid`` Tiled has recorded (0 if unknown)."""
        try:
            root = self.store.root
            return int((root[uid].metadata or {}).get("attempts") or 1) if uid in root else 0
        except Exception:
            return 0

    def _fail(self, job: ScanJob, record: ScanRecord, reason: str) -> None:
        """Record in Tiled (or the spool) that the scan has no maps, and why."""
        metadata = {**self._metadata(job), "attempts": self._attempts(job.uid) + 1}
        try:
            uri = self._deliver(
                job,
                lambda store: store.write_failure(job.uid, reason, metadata),
                lambda: self.spool.write_failure(job.uid, reason, metadata),
            )
            if uri is not None:
                log.info("scan %s (%s): no maps; recorded why at %s", job.scan_id, job.uid[:8], uri)
        except Exception as exc:
            self.last_error = f"cannot record failure of {job.uid[:8]}: {exc}"
            log.error("%s", self.last_error)
        self._update(record, status="failed", reason=reason)  # only once it is recorded

    def _reference(self, name: str) -> Reference:
        if name not in self._references:
            try:
                self._references[name] = self.store.reference(name)
            except Exception as exc:  # not in the library, or Tiled away: the bundled one
                if not (isinstance(exc, XanesStreamError) or is_outage(exc)):
                    raise
                try:
                    self._references[name] = bundled_reference(name)
                except XanesStreamError:
                    raise XanesStreamError(
                        f"reference {name!r} is neither in the Tiled library nor bundled"
                    ) from None
                log.info("reference %r not in the Tiled library; using the bundled one", name)
        return self._references[name]

    # --- the last scans' frames, for pixel spectra on the live page ---------------------------
    def _keep_stack(self, job: ScanJob, maps) -> None:
        if self.config.kept_stacks <= 0 or maps.metadata.get("method") != "fit":
            return  # a few-energy scan has no pixel spectrum to normalize and fit
        if maps.thickness.ndim != 2:
            return  # a volume's voxel spectra are not shown
        fit = maps.metadata.get("settings", {}).get("fit", {})
        with self._lock:
            self._stacks[job.uid] = {
                "frames": job.frames,
                "energies": job.energies,
                "energies_used": maps.energies,
                "normalization": maps.metadata["normalization"],
                "references": list(maps.reference_names),
                "method": fit.get("method", "nnls"),
                "sum_to_one": fit.get("sum_to_one", "none"),
            }
            self._stacks.move_to_end(job.uid)
            while len(self._stacks) > self.config.kept_stacks:
                self._stacks.popitem(last=False)

    def kept_scans(self) -> list[str]:
        """Uids of the scans whose frames are in memory (for pixel spectra), oldest first."""
        with self._lock:
            return list(self._stacks)

    def references(self, names: list[str]) -> list[Reference]:
        """The reference spectra by name, as the analysis uses them."""
        return [self._reference(name) for name in names]

    def pixel_spectrum(self, uid: str, y: int, x: int):
        """Pixel (y, x) of scan ``uid``: its normalized spectrum and fit (a SpectrumFit)."""
        from xanes_stream.errors import StackNotKept
        from xanes_stream.spectra.pixel import pixel_spectrum

        with self._lock:
            kept = self._stacks.get(uid)
        if kept is None:
            raise StackNotKept(
                f"the frames of scan {uid[:8]} are no longer in memory: the service keeps the "
                f"last {self.config.kept_stacks} scans' (ServiceConfig.kept_stacks)"
            )
        return pixel_spectrum(
            kept["frames"],
            kept["energies"],
            y,
            x,
            self.references(kept["references"]),
            kept["normalization"],
            energies_used=kept["energies_used"],
            method=kept["method"],
            sum_to_one=kept["sum_to_one"],
        )
