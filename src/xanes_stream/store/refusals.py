"""What a Tiled server said when it refused a request, in words a person can act on.

A destination that refuses to write (a read-only server, a key without write scopes, a tree
that cannot hold new nodes) is not an outage: retrying or spooling would only hide it. These
helpers put the server's own answer in the message, and probe once whether a container takes
writes at all.
"""

from __future__ import annotations

import secrets

from xanes_stream.errors import XanesStreamError

__all__ = ["WriteRefused", "check_writable", "refusal", "server_words"]


class WriteRefused(XanesStreamError):
    """A Tiled server refused to write (not an outage: it answered, and said no)."""


def server_words(exc: BaseException) -> str:
    """``"<status> <phrase>: <the server's detail>"`` for an HTTP error, else the error itself."""
    response = getattr(exc, "response", None)
    code = getattr(response, "status_code", None)
    if code is None:
        return f"{type(exc).__name__}: {exc}"
    phrase = getattr(response, "reason_phrase", "") or ""
    detail = None
    try:
        body = response.json()
        detail = body.get("detail") if isinstance(body, dict) else None
    except Exception:  # not JSON, or the body is gone: the error's own text says it
        detail = None
    if not detail:
        detail = str(exc).split("\n", 1)[0]
        prefix = f"{code}: "
        detail = detail[len(prefix) :] if detail.startswith(prefix) else detail
    return f"{code} {phrase}: {detail}".replace(" :", ":")


def refusal(exc: BaseException, uri: str) -> XanesStreamError:
    """The error to raise for ``exc`` from a write to the Tiled at ``uri``: unreachable (no
    answer at all) or :class:`WriteRefused` with the server's words (any answer)."""
    if getattr(exc, "response", None) is None and isinstance(exc, OSError | _transport()):
        return XanesStreamError(f"cannot reach the Tiled at {uri}: {type(exc).__name__}: {exc}")
    return WriteRefused(f"the Tiled at {uri} refused to write maps: {server_words(exc)}")


def _transport() -> type:
    import httpx

    return httpx.TransportError


def check_writable(container, uri: str) -> None:
    """Create and delete a scratch container in ``container``; raise :class:`WriteRefused`
    with the server's words (``uri`` names it) if it cannot.

    Whatever the answer (a 401/403/405, or a 500 from a tree that is read-only), a refusal of
    this one small write means the destination cannot take maps: say so before any analysis.
    """
    key = f"_xanes_write_probe_{secrets.token_hex(4)}"
    try:
        node = container.create_container(key, metadata={"about": "xanes-stream write probe"})
    except Exception as exc:
        raise refusal(exc, uri) from None
    try:
        node.delete(recursive=True, external_only=False)
    except Exception as exc:
        raise WriteRefused(
            f"the Tiled at {uri} took a write but refused to delete it again ({key}), so it "
            f"cannot replace maps: {server_words(exc)}"
        ) from None
