"""Runs in databroker's legacy layout: a ``MongoAdapter`` served by Tiled, read-only.

Older raw data at NSLS-II is served by databroker 2.0's ``MongoAdapter``: its runs carry the
``BlueskyRun`` spec of version 1 (TiledWriter's are version 3), each stream has ``data`` and
``timestamps`` nodes, ``documents()`` gives the run's own ``resource`` and ``datum(_page)``
documents (so a file shared by the dark, sample and flat streams keeps each frame's place),
and the server's handlers (area-detector-handlers' ``AD_HDF5``) fill the external arrays.

A run is replayed by one of two routes, chosen per run by :func:`legacy_documents`:

- **through the files**: every resource holding the camera's frames names a file (``root`` +
  ``resource_path``) inside the allowed roots that exists here. The documents are handed on
  as they are and the router reads the frames itself (``documents.resources``), as live.
- **through the server-filled arrays**: otherwise (the analysis host cannot see the files).
  Each camera stream's image is read from ``node[stream]["data"][image_key]``, checked against
  the documents (one frame block per event, each event's datum a datum of the run, the
  descriptor's shape), and put inline in the events in place of the datum ids; the
  ``resource``/``datum`` documents are dropped. The router takes a 3-D inline image as the
  exposures of one event (``frames.event_image: exposures``, as FXI's profile says).

:class:`~xanes_stream.store.archived.ArchivedRun`'s ``source`` says which route was taken and
its ``note`` why the arrays were used.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from event_model import unpack_datum_page, unpack_event_page

from xanes_stream.documents.codec import DocumentError
from xanes_stream.documents.limits import Limits
from xanes_stream.documents.opener import resolve_confined
from xanes_stream.documents.resources import IGNORED_SPECS, READ_SPECS
from xanes_stream.errors import XanesStreamError

__all__ = [
    "FROM_ARRAYS",
    "FROM_DOCUMENTS",
    "FROM_FILES",
    "LegacyRunRefused",
    "is_legacy_run",
    "legacy_documents",
]

#: Where a legacy run's frames came from (the result's ``frames_from``).
FROM_FILES = "replayed from the files its resource documents name"
FROM_ARRAYS = "replayed from the arrays the archive's server filled"
FROM_DOCUMENTS = "replayed from the archive's documents"  # no camera frames in files


class LegacyRunRefused(XanesStreamError):
    """A legacy run whose files cannot be read here and whose server's arrays do not match
    its documents."""


def is_legacy_run(node) -> bool:
    """Whether ``node`` is a run served by databroker's ``MongoAdapter``: its ``BlueskyRun``
    spec is not of version 3 (TiledWriter's), the rule bluesky-tiled-plugins' client uses."""
    for spec in getattr(node, "specs", None) or ():
        if getattr(spec, "name", None) == "BlueskyRun":
            return not str(getattr(spec, "version", "") or "").startswith("3.")
    return False


def legacy_documents(
    node,
    documents: list[tuple[str, dict]],
    image_key: str,
    roots: list,
    limits: Limits = Limits(),  # noqa: B008 (frozen)
) -> tuple[list[tuple[str, dict]], str, str | None]:
    """The documents of legacy run ``node`` for the router, the route and why.

    Parameters
    ----------
    node : BlueskyRun
        The run on the legacy server (databroker's ``MongoAdapter``).
    documents : list of (name, doc)
        What ``node.documents()`` gave.
    image_key : str
        The camera's data key.
    roots : list
        The folders detector files may be read from.
    limits : Limits
        ``max_scan_bytes`` bounds the arrays read from the server.

    Returns
    -------
    documents, source, note
        ``source`` is :data:`FROM_FILES`, :data:`FROM_ARRAYS` or :data:`FROM_DOCUMENTS`;
        ``note`` says why the arrays were read (None otherwise).

    Raises
    ------
    LegacyRunRefused
        The files cannot be read here and the server's arrays do not match the documents.
    """
    resources = {d.get("uid"): d for n, d in documents if n == "resource"}
    datums = _datums(documents)
    cameras = {
        d["uid"]: d
        for n, d in documents
        if n == "descriptor" and ((d.get("data_keys") or {}).get(image_key) or {}).get("external")
    }
    if not cameras:
        return documents, FROM_DOCUMENTS, None
    events = _camera_events(documents, cameras)
    named = [e["data"].get(image_key) for found in events.values() for e in found]
    if all(datum_id in datums for datum_id in named):
        wanted = {datums[datum_id] for datum_id in named}
        unreadable = _unreadable_files([resources.get(uid) for uid in sorted(wanted)], roots)
    else:
        unreadable = "an event's frames name a datum the archive did not give"
    if unreadable is None:
        return documents, FROM_FILES, None
    frames = {
        uid: _server_frames(node, cameras[uid], events[uid], datums, image_key, limits)
        for uid in cameras
    }
    external = {  # descriptor uid -> its other keys in files, dropped with the datums
        d.get("uid"): _external_keys(d, image_key) for n, d in documents if n == "descriptor"
    }
    rebuilt: list[tuple[str, dict]] = []
    for name, doc in documents:
        if name in ("resource", "datum", "datum_page"):
            continue
        if name == "descriptor":
            dropped = external.get(doc.get("uid"), set())
            keys = {k: v for k, v in (doc.get("data_keys") or {}).items() if k not in dropped}
            if doc["uid"] in cameras:
                keys[image_key] = {k: v for k, v in keys[image_key].items() if k != "external"}
            doc = {**doc, "data_keys": keys}
        elif name in ("event", "event_page"):
            dropped = external.get(doc.get("descriptor"), set())
            for event in _unpacked(name, doc):
                rebuilt.append(("event", _inline(event, dropped, image_key, frames)))
            continue
        rebuilt.append((name, doc))
    note = (
        f"{unreadable}; its frames were read from the arrays the archive's server filled, "
        "checked against the run's datums (its other keys in files dropped)"
    )
    return rebuilt, FROM_ARRAYS, note


def _external_keys(descriptor: dict, image_key: str) -> set[str]:
    """The keys of ``descriptor`` other than the image whose values are in files."""
    keys = descriptor.get("data_keys") or {}
    return {
        k for k, v in keys.items() if k != image_key and isinstance(v, dict) and v.get("external")
    }


def _inline(event: dict, dropped: set, image_key: str, frames: dict) -> dict:
    """``event`` without the keys in ``dropped`` (their datums are gone), with its camera
    frames (if its stream has them in ``frames``) in place of the image's datum id."""
    parts = {
        part: {k: v for k, v in (event.get(part) or {}).items() if k not in dropped}
        for part in ("data", "timestamps", "filled")
    }
    if event.get("descriptor") in frames:
        parts["data"][image_key] = frames[event["descriptor"]][int(event["seq_num"])]
        parts["filled"][image_key] = True
    return {**event, **parts}


def _unpacked(name: str, doc: dict) -> list[dict]:
    return list(unpack_event_page(doc)) if name == "event_page" else [doc]


def _datums(documents) -> dict[str, str]:
    """Datum id -> its resource's uid, of every datum and datum page of the run."""
    out: dict[str, str] = {}
    for name, doc in documents:
        pages = [doc] if name == "datum" else unpack_datum_page(doc) if name == "datum_page" else []
        for datum in pages:
            out[datum["datum_id"]] = datum["resource"]
    return out


def _camera_events(documents, cameras) -> dict[str, list[dict]]:
    """Each camera descriptor's events, in ``seq_num`` order."""
    events: dict[str, list[dict]] = {uid: [] for uid in cameras}
    for name, doc in documents:
        if name in ("event", "event_page") and doc.get("descriptor") in cameras:
            events[doc["descriptor"]].extend(_unpacked(name, doc))
    for found in events.values():
        found.sort(key=lambda e: int(e["seq_num"]))
    return events


def _unreadable_files(resources, roots) -> str | None:
    """Why the frames' files cannot be read here (outside the roots, missing, of a spec not
    read, a resource not given), or None if all can."""
    for resource in resources:
        if resource is None:
            return "a datum of its frames names a resource the archive did not give"
        spec = resource.get("spec")
        if spec not in READ_SPECS or spec in IGNORED_SPECS:
            return f"its frames are in files of spec {str(spec)[:40]!r}, not read here"
        root, relative = resource.get("root", ""), resource.get("resource_path")
        if not isinstance(root, str) or not isinstance(relative, str) or not relative:
            return "a resource of its frames names no file"
        named = os.path.join(root, relative)
        try:
            path = resolve_confined(Path(named).as_uri(), roots)
        except DocumentError as exc:
            return f"its files are not readable here ({exc})"
        exists = path.is_dir() if spec == "AD_TIFF" else path.is_file()
        if not exists:
            return f"its file {path} does not exist here"
    return None


def _server_frames(node, descriptor, events, datums, image_key, limits) -> dict[int, np.ndarray]:
    """``seq_num`` -> the frames the server's handler filled for that event of the stream of
    ``descriptor``, checked: one block per event, of the descriptor's shape, each event's
    datum a datum of the run."""
    stream = str(descriptor.get("name", "?"))
    label = f"the {stream!r} stream"
    missing = [e["seq_num"] for e in events if e["data"].get(image_key) not in datums]
    seq_nums = [int(e["seq_num"]) for e in events]
    if len(set(seq_nums)) != len(seq_nums):
        raise LegacyRunRefused(f"{label} has two events of one seq_num")
    if missing:
        raise LegacyRunRefused(
            f"event {missing[0]} of {label} names no datum of the run: the server's "
            "arrays cannot be matched to it"
        )
    try:
        array = node[stream]["data"][image_key]
    except KeyError:
        raise LegacyRunRefused(
            f"the archive's server has no {image_key!r} array in {label}"
        ) from None
    shape = tuple(int(n) for n in (descriptor["data_keys"][image_key].get("shape") or ()))
    held = tuple(int(n) for n in array.shape)
    if held != (len(events), *shape):
        raise LegacyRunRefused(
            f"the archive's server fills {image_key!r} of {label} as {held}, where its "
            f"{len(events)} events of shape {shape} need {(len(events), *shape)}"
        )
    nbytes = int(np.prod(held)) * np.dtype(array.dtype).itemsize
    if nbytes > limits.max_scan_bytes:
        raise LegacyRunRefused(
            f"{label}'s frames are {nbytes / 2**30:.1f} GiB, above the limit of "
            f"{limits.max_scan_bytes / 2**30:.1f} GiB per scan"
        )
    frames = np.asarray(array.read())
    if frames.shape != held:
        raise LegacyRunRefused(f"the archive's server gave {frames.shape} for {held}")
    return {int(e["seq_num"]): frames[i] for i, e in enumerate(events)}
