"""Bluesky documents kept in files, for data from another facility: JSON lines or msgpack.

JSON lines: one ``[name, doc]`` (or ``{"name": ..., "doc": ...}``) per line, arrays as nested
lists. msgpack: a stream of ``[name, doc]`` pairs packed with :func:`codec.packb` (arrays as
typed binary). Nothing is unpickled.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgpack
import numpy as np

from xanes_stream.documents import codec
from xanes_stream.documents.codec import DocumentError

_MSGPACK_SUFFIXES = (".msgpack", ".mpk", ".msgp")


def _pair(item, where: str) -> tuple[str, dict]:
    if isinstance(item, dict) and set(item) >= {"name", "doc"}:
        item = [item["name"], item["doc"]]
    if (
        not isinstance(item, list | tuple)
        or len(item) != 2
        or not isinstance(item[0], str)
        or not isinstance(item[1], dict)
    ):
        raise DocumentError(f"{where}: expected [name, document]")
    return item[0], item[1]


def read_documents(path: str | Path) -> Iterator[tuple[str, dict]]:
    """The ``(name, doc)`` pairs of a documents file, in order; a malformed entry raises
    :class:`DocumentError` naming where it is."""
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise DocumentError(f"cannot read documents from {path}: {exc}") from None
    with handle:
        if path.suffix.lower() in _MSGPACK_SUFFIXES:
            unpacker = msgpack.Unpacker(
                handle,
                raw=False,
                ext_hook=codec._ext_hook,
                strict_map_key=True,
                max_buffer_size=codec.MAX_MESSAGE_BYTES,
            )
            try:
                for number, item in enumerate(unpacker, 1):
                    yield _pair(item, f"{path} entry {number}")
            except (ValueError, msgpack.ExtraData, msgpack.FormatError) as exc:
                raise DocumentError(f"{path}: malformed msgpack: {exc}") from None
            return
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError as exc:
                raise DocumentError(f"{path} line {number}: not JSON: {exc}") from None
            yield _pair(item, f"{path} line {number}")


def write_documents(path: str | Path, documents: Iterable[tuple[str, dict]]) -> Path:
    """Write ``(name, doc)`` pairs in the format the suffix says (.jsonl or .msgpack)."""
    path = Path(path)
    with path.open("wb") as handle:
        for name, doc in documents:
            if path.suffix.lower() in _MSGPACK_SUFFIXES:
                handle.write(codec.packb([name, doc]))
            else:
                handle.write(json.dumps([name, doc], default=_jsonable).encode() + b"\n")
    return path


def _jsonable(value):
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-able")
