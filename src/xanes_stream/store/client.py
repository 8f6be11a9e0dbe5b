"""The one place a Tiled client is made: a URI and the API key (given, or from the environment)."""

from __future__ import annotations

import os
from typing import Any

from xanes_stream.errors import XanesStreamError

__all__ = ["API_KEY_ENV", "SOURCE_API_KEY_ENV", "tiled_client"]

#: Environment variable holding the Tiled server's single-user API key.
API_KEY_ENV = "XANES_TILED_API_KEY"
#: Environment variable holding the API key of a separate source of raw runs (an archive).
SOURCE_API_KEY_ENV = "XANES_SOURCE_API_KEY"


def tiled_client(
    uri: str,
    api_key: str | None = None,
    *,
    require_key: bool = False,
    key_env: str = API_KEY_ENV,
    **kwargs: Any,
):
    """A Tiled client of the server at ``uri``.

    Parameters
    ----------
    uri : str
        The server, e.g. ``http://127.0.0.1:8000``.
    api_key : str, optional
        The API key; None (or empty) reads it from ``key_env``, and without that the client
        is anonymous.
    require_key : bool
        Refuse, with a message saying what to set, when there is no key at all.
    key_env : str
        The environment variable of the key (``XANES_TILED_API_KEY``; a source of raw runs
        has its own, ``XANES_SOURCE_API_KEY``).
    **kwargs
        Further arguments of :func:`tiled.client.from_uri`.

    Returns
    -------
    tiled.client.container.Container
        The root of the server. Errors reaching it propagate as they are (a caller that retries
        tells an outage from a refusal with :func:`~xanes_stream.store.spool.is_outage`).

    Raises
    ------
    XanesStreamError
        With ``require_key``, when no key is given nor set in the environment.
    """
    key = api_key or os.environ.get(key_env) or None
    if require_key and key is None:
        raise XanesStreamError(f"set {key_env} to the Tiled server's API key")
    from tiled.client import from_uri

    return from_uri(uri, api_key=key, **kwargs)
