"""Replay: archived raw runs from Tiled back through the live path (router, accumulator,
analysis, writer), optionally with other settings or references, into the same or another
root. A replayed scan's maps equal the live ones."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable
from pathlib import Path

from xanes_stream.errors import XanesStreamError
from xanes_stream.live.config import ServiceConfig
from xanes_stream.live.records import ScanRecord
from xanes_stream.live.service import XanesService
from xanes_stream.pipeline.settings import AnalysisSettings
from xanes_stream.profiles import Profile

log = logging.getLogger(__name__)


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
    """Uids of raw runs in Tiled: given ones, or those matching every filter given.

    ``scan_ids`` is an inclusive range; ``since``/``until`` are ISO dates of the start document.
    """
    from tiled.queries import Key

    uids = list(uids)
    missing = [uid for uid in uids if uid not in client]
    if missing:
        raise XanesStreamError(f"no raw run {', '.join(missing)} in Tiled")
    if uids and not any((scan_ids, sample, plan_name, since, until)):
        return uids
    results = client
    if scan_ids is not None:
        results = results.search(Key("start.scan_id") >= scan_ids[0]).search(
            Key("start.scan_id") <= scan_ids[1]
        )
    if sample is not None:
        results = results.search(Key("start.sample") == sample)
    if plan_name is not None:
        results = results.search(Key("start.plan_name") == plan_name)
    if since is not None:
        results = results.search(Key("start.time") >= _timestamp(since))
    if until is not None:
        results = results.search(Key("start.time") <= _timestamp(until))
    found = [key for key in results if "start" in (results[key].metadata or {})]
    return [uid for uid in found if not uids or uid in uids]


def _timestamp(text: str) -> float:
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise XanesStreamError(f"{text!r} is not an ISO date or time") from None


def replay(
    client,
    uids: list[str],
    *,
    profile: Profile,
    settings: AnalysisSettings | None = None,
    root: str = "xanes",
    results_dir: str | None = None,
    allowed_roots: list[str] = (),
    progress=None,
    timeout_per_scan: float = 600.0,
) -> list[ScanRecord]:
    """Re-analyse raw runs ``uids`` through the live path; returns what happened to each.

    Documents of the next run are read while the previous one is analysed. Results carry
    provenance (``replayed``, ``replayed_at``, the settings) and replace earlier ones.
    """

    def runs():
        for uid in uids:
            log.info("replaying %s", uid[:8])
            try:
                yield uid, [(name, _as_dict(doc)) for name, doc in client[uid].documents()]
            except Exception as exc:  # a run Tiled cannot give back: say so, go on
                log.error("cannot read the documents of %s: %s", uid[:8], exc)
                yield uid, []

    return _replay(
        client,
        runs(),
        len(uids),
        profile,
        settings,
        root,
        results_dir,
        allowed_roots,
        progress,
        timeout_per_scan,
    )


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
) -> list[ScanRecord]:
    """Analyse the runs in a documents file (JSON lines or msgpack, e.g. from another
    facility) through the live path into Tiled; returns what happened to each run."""
    from xanes_stream.documents.files import read_documents

    def runs():
        uid, documents = None, []
        for name, doc in read_documents(path):
            if name == "start":
                if uid is not None:
                    yield uid, documents
                uid, documents = doc.get("uid"), []
            documents.append((name, doc))
        if uid is not None:
            yield uid, documents

    return _replay(
        client,
        runs(),
        None,
        profile,
        settings,
        root,
        results_dir,
        allowed_roots,
        progress,
        timeout_per_scan,
    )


def _replay(
    client, runs, total, profile, settings, root, results_dir, allowed_roots, progress, timeout
) -> list[ScanRecord]:
    if settings is not None:
        profile = profile.model_copy(update={"settings": settings})
    config = ServiceConfig(
        tiled_uri=client.uri,
        profile=profile.name,
        results_root=root,
        results_dir=results_dir,
        allowed_roots=list(allowed_roots),
        state_dir=str(Path(ServiceConfig().state_dir) / f"replay-{root}"),  # not the live spool
    )
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    service = XanesService(
        config,
        profile=profile,
        client=client,
        provenance={"replayed": True, "replayed_at": now},
        replace_results=True,  # asked for: the replayed maps replace the earlier ones
    )
    service.start(subscribe=False)
    uids = []
    try:
        for done, (uid, documents) in enumerate(runs, 1):
            uids.append(uid)
            for name, doc in documents:
                service(name, doc)
            if progress is not None:
                progress(done, total or done)
        service.wait_idle(timeout * max(1, len(uids)))
    finally:
        service.stop()
    return [
        service.records.get(uid)
        or ScanRecord(uid, None, "", "failed", reason="not an energy scan or unreadable")
        for uid in uids
    ]


def _as_dict(doc):
    return dict(doc) if not isinstance(doc, dict) else doc
