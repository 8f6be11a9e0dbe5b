"""``xanes-stream demo``: the main job end to end on embedded defaults."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_demo(args: argparse.Namespace) -> int:
    """Tiled, the 0MQ proxy and the service on this machine; a simulated in-operando series."""
    from xanes_stream.devtools.demo import run_demo

    return run_demo(
        Path(args.output),
        n_scans=args.scans,
        size=args.size,
        keep=args.keep,
        detector=args.detector,
        web_port=None if args.no_web else args.web_port,
        postgres=args.postgres,
    )


def add_commands(sub) -> None:
    """Register ``demo``."""
    p = sub.add_parser("demo", help="run the main job end to end on embedded defaults")
    p.add_argument("--output", default="demo-output", help="folder for what the demo writes")
    p.add_argument("--scans", type=int, default=4, help="scans in the in-operando series")
    p.add_argument("--size", type=int, default=128, help="frame size in pixels")
    p.add_argument("--detector", default="hdf5", choices=["hdf5", "inline"])
    p.add_argument("--keep", action="store_true", help="keep serving until Ctrl-C")
    p.add_argument("--web-port", type=int, default=0, help="port of the live page (0: any)")
    p.add_argument("--no-web", action="store_true", help="no live page")
    p.add_argument(
        "--postgres",
        action="store_true",
        help="Tiled on PostgreSQL with a Redis streaming cache, as a facility runs it "
        "(needs Debian's postgresql and redis-server: scripts/ensure-servers.sh)",
    )
    p.set_defaults(func=cmd_demo)
