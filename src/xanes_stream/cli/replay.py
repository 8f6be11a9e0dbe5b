"""``xanes-stream replay``: archived raw runs (Tiled, or a documents file) through the live path."""

from __future__ import annotations

import argparse

from xanes_stream.cli.common import ProgressBars, results_dir_option, tiled_client
from xanes_stream.errors import XanesStreamError


def cmd_replay(args: argparse.Namespace) -> int:
    from xanes_stream.live.replay import find_runs, replay
    from xanes_stream.pipeline.settings import load_settings
    from xanes_stream.profiles import load_profile

    client = tiled_client(args)
    if args.file:
        return _replay_file(args, client)
    scan_ids = None
    if args.scan_ids:
        low, _, high = args.scan_ids.partition("-")
        try:
            scan_ids = (int(low), int(high or low))
        except ValueError:
            raise XanesStreamError(f"--scan-ids {args.scan_ids!r}: use N or N-M") from None
    uids = find_runs(
        client,
        uids=args.uids,
        scan_ids=scan_ids,
        sample=args.sample,
        plan_name=args.plan,
        since=args.since,
        until=args.until,
    )
    if not uids:
        raise XanesStreamError("no raw runs match")
    profile = load_profile(args.profile)
    settings = load_settings(args.settings) if args.settings else None
    bars = ProgressBars()
    try:
        records = replay(
            client,
            uids,
            profile=profile,
            settings=settings,
            root=args.root,
            results_dir=args.results_dir,
            allowed_roots=args.allowed_root,
            progress=lambda done, total: bars("replay", done, total),
        )
    finally:
        bars.close()
    return _print_records(records)


def _print_records(records) -> int:
    for record in records:
        outcome = record.uri if record.status == "done" else f"{record.status}: {record.reason}"
        print(f"{record.uid[:8]}  scan {record.scan_id}  {outcome}")
    return 0 if all(r.status == "done" for r in records) else 1


def _replay_file(args: argparse.Namespace, client) -> int:
    from xanes_stream.live.replay import replay_file
    from xanes_stream.pipeline.settings import load_settings
    from xanes_stream.profiles import load_profile

    bars = ProgressBars()
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
        )
    finally:
        bars.close()
    if not records:
        raise XanesStreamError(f"no runs in {args.file}")
    return _print_records(records)


def add_commands(sub) -> None:
    """Register ``replay``."""
    p = sub.add_parser("replay", help="re-analyse archived raw runs from Tiled")
    p.add_argument("uids", nargs="*", help="raw run uids (or use the filters)")
    p.add_argument(
        "--file", help="replay the runs in a documents file instead (.jsonl or .msgpack)"
    )
    p.add_argument("--scan-ids", help="N or N-M, inclusive")
    p.add_argument("--sample")
    p.add_argument("--plan", help="plan name")
    p.add_argument("--since", help="ISO date/time of the start document")
    p.add_argument("--until", help="ISO date/time of the start document")
    p.add_argument("--profile", default="sim")
    p.add_argument("--settings", help="YAML of analysis settings to use instead")
    p.add_argument("--root", default="xanes", help="Tiled container for the maps")
    results_dir_option(p)
    p.add_argument(
        "--allowed-root",
        action="append",
        default=[],
        help="folder detector files may be read from (repeat)",
    )
    p.add_argument("--tiled-uri", default="http://127.0.0.1:8000")
    p.set_defaults(func=cmd_replay)
