"""Where maps go in Tiled: a results root, ``xanes`` or a path such as ``fxi/xanes``.

Several beamlines write into one Tiled, each under its own root (``/<beamline>/xanes/<uid>``).
A root comes from the operator's settings, never from a document; still, each ``/``-separated
segment is held to the alphabet of :func:`~xanes_stream.documents.identifiers.check_name`
(letters, digits, ``.``, ``_``, ``+``, ``-``; no ``..``), so a root can neither climb out of
the tree nor name an odd key: ``a//b``, ``/a``, ``a/``, ``../x`` and ``a b`` are refused.
"""

from __future__ import annotations

from xanes_stream.documents.identifiers import UnsafeIdentifier, check_name

__all__ = ["ensure_root", "find_root", "root_keys"]


def root_keys(root: object) -> list[str]:
    """The keys of results root ``root`` from the top (``"fxi/xanes"`` -> ``["fxi", "xanes"]``).

    Raises
    ------
    UnsafeIdentifier
        ``root`` is not a string, is empty, has an empty segment (a leading, trailing or
        doubled ``/``), or a segment that is not a safe name (``..``, spaces, quotes, ...).
    """
    if not isinstance(root, str) or not root:
        raise UnsafeIdentifier(f"results root {root!r} is empty: give a Tiled path like fxi/xanes")
    keys = root.split("/")
    if any(not key for key in keys):
        raise UnsafeIdentifier(
            f"results root {root!r} has an empty segment (a leading, trailing or doubled '/')"
        )
    for key in keys:
        check_name(key, f"results root {root!r}: segment")
    return keys


def find_root(client, root: str):
    """The node at results root ``root`` of ``client``, or None where any part is missing."""
    node = client
    for key in root_keys(root):
        if key not in node:
            return None
        node = node[key]
    return node


def ensure_root(client, root: str, metadata: dict | None = None):
    """The node at results root ``root`` of ``client``, its containers created as needed (the
    last one with ``metadata``); one created meanwhile by another writer is taken as it is."""
    keys = root_keys(root)
    node = client
    for n, key in enumerate(keys, 1):
        node = _container(node, key, metadata if n == len(keys) else {"about": "xanes-stream"})
    return node


def _container(parent, key: str, metadata: dict | None):
    if key in parent:
        return parent[key]
    try:
        return parent.create_container(key, metadata=metadata or {})
    except Exception:  # created meanwhile by another writer (another beamline's service)
        if key in parent:
            return parent[key]
        raise
