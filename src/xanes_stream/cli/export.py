"""``xanes-stream export``: a scan's maps or mean spectrum in the formats other programs open.

SOURCE is a maps file written by ``analyze`` or a raw run's uid whose maps are in Tiled
(``/<root>/<uid>``). Maps go to a TIFF stack (Fiji/ImageJ) or a PNG/SVG figure; the mean
spectrum in the mask with its fit to CSV, XDI or an Athena project (:mod:`xanes_stream.io.exports`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from xanes_stream.errors import XanesStreamError

FORMATS = ("tiff", "png", "svg", "csv", "xdi", "prj")
_SUFFIX = {"tiff": ".tif"}


def _read_tiled(args: argparse.Namespace, uid: str):
    """The maps of raw run ``uid`` under ``--root`` of the Tiled at ``--tiled-uri``."""
    from xanes_stream.store.client import tiled_client
    from xanes_stream.store.roots import find_root
    from xanes_stream.store.tiled_store import TiledResultStore

    try:
        client = tiled_client(args.tiled_uri, args.api_key)
        store = TiledResultStore(client, root=args.root)
        root = find_root(client, args.root)
    except XanesStreamError:
        raise
    except Exception as exc:
        raise XanesStreamError(
            f"{uid!r} is no maps file here, and as a scan uid it cannot be looked up: the "
            f"Tiled at {args.tiled_uri} does not answer ({exc})"
        ) from None
    if root is None or uid not in root:
        raise XanesStreamError(
            f"{uid!r} is neither a maps file nor a scan with maps under /{args.root} of "
            f"{args.tiled_uri}"
        )
    metadata = root[uid].metadata or {}
    if metadata.get("status") == "failed":
        reason = metadata.get("reason", "no reason recorded")
        raise XanesStreamError(f"scan {uid} has no maps: its analysis failed ({reason})")
    return store.read_maps(uid)


def read_source(args: argparse.Namespace):
    """The :class:`~xanes_stream.pipeline.results.Maps` that ``args.source`` names, and a name
    for the files written from it."""
    path = Path(args.source)
    if path.is_file():
        from xanes_stream.io.maps_file import read_maps

        return read_maps(path), path.with_suffix("")
    if path.suffix.lower() in (".h5", ".hdf5") or os.sep in args.source:
        raise XanesStreamError(f"there is no maps file {args.source}")
    from xanes_stream.documents.identifiers import check_uid

    uid = check_uid(args.source)  # a Tiled key, never a path
    return _read_tiled(args, uid), Path(uid)


def cmd_export(args: argparse.Namespace) -> int:
    from xanes_stream.io.exports import MAP_FORMATS, export_maps, export_mean_spectrum

    maps, stem = read_source(args)
    out = (
        Path(args.out)
        if args.out
        else Path(f"{stem.name}{_SUFFIX.get(args.format, '.' + args.format)}")
    )
    names = [n.strip() for n in ",".join(args.maps).split(",") if n.strip()] or None
    if args.format in MAP_FORMATS:
        export_maps(
            out, maps, args.format, names=names, pixel_size=args.pixel_size, title=stem.name
        )
        print(f"maps written to {out}")
        return 0
    if names:
        raise XanesStreamError(f"--maps chooses maps for tiff, png or svg, not {args.format}")
    export_mean_spectrum(out, maps, args.format)
    print(f"mean spectrum in the mask written to {out}")
    return 0


def add_commands(sub) -> None:
    """Register ``export``."""
    p = sub.add_parser(
        "export",
        help="a scan's maps as TIFF/PNG/SVG, or its mean spectrum as CSV/XDI/Athena",
        description="tiff: a page per map, labelled, that Fiji/ImageJ opens as a stack; png, "
        "svg: a panel per map with its colour bar; csv, xdi, prj (Athena project): the mean "
        "spectrum in the mask with its fit and residual",
    )
    p.add_argument("source", help="a maps file (analyze --out) or a raw run uid in Tiled")
    p.add_argument("--format", "-f", required=True, choices=FORMATS)
    p.add_argument(
        "-o", "--out", help="the file to write (default: SOURCE's name with the format's suffix)"
    )
    p.add_argument(
        "--maps",
        action="append",
        default=[],
        help="maps to export, comma-separated, in order: reference names (their fraction "
        "maps), thickness, error, r_factor, chi2_red, edge_energy, peak_energy, mask, "
        "clusters (default: all)",
    )
    p.add_argument(
        "--pixel-size",
        type=float,
        help="µm per pixel, written into the TIFF (default: none recorded with the maps)",
    )
    p.add_argument("--tiled-uri", default="http://127.0.0.1:8000")
    p.add_argument(
        "--api-key",
        help="the Tiled server's API key (better: XANES_TILED_API_KEY); none: anonymous",
    )
    p.add_argument(
        "--root", default="xanes", help="Tiled container of the maps: a key or a path (fxi/xanes)"
    )
    p.set_defaults(func=cmd_export)
