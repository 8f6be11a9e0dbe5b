"""What every response of the live page carries, and which requests it answers at all.

- The ``Host`` header must name the page as configured (``web_allowed_hosts``, by default the
  address it listens on, ``localhost``, ``127.0.0.1`` and ``::1``) with its port: a page
  reached under any other name (a DNS-rebinding site in a scientist's browser) gets 400.
- A Content-Security-Policy that runs only the page's own script files (no inline script, no
  inline event handlers, no ``eval``), loads only its own styles, images and data, and lets no
  other site frame it; with ``nosniff`` and no referrer.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SECURITY_HEADERS", "HostNames", "PageGuard"]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_LOCAL = ("localhost", "127.0.0.1", "::1")
_ANY = ("", "0.0.0.0", "::")


def _bare(name: str) -> str:
    return name.strip().lower().removeprefix("[").removesuffix("]")


class HostNames:
    """The names (and the port, once bound) under which the page answers.

    Parameters
    ----------
    bind : str
        The address the server listens on (one of them by default; for a wildcard address,
        this machine's host name instead).
    names : iterable of str, optional
        The names to answer to (``web_allowed_hosts``); None or empty: the defaults above.
    """

    def __init__(self, bind: str, names: Iterable[str] | None = None) -> None:
        names = list(names or ())
        if not names:
            names = [*_LOCAL, socket.gethostname() if bind in _ANY else bind]
        self.names = frozenset(_bare(n) for n in names if n.strip())
        self.port: int | None = None  # set once the server is bound

    def allows(self, host: str) -> bool:
        """Whether a request with ``Host: host`` is for this page."""
        parts = _split(host)
        if parts is None or parts[0] not in self.names:
            return False
        port = parts[1]
        return self.port is None or port == self.port or (port is None and self.port == 80)


def _split(host: str) -> tuple[str, int | None] | None:
    """``host`` (a Host header) as (name, port or None); None if it is not a host at all."""
    host = host.strip().lower()
    if host.startswith("["):  # [IPv6]:port
        name, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] if rest else None
    elif host.count(":") == 1:
        name, _, port = host.partition(":")
    elif ":" in host:
        return None
    else:
        name, port = host, None
    if port is None:
        return name, None
    return (name, int(port)) if port.isdigit() else None


class PageGuard:
    """ASGI middleware: 400 for a request whose Host is not one of ``hosts``; the security
    headers on every response."""

    def __init__(self, app: ASGIApp, hosts: HostNames) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self.hosts.allows(Headers(scope=scope).get("host", "")):
            refusal = PlainTextResponse(
                "this live page answers only to the host names it is configured with "
                "(web_allowed_hosts); open it under one of those",
                status_code=400,
                headers=SECURITY_HEADERS,
            )
            await refusal(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    headers[key] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
