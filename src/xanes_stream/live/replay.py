"""Replay: archived raw runs back through the live path (router, accumulator, analysis,
writer), optionally with other settings or references, into the same or another root. A
replayed scan's maps equal the live ones.

The raw runs may come from a ``source`` other than the destination (a facility's read-only
archive, e.g. ``http://host:8000/api/v1/metadata/fxi/raw``): they are only ever read there;
references and maps are read from and written to ``client``. A whole beamtime is resumable:
a run whose maps in the destination were made by a replay with the same settings (their
:func:`~xanes_stream.pipeline.settings.settings_digest`) and the same software version is
skipped unless ``force``. A destination that cannot write is found out once, before any
analysis, and said in the server's words.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from xanes_stream import __version__
from xanes_stream.documents.job import is_energy_scan
from xanes_stream.errors import XanesStreamError
from xanes_stream.live.config import ServiceConfig
from xanes_stream.live.records import ScanRecord
from xanes_stream.live.service import XanesService
from xanes_stream.pipeline.settings import AnalysisSettings, settings_digest
from xanes_stream.profiles import Profile
from xanes_stream.store.archived import archived_documents
from xanes_stream.store.tiled_store import TiledResultStore

__all__ = ["ALREADY_DONE", "NOT_ENERGY_SCAN", "find_runs", "replay", "replay_file"]

log = logging.getLogger(__name__)

#: The reason of a run skipped because the destination has its maps from the same replay.
ALREADY_DONE = "already replayed with these settings and this version"
#: The reason of a run skipped because the profile does not take it for an energy scan.
NOT_ENERGY_SCAN = "not an energy scan"


def find_runs(
    client,
    *,
    uids: Iterable[str] = (),
    scan_ids: tuple[int, int] | None = None,
    sample: str | None = None,
    plan_name: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> list[str]:
    """Uids of raw runs in ``client`` (the source): given ones, or those matching every
    filter given, oldest first.

    ``scan_ids`` is an inclusive range; ``since``/``until`` are dates or times of the start
    document at any granularity (``2024``, ``2024-07``, ``2024-07-04 05:00``; local time).
    The filters run on the server as Tiled queries; nothing is written.
    """
    from tiled.queries import Comparison, Eq

    uids = list(uids)
    missing = [uid for uid in uids if uid not in client]
    if missing:
        where = getattr(client, "uri", "the source")
        raise XanesStreamError(f"no raw run {', '.join(missing)} in the Tiled at {where}")
    if uids and not any((scan_ids, sample, plan_name, since, until)):
        return uids
    results = client
    if scan_ids is not None:
        results = results.search(Comparison("ge", "start.scan_id", scan_ids[0]))
        results = results.search(Comparison("le", "start.scan_id", scan_ids[1]))
    if sample is not None:
        results = results.search(Eq("start.sample", sample))
    if plan_name is not None:
        results = results.search(Eq("start.plan_name", plan_name))
    if since is not None or until is not None:
        low, high = _time_range(since, until)
        if low is not None:
            results = results.search(Comparison("ge", "start.time", low))
        if high is not None:
            results = results.search(Comparison("le", "start.time", high))
    found = []
    for key, node in results.items():  # metadata comes with the page: no request per run
        start = (node.metadata or {}).get("start")
        if start and (not uids or key in uids):
            found.append((start.get("time") or 0.0, key))
    return [uid for _, uid in sorted(found)]


def _time_range(since: str | None, until: str | None) -> tuple[float | None, float | None]:
    """``since``/``until`` as epoch seconds, parsed as bluesky's ``TimeRange`` does."""
    from bluesky_tiled_plugins.queries import TimeRange

    try:
        span = TimeRange(since=since, until=until)
    except ValueError as exc:
        raise XanesStreamError(f"--since/--until: {exc}") from None
    return span.since, span.until


