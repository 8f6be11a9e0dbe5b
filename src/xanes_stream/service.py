"""The long-running consumer: 0MQ documents in, maps in Tiled out.

Threads: the 0MQ subscriber routes documents to per-run accumulators (correction and
registration happen as frames arrive); at each stop document a :class:`ScanJob` goes on a
queue; one analysis worker fits it and writes the maps, so the subscriber never waits.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from .analysis import analyze
from .documents.router import SafeRouter, ScanJob
from .documents.subscriber import SubscriberThread
from .errors import XanesStreamError
from .events import EventLog
from .maps import jsonable
from .profiles import Profile, load_profile
from .spectra.references import Reference, bundled_reference
from .store.tiled_store import TiledResultStore

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
    allowed_roots: list[str] = Field(default_factory=list)
    allow_pickle: bool = False
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
    status: str  # receiving | queued | analysing | done | failed
    frames: int = 0
    expected: int | None = None
    series: str | None = None
    received_at: float | None = None
    uri: str | None = None
    reason: str | None = None
    latency: float | None = None
    analysis_seconds: float | None = None
    summary: dict = field(default_factory=dict)

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
        self._stacks: OrderedDict[str, dict] = OrderedDict()  # uid -> kept stack, newest last
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
        if self.config.web_port is not None:
            from .web import WebServer

            self.web = WebServer(self, self.config.web_host, self.config.web_port).start()
            log.info("live page at %s", self.web.url)
        self._worker.start()
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
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop listening, finish the scans already queued (bounded), stop the worker."""
        if self._subscriber is not None:
            self._subscriber.stop()
        self._jobs.put(None)
        self._worker.join(timeout)
        if self._worker.is_alive():
            log.error("analysis worker still busy after %.0f s; leaving it", timeout)
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
        with self._lock:
            records = list(self.records.values())
        return {
            "profile": self.profile.name,
            "listening": bool(self._subscriber and self._subscriber.alive),
            "receiving": sum(r.status == "receiving" for r in records),
            "queued": self._jobs.qsize(),
            "done": sum(r.status == "done" for r in records),
            "failed": sum(r.status == "failed" for r in records),
            "rejected_documents": self._router.rejected,
            "last_error": self.last_error,
        }

    # --- the analysis worker ---------------------------------------------------------------
    @property
    def store(self) -> TiledResultStore:
        if self._store is None:
            if self._client is None:
                from tiled.client import from_uri

                key = self.config.api_key.get_secret_value() if self.config.api_key else None
                self._client = from_uri(self.config.tiled_uri, api_key=key)
            self._store = TiledResultStore(self._client, root=self.config.results_root)
        return self._store

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
        record = self._record(job)
        self._update(record, status="queued", frames=record.frames)
        self._jobs.put(job)

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
                self._record_failure(job, reason)
                self._update(record, status="failed", reason=reason)  # only once it is recorded

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

    def _handle(self, job: ScanJob, record: ScanRecord) -> None:
        label = f"scan {job.scan_id} ({job.uid[:8]})"
        if job.failure is not None:
            self._record_failure(job, job.failure)
            self._update(record, status="failed", reason=job.failure)
            return
        started = time.perf_counter()
        references = [self._reference(name) for name in job.references]
        if not references:
            raise XanesStreamError("no references: set md['xanes']['references'] or the profile's")
        settings = job.profile.settings.model_copy(
            update={
                "registration": job.profile.settings.registration.model_copy(
                    update={"method": "none"}
                )
            }
        )
        maps = analyze(
            job.frames,
            job.energies,
            references,
            mode="absorbance",
            settings=settings,
            shifts=job.shifts,
        )
        analysed = time.perf_counter() - started
        self._keep_stack(job, maps)
        log.info("%s: analysed in %.2f s (%d x %d x %d)", label, analysed, *job.frames.shape)
        metadata = self._metadata(job)
        metadata["timings"] = {"analysis": analysed}
        uri = self.store.write_maps(job.uid, maps, metadata)
        self._update(
            record,
            latency=time.time() - job.stopped_at,
            analysis_seconds=analysed,
            summary=maps.summary(),
            status="done",
            uri=uri,
        )
        log.info(
            "%s: maps written to %s (%.2f s after its stop document)", label, uri, record.latency
        )

    def _record_failure(self, job: ScanJob, reason: str) -> None:
        try:
            uri = self.store.write_failure(job.uid, reason, self._metadata(job))
            log.info("scan %s (%s): no maps; recorded why at %s", job.scan_id, job.uid[:8], uri)
        except Exception as exc:
            self.last_error = f"cannot record failure of {job.uid[:8]}: {exc}"
            log.error("%s", self.last_error)

    def _reference(self, name: str) -> Reference:
        if name not in self._references:
            try:
                self._references[name] = self.store.reference(name)
            except XanesStreamError:
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
        if self.config.kept_stacks <= 0:
            return
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
        from .errors import StackNotKept
        from .spectra.pixel import pixel_spectrum

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
