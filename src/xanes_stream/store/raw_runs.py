"""Raw runs that TiledWriter archived: read a scan back whole, and find scans without maps.

This is how a run survives 0MQ losing its documents or the service being down: the archive in
Tiled is complete, so the scan is re-read from there through the same router.
"""

from __future__ import annotations

import logging
import time

from xanes_stream.documents.codec import DocumentError
from xanes_stream.documents.router import SafeRouter, ScanJob, is_energy_scan
from xanes_stream.errors import XanesStreamError
from xanes_stream.profiles import Profile
from xanes_stream.store.archived import RawRunRefused, archived_documents
from xanes_stream.store.roots import find_root

log = logging.getLogger(__name__)


class RawRunNotReady(XanesStreamError):
    """The raw run is not (yet) complete in Tiled."""


def wait_for_raw_run(client, uid: str, timeout: float, poll: float = 0.25):
    """The raw run ``uid`` once TiledWriter has written its stop (waits at most ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while True:
        if uid in client:
            node = client[uid]
            if (node.metadata or {}).get("stop"):
                return node
        if time.monotonic() >= deadline:
            raise RawRunNotReady(f"raw run {uid[:8]} not complete in Tiled after {timeout:g} s")
        time.sleep(poll)


def read_scan(client, uid: str, profile: Profile, roots: list, timeout: float) -> ScanJob | None:
    """Route the archived documents of raw run ``uid`` into a :class:`ScanJob` (None if it is
    not an energy scan for ``profile``), checked by
    :func:`~xanes_stream.store.archived.archived_documents`: a run whose copy in Tiled cannot
    be trusted, nor its files, comes back failed with the reason; the job's ``source`` and
    notes say where its frames came from."""
    node = wait_for_raw_run(client, uid, timeout)
    start = dict((node.metadata or {}).get("start") or {"uid": uid})
    if not is_energy_scan(start, profile):
        return None
    try:
        run = archived_documents(node, profile, roots)
    except (RawRunRefused, DocumentError) as exc:
        log.error("scan %s: %s", uid[:8], exc)
        return ScanJob(
            uid=uid,
            start=start,
            stop=(node.metadata or {}).get("stop"),
            profile=profile,
            references=[],
            failure=f"its frames cannot be trusted: {exc}",
            source="Tiled",
        )
    jobs: list[ScanJob] = []
    router = SafeRouter(profile, roots, jobs.append)
    for name, doc in run.documents:
        router(name, doc)
    if not jobs:
        return None
    jobs[0].source = run.source
    if run.note:
        jobs[0].notes.append(run.note)
    return jobs[0]


def unanalysed_runs(
    client,
    results_root: str,
    profile: Profile,
    since: float,
    *,
    retry_failed: bool = False,
    max_attempts: int = 2,
    runs=None,
) -> list[str]:
    """Uids of complete energy scans started after ``since`` (epoch s) that have no maps
    under ``results_root`` of ``client``; with ``retry_failed`` also those that ended well but
    whose analysis failed fewer than ``max_attempts`` times. The raw runs are searched in
    ``runs`` (another Tiled or container: the raw runs' source), else in ``client``. Oldest
    first."""
    from tiled.queries import Key

    results = find_root(client, results_root)
    results = {} if results is None else results
    candidates = (client if runs is None else runs).search(Key("start.time") >= since)
    found = []
    for uid, node in candidates.items():
        md = node.metadata or {}
        start, stop = md.get("start"), md.get("stop")
        if not start or not stop or not is_energy_scan(start, profile):
            continue
        if uid in results:
            result = results[uid].metadata or {}
            retry = (
                retry_failed
                and result.get("status") == "failed"
                and stop.get("exit_status", "success") == "success"
                and int(result.get("attempts") or 1) < max_attempts
            )
            if not retry:
                continue
        found.append((start.get("time", 0.0), uid))
    return [uid for _, uid in sorted(found)]
