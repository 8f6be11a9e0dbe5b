"""Command line: ``xanes-stream COMMAND`` (analyze, example-stack, export, serve, status, replay,
...).

One module per command group; each registers its commands with ``add_commands``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from xanes_stream.cli import analyze, demo, export, ml, references, replay, serve, tomography
from xanes_stream.errors import XanesStreamError

__all__ = ["build_parser", "main"]

DESCRIPTION = (
    "Chemical maps of 2D-XANES energy scans: from stack files, or live from Bluesky into Tiled."
)

#: The command groups, in the order ``--help`` lists them.
GROUPS = (analyze, tomography, export, serve, replay, ml, references, demo)


def build_parser() -> argparse.ArgumentParser:
    """The ``xanes-stream`` argument parser, every command group registered."""
    parser = argparse.ArgumentParser(prog="xanes-stream", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not args.verbose:  # one line per HTTP request drowns what a person needs to read
        for chatty in ("httpx", "httpcore", "bluesky"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        return args.func(args)
    except XanesStreamError as exc:
        print(f"xanes-stream: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xanes-stream: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
