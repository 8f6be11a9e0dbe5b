"""Identifiers from documents, checked before they name anything: a Tiled key, a file, a folder.

A document's strings are untrusted. Those that become keys or file names are held to a small
alphabet, so that none can be a path (no ``/``, no ``\\``, no ``..``, no leading dot), a quote
or a control character:

- a **uid** (a run's ``uid``, a stop's ``run_start``): ``[A-Za-z0-9][A-Za-z0-9_-]{0,127}``,
  which every uuid4 event-model writes matches (no dots: a spool file name is
  ``<sequence>-<uid>.<kind>``, read back by splitting at the first dot);
- a **name** (a reference, a series): ``[A-Za-z0-9][A-Za-z0-9._+-]{0,127}`` without ``..``.

:func:`inside` checks the final, resolved path of a file made from one under its folder, in
case a symbolic link in the folder points elsewhere.
"""

from __future__ import annotations

import re
from pathlib import Path

from xanes_stream.documents.codec import DocumentError

__all__ = ["UnsafeIdentifier", "check_name", "check_uid", "inside", "is_uid"]

_UID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


class UnsafeIdentifier(DocumentError):
    """A uid or name from a document that could not safely be a key or a file name."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def is_uid(value: object) -> bool:
    """Whether ``value`` is a uid that may be a Tiled key and a file name."""
    return isinstance(value, str) and _UID.fullmatch(value) is not None


def check_uid(value: object, what: str = "uid") -> str:
    """``value`` if it is a safe uid, else :class:`UnsafeIdentifier` saying why."""
    if not is_uid(value):
        raise UnsafeIdentifier(
            f"{what} {_shown(value)} is not a run uid (letters, digits, '-' and '_', at most "
            "128, as event-model writes them): refused, it would name a key or a file"
        )
    return value


def check_name(value: object, what: str = "name") -> str:
    """``value`` if it is a safe reference or series name, else :class:`UnsafeIdentifier`."""
    if not (isinstance(value, str) and _NAME.fullmatch(value) and ".." not in value):
        raise UnsafeIdentifier(
            f"{what} {_shown(value)} is not a valid name (letters, digits, '.', '_', '+' and "
            "'-', at most 128, starting with a letter or digit, no '..')"
        )
    return value


def inside(folder: str | Path, *parts: str) -> Path:
    """``folder / parts...``, once it is checked that its resolved path stays in ``folder``.

    Raises
    ------
    UnsafeIdentifier
        The path would leave ``folder`` (through a part or a symbolic link).
    """
    base = Path(folder).resolve()
    path = base.joinpath(*parts)
    if not path.resolve().is_relative_to(base):
        raise UnsafeIdentifier(f"{path} would lie outside {base}: refused")
    return path
