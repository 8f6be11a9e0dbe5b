"""``xanes-stream references``: the reference library kept in Tiled."""

from __future__ import annotations

import argparse
from pathlib import Path

from xanes_stream.cli.common import tiled_client
from xanes_stream.errors import XanesStreamError


def library_name(path: Path, given: str | None = None) -> tuple[str, str, list[str]]:
    """The library name of the reference in ``path``: ``given``, else the first name the file
    gives itself (its header's sample name, else its file name) that is a valid name.

    Parameters
    ----------
    path : Path
        The spectrum's file.
    given : str, optional
        The name from ``--name``.

    Returns
    -------
    tuple of (str, str, list of str)
        The name, where it came from (``--name``, ``header Sample.name``, ``file name``, ...)
        and the header names passed over as invalid (``origin 'value'``).

    Raises
    ------
    XanesStreamError
        ``given`` is not a valid name, or no name the file gives is.
    """
    from xanes_stream.documents.identifiers import UnsafeIdentifier, check_name
    from xanes_stream.io.references import name_candidates

    if given is not None:
        return check_name(given, "--name"), "--name", []
    passed_over = []
    for name, origin in name_candidates(path):
        try:
            return check_name(name), origin, passed_over
        except UnsafeIdentifier:
            passed_over.append(f"{origin} {name!r}")
    raise XanesStreamError(
        f"{path}: no usable name ({'; '.join(passed_over)} are not valid names: letters, "
        "digits, '.', '_', '+' and '-'): give one with --name"
    )


def named_references(
    files: list[str], given: str | None = None, units: str | None = None
) -> list[tuple]:
    """The references in ``files``, each named by :func:`library_name`, read before anything is
    written (energies in ``units``; None: as each file states or its values tell):
    ``[(reference, origin, passed_over), ...]``.

    Raises
    ------
    XanesStreamError
        No file, ``--name`` with several files, two files giving the same name (both named),
        or a file that cannot be read as a spectrum.
    """
    if given is not None and len(files) != 1:
        raise XanesStreamError(
            f"--name names one file, but {len(files)} were given: add them one at a time to name "
            "each, or leave --name out to use the names the files give"
        )
    if not files:
        raise XanesStreamError("references add needs at least one file")
    from xanes_stream.io.references import read_reference

    chosen: dict[str, tuple[Path, str, list[str]]] = {}
    for text in files:
        path = Path(text)
        name, origin, passed_over = library_name(path, given)
        if name in chosen:
            raise XanesStreamError(
                f"{chosen[name][0]} and {path} both name their reference {name!r} "
                f"({chosen[name][1]}; {origin}): add them one at a time with --name"
            )
        chosen[name] = (path, origin, passed_over)
    return [
        (read_reference(path, name, units=units or "auto"), *rest)
        for name, (path, *rest) in chosen.items()
    ]


def _add(store, references: list[tuple]) -> None:
    for reference, origin, passed_over in references:
        uri = store.add_reference(reference)
        kind = "normalized" if reference.normalized else "raw"
        skipped = f"; not {', '.join(passed_over)}" if passed_over else ""
        print(
            f"added {reference.name} from {Path(reference.source).name} ({origin}{skipped}): "
            f"{kind}, {reference.energy.size} points, "
            f"{reference.energy[0]:.0f}-{reference.energy[-1]:.0f} eV, {uri}"
        )


def cmd_references(args: argparse.Namespace) -> int:
    from xanes_stream.store.tiled_store import TiledResultStore

    if args.action == "add":
        references = named_references(args.files, args.name, args.units)
        _add(TiledResultStore(tiled_client(args)), references)
        return 0
    if args.name or args.files:
        raise XanesStreamError("references list takes no files and no --name")
    store = TiledResultStore(tiled_client(args))
    library = store.client[store.references_root] if store.references_root in store.client else {}
    for name in library:
        md = library[name].metadata
        print(f"{name}: {'normalized' if md.get('normalized') else 'raw'}, {md.get('source')}")
    return 0


def add_commands(sub) -> None:
    """Register ``references add | list``."""
    p = sub.add_parser(
        "references",
        help="the reference library in Tiled (/references)",
        description="add: each file's entry is named by its header's sample name (XDI "
        "Sample.name, Sample.formula, a '# name:' or '# sample:' line, Athena's 'Saving NAME "
        "as'), else by its file name without ref_/norm_/nor_/std_ or _ref/_norm/...",
    )
    p.add_argument("action", choices=["add", "list"])
    p.add_argument("files", nargs="*", help="spectra to add (XDI or two-column text)")
    p.add_argument(
        "--name", help="library name of the one file given (default: the name the file gives)"
    )
    p.add_argument(
        "--units",
        choices=["eV", "keV"],
        help="the unit of the files' energies (default: what each header states, XDI "
        "'# Column.1: energy eV'; else told by the values, an error for 20-200)",
    )
    p.add_argument("--tiled-uri", default="http://127.0.0.1:8000")
    p.set_defaults(func=cmd_references)
