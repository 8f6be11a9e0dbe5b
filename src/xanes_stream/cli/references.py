"""``xanes-stream references``: the reference library kept in Tiled."""

from __future__ import annotations

import argparse

from xanes_stream.cli.common import tiled_client
from xanes_stream.errors import XanesStreamError


def cmd_references(args: argparse.Namespace) -> int:
    from xanes_stream.store.tiled_store import TiledResultStore

    store = TiledResultStore(tiled_client(args))
    if args.action == "add":
        if args.name and len(args.files) != 1:
            raise XanesStreamError("--name goes with exactly one file")
        from xanes_stream.io.references import read_reference

        for path in args.files:
            reference = read_reference(path, args.name)
            uri = store.add_reference(reference)
            kind = "normalized" if reference.normalized else "raw"
            print(
                f"added {reference.name} ({kind}, {reference.energy.size} points, "
                f"{reference.energy[0]:.0f}-{reference.energy[-1]:.0f} eV): {uri}"
            )
    else:
        library = (
            store.client[store.references_root] if store.references_root in store.client else {}
        )
        for name in library:
            md = library[name].metadata
            print(f"{name}: {'normalized' if md.get('normalized') else 'raw'}, {md.get('source')}")
    return 0


def add_commands(sub) -> None:
    """Register ``references add | list``."""
    p = sub.add_parser("references", help="the reference library in Tiled (/references)")
    p.add_argument("action", choices=["add", "list"])
    p.add_argument("files", nargs="*", help="spectra to add (XDI or two-column text)")
    p.add_argument("--name", help="library name (default: the file's stem)")
    p.add_argument("--tiled-uri", default="http://127.0.0.1:8000")
    p.set_defaults(func=cmd_references)
