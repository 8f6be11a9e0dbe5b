"""The text of an SDF ``.hdr`` file (ALS, CLS, SLS, Soleil STXMs) as nested Python values.

An SDF header is a list of ``Name = value;`` assignments. A value is a quoted string, a number,
``true``/``false``, a group ``{ Name = value; ... }`` (a dict) or a list ``(n, v1, v2, ...)``
whose first item is the count of the items that follow (a list). This parser reads exactly
that grammar with a small tokenizer and a recursive descent: nothing in the file is evaluated,
a count that does not match its items, an unclosed group or a stray token is an error that says
where it is.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from xanes_stream.errors import StackFileError

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"[^"]*")
      | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
      | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
      | (?P<punct>[{}()=;,])
    )""",
    re.VERBOSE,
)

#: The largest header read (real ones are tens of kB; a stack of 2000 energies some 100 kB).
MAX_BYTES = 16 * 1024 * 1024


def read_sdf_header(path: str | Path) -> dict[str, Any]:
    """The assignments of an SDF ``.hdr`` file.

    Parameters
    ----------
    path : str or Path
        The ``.hdr`` file.

    Returns
    -------
    dict
        Name -> value: str, float, bool, dict (a group) or list (a ``(n, ...)`` list).

    Raises
    ------
    StackFileError
        When the file is not readable text or not in the SDF header grammar.
    """
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise StackFileError(f"{path}: {path.stat().st_size} bytes is too big for a header")
        text = path.read_text(encoding="latin-1")
    except OSError as exc:
        raise StackFileError(f"{path}: cannot read the SDF header: {exc.strerror}") from None
    try:
        return parse_sdf_header(text)
    except _SyntaxError as exc:
        raise StackFileError(f"{path}: not an SDF header ({exc})") from None


class _SyntaxError(Exception):
    pass


def parse_sdf_header(text: str) -> dict[str, Any]:
    """The assignments of SDF header text (see :func:`read_sdf_header`)."""
    parser = _Parser(_tokens(text))
    out = parser.assignments(until=None)
    return out


def _tokens(text: str) -> list[tuple[str, str, int]]:
    tokens = []
    pos, end = 0, len(text.rstrip())
    while pos < end:
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            line = text.count("\n", 0, pos) + 1
            raise _SyntaxError(f"unexpected text {text[pos : pos + 20].strip()!r} on line {line}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind), text.count("\n", 0, match.start(kind)) + 1))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str, int]]):
        self.tokens = tokens
        self.i = 0

    def _peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _take(self, text: str | None = None, kind: str | None = None) -> tuple[str, str, int]:
        token = self._peek()
        if token is None:
            raise _SyntaxError(f"the file ends where {text or kind} was expected")
        if (text is not None and token[1] != text) or (kind is not None and token[0] != kind):
            raise _SyntaxError(f"{token[1]!r} on line {token[2]} where {text or kind} was expected")
        self.i += 1
        return token

    def assignments(self, until: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while True:
            token = self._peek()
            if token is None:
                if until is not None:
                    raise _SyntaxError(f"the file ends inside a group (no {until!r})")
                return out
            if token[1] == until:
                self.i += 1
                return out
            if token[1] == ";":  # empty statement, as after '}' in "};"
                self.i += 1
                continue
            name = self._take(kind="name")[1]
            self._take("=")
            out[name] = self.value()
            nxt = self._peek()
            if nxt is not None and nxt[1] not in (";", until):
                raise _SyntaxError(f"{nxt[1]!r} on line {nxt[2]} after {name} (no ';')")

    def value(self) -> Any:
        kind, text, line = self._take()
        if kind == "string":
            return text[1:-1]
        if kind == "number":
            return float(text)
        if kind == "name" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if text == "{":
            return self.assignments(until="}")
        if text == "(":
            return self.items(line)
        raise _SyntaxError(f"{text!r} on line {line} is not a value")

    def items(self, line: int) -> list[Any]:
        count = self.value()
        if not isinstance(count, float) or count != int(count) or count < 0:
            raise _SyntaxError(f"the list on line {line} does not start with its count")
        items = []
        while True:
            _, text, _ = self._take()
            if text == ")":
                break
            if text != ",":
                raise _SyntaxError(f"{text!r} in the list on line {line} (no ',')")
            items.append(self.value())
        if len(items) != int(count):
            raise _SyntaxError(
                f"the list on line {line} says {int(count)} items but has {len(items)}"
            )
        return items