def replay(
    client,
    uids: list[str],
    *,
    source=None,
    profile: Profile,
    settings: AnalysisSettings | None = None,
    root: str = "xanes",
    results_dir: str | None = None,
    allowed_roots: list[str] = (),
    progress: Callable[[int, int], None] | None = None,
    timeout_per_scan: float = 600.0,
    force: bool = False,
    dask: str | None = None,
) -> list[ScanRecord]:
    """Re-analyse raw runs ``uids`` of ``source`` through the live path into ``client``;
    returns what happened to each, in order. Each result's ``frames_from`` says where its
    frames came from (the archive's route, e.g. the files its resource documents name, or
    the arrays a databroker server filled).

    Parameters
    ----------
    client
        The destination Tiled (references, and maps under ``root``); it must take writes:
        this is probed once, and a refusal raises with the server's words.
    uids : list of str
        Raw runs in ``source``.
    source
        The Tiled container the raw runs are read from (only read); None: ``client``.
    profile, settings
        The beamline profile, and settings to use instead of its own.
    progress : callable, optional
        ``progress(done, total)`` after each run is handed on (or skipped).
    force : bool
        Replay runs already replayed with the same settings and version too.

    Returns
    -------
    list of ScanRecord
        Status ``done``, ``failed`` (the reason says why), ``spooled`` (the destination was
        unreachable), or ``skipped`` (reason :data:`ALREADY_DONE` or :data:`NOT_ENERGY_SCAN`).

    Raises
    ------
    XanesStreamError
        The destination refuses to write, or cannot be reached.
    """
    source = client if source is None else source
    if settings is not None:
        profile = profile.model_copy(update={"settings": settings})
    digest = settings_digest(profile.settings)
    store = TiledResultStore(client, root=root)
    store.check_writable()  # before any analysis: a read-only destination fails here
    done = {} if force else _already_done(store, profile, digest)
    refused: dict[str, str] = {}
    skipped: dict[str, ScanRecord] = {}

    def runs():
        for n, uid in enumerate(uids, 1):
            if uid in done:
                skipped[uid] = ScanRecord(uid, done[uid], "", "skipped", reason=ALREADY_DONE)
                log.info("scan %s (%s): %s; skipped", done[uid], uid[:8], ALREADY_DONE)
                yield uid, None, None, None
                continue
            try:
                node = source[uid]
                start = dict((node.metadata or {}).get("start") or {"uid": uid})
                if not is_energy_scan(start, profile):
                    sid = start.get("scan_id")
                    skipped[uid] = ScanRecord(uid, sid, "", "skipped", reason=NOT_ENERGY_SCAN)
                    log.info("scan %s (%s): %s; skipped", sid, uid[:8], NOT_ENERGY_SCAN)
                    yield uid, None, None, None
                    continue
                log.info("replaying %s (%d of %d)", uid[:8], n, len(uids))
                run = archived_documents(node, profile, [*profile.allowed_roots, *allowed_roots])
            except Exception as exc:  # a run the source cannot give back: say so, go on
                refused[uid] = f"cannot be read from the source: {exc}"
                log.error("scan %s %s", uid[:8], refused[uid])
                yield uid, [], None, None
                continue
            if run.note:
                log.warning("scan %s: %s", uid[:8], run.note)
            yield uid, run.documents, run.source, run.note

    records = _replay(
        client,
        runs(),
        len(uids),
        profile,
        root,
        results_dir,
        allowed_roots,
        progress,
        timeout_per_scan,
        refused,
        source=source,
        provenance={"settings_digest": digest},
        dask=dask,
    )
    return [skipped.get(record.uid, record) for record in records]


def _already_done(store: TiledResultStore, profile: Profile, digest: str) -> dict[str, object]:
    """Scan ids by raw uid of the good maps in ``store`` replayed with ``digest`` by this
    version under ``profile`` (one search, on the server)."""
    from tiled.queries import Eq

    found = store.root
    for key, value in (
        ("settings_digest", digest),
        ("version", __version__),
        ("status", "done"),
        ("profile", profile.name),
    ):
        found = found.search(Eq(key, value))
    return {uid: (node.metadata or {}).get("scan_id") for uid, node in found.items()}


