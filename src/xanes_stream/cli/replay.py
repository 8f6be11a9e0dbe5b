"""``xanes-stream replay``: archived raw runs (Tiled, or a documents file) through the live path.

The raw runs come from ``--source`` (a read-only archive, e.g. NSLS-II's ``/<beamline>/raw``;
default: ``--tiled-uri``); references and maps are read from and written to ``--tiled-uri``
under ``--root``. At the end: one line per run, the failures again with their reasons, and a
summary with the time per run; the exit status is 1 if any run failed.
"""

from __future__ import annotations

import argparse
import time

from xanes_stream.cli.common import ProgressBars, dask_option, results_dir_option, tiled_client
from xanes_stream.errors import XanesStreamError


def cmd_replay(args: argparse.Namespace) -> int:
    from xanes_stream.live.replay import find_runs, replay
    from xanes_stream.pipeline.settings import load_settings
    from xanes_stream.profiles import load_profile

    client = tiled_client(args)
    if args.file:
        return _replay_file(args, client)
    source = _source_client(args) if args.source else client
    scan_ids = None
    if args.scan_ids:
        low, _, high = args.scan_ids.partition("-")
        try:
            scan_ids = (int(low), int(high or low))
        except ValueError:
            raise XanesStreamError(f"--scan-ids {args.scan_ids!r}: use N or N-M") from None
    uids = find_runs(
        source,
        uids=args.uids,
        scan_ids=scan_ids,
        sample=args.sample,
        plan_name=args.plan,
        since=args.since,
        until=args.until,
    )
    if not uids:
        raise XanesStreamError(f"no raw runs match in the Tiled at {source.uri}")
    profile = load_profile(args.profile)
    settings = load_settings(args.settings) if args.settings else None
    bars = ProgressBars()
    started = time.monotonic()
    try:
        records = replay(
            client,
            uids,
            source=source,
            profile=profile,
            settings=settings,
            root=args.root,
            results_dir=args.results_dir,
            allowed_roots=args.allowed_root,
            progress=lambda done, total: bars("runs", done, total),
            force=args.force,
            dask=args.dask,
        )
    finally:
        bars.close()
    return _print_records(records, time.monotonic() - started)


def _source_client(args: argparse.Namespace):
    """The Tiled container at ``--source``: its own key (``--source-api-key``, else
    ``XANES_SOURCE_API_KEY``), else anonymous; only ever read."""
    from xanes_stream.store.client import SOURCE_API_KEY_ENV
    from xanes_stream.store.client import tiled_client as client_of

    try:
        return client_of(args.source, args.source_api_key, key_env=SOURCE_API_KEY_ENV)
    except Exception as exc:
        from xanes_stream.store.refusals import server_words

        raise XanesStreamError(
            f"cannot read the source Tiled at {args.source}: {server_words(exc)}"
        ) from None


def _print_records(records, seconds: float) -> int:
    """One line per run, the failures again, the summary; the exit status."""
    from xanes_stream.live.replay import ALREADY_DONE, NOT_ENERGY_SCAN

    failed = []
    for record in records:
        label = f"{record.uid[:8]}  scan {record.scan_id}"
        if record.status == "done":
            print(f"{label}  {record.uri}")
        elif record.status == "skipped":
            print(f"{label}  skipped: {record.reason}")
        else:
            reason = record.reason or record.status
            if record.status == "spooled":
                reason = "the destination could not be reached: the maps are spooled"
            failed.append((record, reason))
            print(f"{label}  failed: {reason}")
    done = sum(r.status == "done" for r in records)
    already = sum(r.status == "skipped" and r.reason == ALREADY_DONE for r in records)
    others = sum(r.status == "skipped" and r.reason == NOT_ENERGY_SCAN for r in records)
    if failed:
        print(f"failed ({len(failed)}):")
        for record, reason in failed:
            print(f"  scan {record.scan_id}  {record.uid}  {reason}")
    analysed = done + len(failed)
    per_run = f"{seconds / analysed:.1f} s per run" if analysed else "no run analysed"
    print(
        f"replayed {done}, skipped (already done) {already}, not energy scans {others}, "
        f"failed {len(failed)} in {seconds:.0f} s ({per_run})"
    )
    return 1 if failed else 0


def _replay_file(args: argparse.Namespace, client) -> int:
    from xanes_stream.live.replay import replay_file
    from xanes_stream.pipeline.settings import load_settings
    from xanes_stream.profiles import load_profile

    bars = ProgressBars()
    started = time.monotonic()
    try:
        records = replay_file(
            client,
            args.file,
            profile=load_profile(args.profile),
            settings=load_settings(args.settings) if args.settings else None,
            root=args.root,
            results_dir=args.results_dir,
            allowed_roots=args.allowed_root,
            progress=lambda done, total: bars("runs", done, total),
            dask=args.dask,
        )
    finally:
        bars.close()
    if not records:
        raise XanesStreamError(f"no runs in {args.file}")
    return _print_records(records, time.monotonic() - started)


def add_commands(sub) -> None:
    """Register ``replay``."""
    p = sub.add_parser("replay", help="re-analyse archived raw runs from Tiled")
    p.add_argument("uids", nargs="*", help="raw run uids (or use the filters)")
    p.add_argument(
        "--file", help="replay the runs in a documents file instead (.jsonl or .msgpack)"
    )
    p.add_argument(
        "--source",
        help="Tiled container of the raw runs, only read (e.g. "
        "http://host:8000/api/v1/metadata/fxi/raw); default: --tiled-uri",
    )
    p.add_argument(
        "--source-api-key",
        help="the source's API key (better: XANES_SOURCE_API_KEY); none: anonymous",
    )
    p.add_argument("--scan-ids", help="N or N-M, inclusive")
    p.add_argument("--sample")
    p.add_argument("--plan", help="plan name")
    p.add_argument("--since", help="date/time of the start document (2024, 2024-07-04 05:00)")
    p.add_argument("--until", help="date/time of the start document")
    p.add_argument("--profile", default="sim")
    p.add_argument("--settings", help="YAML of analysis settings to use instead")
    p.add_argument(
        "--root",
        default="xanes",
        help="Tiled container for the maps: a key, or a path such as fxi/xanes",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replay runs already replayed with the same settings and version too",
    )
    results_dir_option(p)
    dask_option(p)
    p.add_argument(
        "--allowed-root",
        action="append",
        default=[],
        help="folder detector files may be read from (repeat)",
    )
    p.add_argument(
        "--tiled-uri",
        default="http://127.0.0.1:8000",
        help="the destination: references and maps (key: XANES_TILED_API_KEY)",
    )
    p.set_defaults(func=cmd_replay)
