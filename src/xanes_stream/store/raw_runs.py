"""Raw runs that TiledWriter archived: read a scan back whole, and find scans without maps.

This is how a run survives 0MQ losing its documents or the service being down: the archive in
Tiled is complete, so the scan is re-read from there through the same router.
"""

from __future__ import annotations

import logging
import time

from xanes_stream.documents.router import SafeRouter, ScanJob, is_energy_scan
from xanes_stream.errors import XanesStreamError
from xanes_stream.profiles import Profile

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
    not an energy scan for ``profile``)."""
    node = wait_for_raw_run(client, uid, timeout)
    jobs: list[ScanJob] = []
    router = SafeRouter(profile, roots, jobs.append)
    for name, doc in node.documents():
        router(name, dict(doc))
    return jobs[0] if jobs else None


def unanalysed_runs(
    client,
    results_root: str,
    profile: Profile,
    since: float,
    *,
    retry_failed: bool = False,
    max_attempts: int = 2,
) -> list[str]:
    """Uids of complete energy scans started after ``since`` (epoch s) that have no maps;
    with ``retry_failed`` also those that ended well but whose analysis failed fewer than
    ``max_attempts`` times. Oldest first."""
    from tiled.queries import Key

    results = client[results_root] if results_root in client else {}
    candidates = client.search(Key("start.time") >= since)
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