def replay_file(
    client,
    path,
    *,
    profile: Profile,
    settings: AnalysisSettings | None = None,
    root: str = "xanes",
    results_dir: str | None = None,
    allowed_roots: list[str] = (),
    progress=None,
    timeout_per_scan: float = 600.0,
    dask: str | None = None,
) -> list[ScanRecord]:
    """Analyse the runs in a documents file (JSON lines or msgpack, e.g. from another
    facility) through the live path into Tiled; returns what happened to each run.

    Only the file's documents are used: a run incomplete in it (events missing, no stop)
    fails at once with the reason; nothing is read back from Tiled, nothing waits.
    """
    from xanes_stream.documents.files import read_documents

    if settings is not None:
        profile = profile.model_copy(update={"settings": settings})
    skipped: dict[str, ScanRecord] = {}

    def run(uid, documents):
        start = documents[0][1] if documents and documents[0][0] == "start" else {}
        if start and not is_energy_scan(start, profile):
            sid = start.get("scan_id")
            skipped[uid] = ScanRecord(uid, sid, "", "skipped", reason=NOT_ENERGY_SCAN)
            log.info("scan %s (%s): %s; skipped", sid, str(uid)[:8], NOT_ENERGY_SCAN)
            return uid, None, None, None
        return uid, documents, None, None

    def runs():
        uid, documents = None, []
        for name, doc in read_documents(path):
            if name == "start":
                if uid is not None:
                    yield run(uid, documents)
                uid, documents = doc.get("uid"), []
            documents.append((name, doc))
        if uid is not None:
            yield run(uid, documents)

    records = _replay(
        client,
        runs(),
        None,
        profile,
        root,
        results_dir,
        allowed_roots,
        progress,
        timeout_per_scan,
        backfill=False,
        provenance={"settings_digest": settings_digest(profile.settings)},
        dask=dask,
    )
    return [skipped.get(record.uid, record) for record in records]


def _replay(
    client,
    runs,
    total,
    profile,
    root,
    results_dir,
    allowed_roots,
    progress,
    timeout,
    refused: dict[str, str] | None = None,
    *,
    source=None,
    backfill: bool = True,
    provenance: dict | None = None,
    dask: str | None = None,
) -> list[ScanRecord]:
    config = ServiceConfig(
        tiled_uri=client.uri,
        source_uri=None if source is None else source.uri,
        profile=profile.name,
        results_root=root,
        results_dir=results_dir,
        allowed_roots=list(allowed_roots),
        backfill=backfill,
        **({"dask": dask} if dask else {}),  # else XANES_DASK, else in this process
        # not the live spool; a nested root (fxi/xanes) is one folder, replay-fxi-xanes
        state_dir=str(Path(ServiceConfig().state_dir) / f"replay-{root.replace('/', '-')}"),
    )
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    service = XanesService(
        config,
        profile=profile,
        client=client,
        source_client=source,
        provenance={"replayed": True, "replayed_at": now, **(provenance or {})},
        replace_results=True,  # asked for: the replayed maps replace the earlier ones
    )
    service.start(subscribe=False)
    uids, fed = [], []
    try:
        for done, (uid, documents, source_label, note) in enumerate(runs, 1):
            uids.append(uid)
            if documents is not None:  # None: skipped, nothing to analyse
                fed.append(uid)
                _wait_for_room(service, timeout)  # a beamtime is not held in memory at once
                service.feed(documents, source=source_label, note=note)
            if progress is not None:
                progress(done, total or done)
        service.abandon_runs("its documents end before its stop document")
        service.wait_idle(timeout * max(1, len(fed)))
    finally:
        service.stop()
    return [
        service.records.get(uid)
        or ScanRecord(
            uid,
            None,
            "",
            "failed",
            reason=(refused or {}).get(uid, "not an energy scan or unreadable"),
        )
        for uid in uids
    ]


def _wait_for_room(service: XanesService, timeout: float, most: int = 2) -> None:
    """Wait (at most ``timeout`` s) until fewer than ``most`` scans wait for the analysis."""
    deadline = time.monotonic() + timeout
    while service.worker.jobs.qsize() >= most and time.monotonic() < deadline:
        time.sleep(0.05)
