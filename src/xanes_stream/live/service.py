"""The long-running consumer: documents in (0MQ or Tiled), maps in Tiled out.

Threads: the 0MQ subscriber (or, with ``source`` tiled, :mod:`.tiled_source`) routes
documents to per-run accumulators (correction and registration happen as frames arrive);
at each stop document a :class:`ScanJob` goes on a queue; one analysis worker
(:mod:`.worker`) fits it and delivers the maps (:mod:`.delivery`), so the subscriber never
waits. With ``config.dask`` the fits run on a Dask cluster (:mod:`.compute`), several at
once, delivered in the order the scans finished. A job whose documents came incomplete
is first read back from Tiled by threads of their own (:mod:`.backfill`), so a run that
cannot be read back never delays the others. Beside them: the spool's writer, the status
file, the sweep for scans lacking maps (:mod:`.recovery`) and, if asked for, the live page
(:mod:`.web`).

This module only wires these pieces and starts and stops them.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from xanes_stream.documents.router import SafeRouter, ScanJob
from xanes_stream.documents.subscriber import SubscriberThread
from xanes_stream.io.models import model_loader
from xanes_stream.live.backfill import Backfills
from xanes_stream.live.compute import analyser_for
from xanes_stream.live.config import ServiceConfig
from xanes_stream.live.connection import TiledConnection
from xanes_stream.live.delivery import Delivery
from xanes_stream.live.events import EventLog
from xanes_stream.live.records import ScanRecord, ScanTable, write_status
from xanes_stream.live.recovery import Recovery
from xanes_stream.live.references import ReferenceCache
from xanes_stream.live.series import SeriesTables
from xanes_stream.live.stacks import KeptStacks
from xanes_stream.live.tiled_source import TiledSourceThread
from xanes_stream.live.view import ScanView
from xanes_stream.live.worker import AnalysisWorker, warm_up_analysis
from xanes_stream.profiles import Profile, load_profile
from xanes_stream.store.client import tiled_client
from xanes_stream.store.spool import Spool

__all__ = ["ScanRecord", "ServiceConfig", "XanesService"]

log = logging.getLogger(__name__)


class XanesService:
    """Subscribes to documents, analyses each energy scan at its stop, writes maps to Tiled;
    the live page reads it through :attr:`view` (a
    :class:`~xanes_stream.live.web.source.ScanSource`).

    A live service never writes over good maps of another run with the same uid (they are
    kept and the refused result noted); ``replace_results`` (replay) replaces them.
    """

    def __init__(
        self,
        config: ServiceConfig,
        *,
        profile: Profile | None = None,
        client=None,
        source_client=None,
        provenance: dict | None = None,
        replace_results: bool = False,
    ):
        self.config = config
        self.profile = profile or load_profile(config.profile)
        self.roots = [*self.profile.allowed_roots, *config.allowed_roots]
        self.state_dir = Path(config.state_dir)
        self.table = ScanTable()
        self.tiled = TiledConnection(config, self.table, client, replace_done=replace_results)
        self.spool = Spool(self.state_dir / "spool")
        self.delivery = Delivery(self.tiled.store_or_none, self.spool, self.table)
        self.stacks = KeptStacks(config.kept_stacks)
        self._references = ReferenceCache(self.tiled.store)
        self.recovery = Recovery(
            config,
            self.profile,
            self.roots,
            table=self.table,
            tiled=self.tiled,
            spool=self.spool,
            submit=self._submit,
            raw_runs=self._raw_runs,
        )
        self.worker = AnalysisWorker(
            table=self.table,
            delivery=self.delivery,
            references=self._references,
            stacks=self.stacks,
            series=SeriesTables(self.tiled.store, self.table),
            store=self.tiled.store,
            provenance=dict(provenance or {}),  # merged into every result's metadata
            load_model=model_loader([*self.profile.model_roots, *config.model_roots]),
        )
        self.backfills = Backfills(
            self.recovery.backfill, self.worker.jobs.put, self.table, self.tiled.store
        )
        source = {"zmq": "live over 0MQ", "tiled": "live from Tiled"}[config.source]
        self._router = SafeRouter(
            self.profile,
            self.roots,
            self._submit,
            self.table.progress,
            config.limits(),
            source="replayed" if replace_results else source,
        )
        self._subscriber: SubscriberThread | TiledSourceThread | None = None
        # the raw runs' container: given (replay's source), or source_uri's once connected
        self._raw_runs_client = source_client
        self._housekeepers: list[threading.Thread] = []
        self._stopping = threading.Event()
        self.web = None  # the live page's WebServer, while it runs
        self.view = ScanView(self.table, self.stacks, self._references, self.tiled, self.status)

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self, *, subscribe: bool = True) -> XanesService:
        """Start the analysis worker and (unless ``subscribe`` is False, as for replay, where
        documents are fed by calling the service) the source of documents: the 0MQ
        subscriber, or with ``source`` ``"tiled"`` the runs TiledWriter writes into Tiled.

        With ``config.dask`` the analyses run on that Dask cluster: a scheduler that cannot
        be reached raises :class:`~xanes_stream.errors.XanesStreamError` before anything
        starts."""
        analyser = analyser_for(self.config.dask)  # first: an unreachable cluster stops here
        # In this thread, before any other starts: the first Tiled write imports much (dask),
        # and concurrent first imports from two threads can fail; it also warms the server.
        try:
            self.tiled.store().warm_up()
        except Exception as exc:  # Tiled not there yet: the first scan will say so
            self.table.last_error = f"Tiled at {self.config.tiled_uri}: {exc}"
            log.error("cannot reach Tiled at %s yet: %s", self.config.tiled_uri, exc)
        warm_up_analysis(self.profile.settings)  # here too: its imports must not race
        analyser.warm_up(warm_up_analysis, self.profile.settings)  # and on a cluster's workers
        if self.config.web_port is not None:
            from xanes_stream.live.web import WebServer

            self.web = WebServer(
                self.view,
                self.config.web_host,
                self.config.web_port,
                allowed_hosts=self.config.web_allowed_hosts,
            ).start()
            log.info("live page at %s", self.web.url)
        self.worker.start(analyser)
        self.backfills.start()
        self.delivery.start()
        if not subscribe:
            return self
        self._subscriber = self._source().start()
        log.info(
            "xanes-stream serving profile %r: maps to %s/%s",
            self.profile.name,
            self.config.tiled_uri,
            self.config.results_root,
        )
        self._housekeepers = [
            threading.Thread(target=target, args=(self._stopping,), name=name, daemon=True)
            for target, name in (
                (self._keep_status, "xanes-keep_status"),
                (self.recovery.keep_sweeping, "xanes-keep_sweeping"),
            )
        ]
        for thread in self._housekeepers:
            thread.start()
        return self

    def _source(self) -> SubscriberThread | TiledSourceThread:
        """The thread that feeds the router, as ``config.source`` says (not started)."""
        if self.config.source == "tiled":
            where = self.config.source_uri or self.config.tiled_uri
            return TiledSourceThread(
                self._raw_runs,
                self._router,
                self.profile,
                known=lambda uid: self.table.get(uid) is not None,
                roots=self.roots,
                label=f"Tiled at {where}",
            )
        return SubscriberThread(
            self.config.zmq_address,
            self._router,
            prefix=self.config.zmq_prefix.encode(),
            allow_pickle=self.config.allow_pickle,
            max_message_bytes=self.config.max_message_bytes,
        )

    def _raw_runs(self):
        """The Tiled container of the raw runs (followed with ``source`` tiled, read back by
        the backfill): ``source_client`` if given, else ``source_uri``'s, else the results'."""
        if self._raw_runs_client is not None:
            return self._raw_runs_client
        if self.config.source_uri is None:
            return self.tiled.store().client
        self._raw_runs_client = tiled_client(self.config.source_uri, self._source_key())
        return self._raw_runs_client

    def _source_key(self) -> str | None:
        """The raw runs' API key: their own, else the results' when both are on one server
        (the results' key is never sent to another server), else none (anonymous)."""
        from urllib.parse import urlsplit

        config = self.config
        if config.source_api_key is not None:
            return config.source_api_key.get_secret_value()
        same = urlsplit(config.source_uri).netloc == urlsplit(config.tiled_uri).netloc
        return config.api_key.get_secret_value() if same and config.api_key else None

    def stop(self, timeout: float = 60.0) -> None:
        """Stop listening, finish the scans already queued (bounded), stop the worker."""
        if self._subscriber is not None:
            self._subscriber.stop()
        self._stopping.set()
        self.backfills.stop()
        self.worker.stop(timeout)
        self.delivery.stop()
        for thread in self._housekeepers:
            thread.join(10)
        write_status(self.state_dir / "status.json", self.status())
        if self.web is not None:
            self.web.stop()
            self.web = None
        log.info("xanes-stream stopped")

    def __enter__(self) -> XanesService:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _keep_status(self, stopping: threading.Event) -> None:
        while not stopping.wait(1.0):
            write_status(self.state_dir / "status.json", self.status())

    # --- feeding documents directly (replay, tests) -------------------------------------------
    def __call__(self, name: str, doc: dict) -> None:
        self._router(name, doc)

    def abandon_runs(self, reason: str) -> None:
        """Fail every run started and not stopped with ``reason`` (e.g. a documents file
        ended before their stops): each gets a failed record at once, none waits."""
        self._router.abandon(reason)

    def feed(self, documents, *, source: str | None = None, note: str | None = None) -> None:
        """Route one run's ``(name, doc)`` pairs (replay). ``source`` says where its frames
        came from (e.g. ``"replayed from the arrays the archive's server filled"``): it is
        the run's ``frames_from``, None keeping the service's own label; ``note`` (why they
        were read so) goes into its record's notes."""
        label = self._router.source
        if source is not None:
            self._router.source = source  # both taken by the run's job at its start document
        self._router.note = note
        try:
            for name, doc in documents:
                self._router(name, doc)
        finally:
            self._router.source, self._router.note = label, None

    def _submit(self, job: ScanJob) -> None:
        with self.table.lock:
            record = self.table.get(job.uid)
            same_run = record is not None and record.started_at == job.start.get("time")
            if same_run and record.status in ("queued", "analysing", "done"):
                # this run already in hand or mapped: found by the sweep, then its (orphan or
                # late) stop came, or evicted after the sweep took it over; one set of maps per
                # scan. Another run reusing the uid (its own start) goes on, to be refused.
                log.info(
                    "scan %s is already %s; a second copy is ignored", job.uid[:8], record.status
                )
                return
            record = self.table.record(job)
            self.table.update(record, status="queued", stopped_at=job.stopped_at or None)
        if job.incomplete is not None and not self.config.backfill:  # replay --file
            job.failure = f"its documents are incomplete: {job.incomplete}"
            job.incomplete = None
            self.worker.jobs.put(job)
        elif job.incomplete is not None:
            self.backfills.submit(job)  # read back from Tiled beside the analysis, not in it
        else:
            self.worker.jobs.put(job)

    def wait_for(self, uids: list[str], timeout: float) -> list[ScanRecord | None]:
        """The records of ``uids`` once each is done or failed, or as they are after
        ``timeout`` s (None for a scan not seen yet)."""
        return self.table.wait_for(uids, timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Block until every queued scan is handled (or ``timeout`` s pass)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = self.table.busy()
            if self.worker.jobs.empty() and not busy:
                return True
            time.sleep(0.05)
        return False

    # --- what it reports (the live page's ScanSource, status.json) ------------------------------
    @property
    def records(self) -> dict[str, ScanRecord]:
        """The records by raw uid (the live table: hold ``table.lock`` to iterate it)."""
        return self.table.records

    @property
    def events(self) -> EventLog:
        return self.table.events

    @property
    def counts(self) -> dict[str, int]:
        """Scans re-read from Tiled (``backfilled``) and found lacking maps (``recovered``)."""
        return self.table.counts

    def status(self) -> dict:
        """What a person or a health check needs: is it listening, what is in flight, how far
        behind it is (``lag_seconds``: since the stop of the oldest scan not yet in Tiled),
        what is spooled, and the last error."""
        return self.table.status(
            profile=self.profile.name,
            listening=bool(self._subscriber and self._subscriber.alive),
            queued=self.worker.jobs.qsize(),
            spooled=len(self.spool),
            rejected=self._router.rejected,
        )
