"""An archived run's documents, as the router needs them: checked, never trusted.

TiledWriter keeps a run's documents and frames, but not always the frames' places: a camera
staged once for the whole run (FXI's classic areaDetector) writes dark, sample and flat frames
into one file, and TiledWriter 2.0 registers that whole file under every stream, with the
offsets of each stream's frames lost (Tiled then refuses the arrays, or its documents point
every stream at frames ``[0:n]``); an ophyd-async ``stream_resource`` shared by the streams is
kept under the first stream only. Used as they are, darks would be taken for flats.

So :func:`archived_documents` first checks the documents Tiled gives back: frames of
different streams at the same places of one file, a camera stream with no frames, a format
the reader does not take. If they cannot be trusted (or Tiled refuses them), it rebuilds the
run's own ``resource``/``datum`` documents from what Tiled does keep — which files hold the
frames (the data sources), each stream's events and their times — and verifies them against
the files: the frames the events need are exactly the frames the file holds, and where the
camera stamped its frames (``AD_HDF5_TS``), each event's frames were taken after the previous
event and before its own. A run that does not pass is refused with what did not match.

A run served by databroker's ``MongoAdapter`` (the legacy layout, :mod:`.legacy`) keeps its
own ``resource``/``datum`` documents: its frames are read through the files they name when
they are inside the roots, else from the arrays the archive's server filled, checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xanes_stream.documents.opener import hdf5_dataset, open_hdf5, resolve_confined
from xanes_stream.errors import XanesStreamError
from xanes_stream.profiles import Profile
from xanes_stream.profiles.overrides import run_overrides
from xanes_stream.store.legacy import LegacyRunRefused, is_legacy_run, legacy_documents

__all__ = [
    "ArchivedRun",
    "RawRunRefused",
    "archived_documents",
    "image_source",
    "untrusted_offsets",
    "untrusted_sources",
]

#: Where an areaDetector HDF5 plugin writes frames and their timestamps.
AD_DATASET = "/entry/data/data"
AD_TIMESTAMPS = "/entry/instrument/NDAttributes/NDArrayTimeStamp"
_HDF5 = {"application/x-hdf5", "application/x-hdf5-smwr-slice"}
_TIFF = "multipart/related;type=image/tiff"
_ZARR = "application/x-zarr"  # arrays TiledWriter stored itself (frames inline in events)
_TIFF_NAME = re.compile(r"^(?P<base>.+)_(?P<number>\d+)\.(?P<suffix>tiff?)$")
#: How far (s) a frame's camera timestamp may lie outside its event's window.
STAMP_TOLERANCE_S = 0.5


class RawRunRefused(XanesStreamError):
    """Tiled's copy of a run cannot be trusted, and its files do not say enough either."""


@dataclass
class ArchivedRun:
    """The documents of one archived run and where its frames come from."""

    documents: list[tuple[str, dict]]
    #: "re-read from Tiled", "re-read from the files Tiled's copy names", or for a legacy run
    #: one of :data:`.legacy.FROM_FILES`, :data:`.legacy.FROM_ARRAYS`,
    #: :data:`.legacy.FROM_DOCUMENTS`
    source: str
    note: str | None = None  # why the frames were not read as Tiled's documents say


def archived_documents(node, profile: Profile, roots: list) -> ArchivedRun:
    """The documents of the raw run ``node`` (a BlueskyRun), checked.

    A run TiledWriter wrote has Tiled's documents checked by :func:`untrusted_offsets` (else
    its resource/datum rebuilt from the files); a run of databroker's legacy layout
    (:func:`.legacy.is_legacy_run`) has its frames read through the files its resources name,
    or from its server's filled arrays where the files are not readable here
    (:func:`.legacy.legacy_documents`).

    Parameters
    ----------
    node : BlueskyRun
        The run in Tiled, complete (its stop written).
    profile : Profile
        The operator's profile (the image key and streams, with the start's overrides).
    roots : list
        The folders detector files may be read from.

    Returns
    -------
    ArchivedRun

    Raises
    ------
    RawRunRefused
        Neither Tiled's documents nor the files they name can be trusted; says why.
    httpx.TransportError
        Tiled is unreachable (an outage: retry later).
    """
    import httpx

    metadata = node.metadata or {}
    start, stop = dict(metadata.get("start") or {}), dict(metadata.get("stop") or {})
    try:
        image_key = run_overrides(profile, start.get("xanes") or {}).image_key
    except XanesStreamError:
        image_key = profile.image_key  # the router fails the run with the reason
    try:
        documents = [(name, dict(doc)) for name, doc in node.documents()]
    except httpx.HTTPStatusError as exc:  # Tiled refuses to give the run's documents back
        problem = f"Tiled refused its documents ({exc.response.status_code})"
        if is_legacy_run(node):
            code = exc.response.status_code
            raise RawRunRefused(f"the archive's server refused its documents ({code})") from None
    else:
        if is_legacy_run(node):
            try:
                return ArchivedRun(*legacy_documents(node, documents, image_key, roots))
            except LegacyRunRefused as exc:
                raise RawRunRefused(str(exc)) from None
        problem = untrusted_offsets(documents, image_key)
        if problem is None:
            return ArchivedRun(documents, "re-read from Tiled")
    rebuilt = _from_files(node, start, stop, image_key, profile, roots, problem)
    return ArchivedRun(
        rebuilt,
        "re-read from the files Tiled's copy names",
        f"{problem}; its frames were read from the files, at the offsets of the events' order",
    )


def untrusted_offsets(documents: list[tuple[str, dict]], image_key: str) -> str | None:
    """Why the ``stream_datum`` documents of one run cannot be trusted for ``image_key``, or
    None: frames of two streams at the same places of one file, a stream whose descriptor
    says it has camera frames with none given, or frames in a format other than HDF5."""
    streams, resources, ranges = {}, {}, {}
    events: dict[str, int] = {}
    for name, doc in documents:
        if name == "descriptor" and image_key in (doc.get("data_keys") or {}):
            streams[doc["uid"]] = doc.get("name", "?")
        elif name == "stream_resource" and doc.get("data_key") == image_key:
            resources[doc["uid"]] = doc
        elif name == "stream_datum" and doc.get("stream_resource") in resources:
            indices = doc.get("indices") or {}
            span = (int(indices.get("start", 0)), int(indices.get("stop", 0)))
            ranges.setdefault(doc.get("descriptor"), []).append((doc["stream_resource"], span))
        elif name in ("event", "event_page") and doc.get("descriptor") in streams:
            events[doc["descriptor"]] = events.get(doc["descriptor"], 0) + 1
    for resource in resources.values():
        if resource.get("mimetype") not in _HDF5:
            return f"Tiled's copy gives the frames as {resource.get('mimetype')!r}"
    if not resources:
        return None  # frames inline in the events: nothing to place
    placed: list[tuple[tuple, str, tuple[int, int]]] = []  # (file, dataset), stream, span
    for descriptor, stream in streams.items():
        if events.get(descriptor) and descriptor not in ranges:
            return f"Tiled's copy holds no frames of the {stream!r} stream"
        for resource_uid, span in ranges.get(descriptor, []):
            resource = resources[resource_uid]
            where = (resource.get("uri"), (resource.get("parameters") or {}).get("dataset"))
            for other_where, other, other_span in placed:
                if other_where == where and other != stream and _overlap(span, other_span):
                    return (
                        f"Tiled's copy points the {other!r} and {stream!r} streams at the same "
                        f"frames {span[0]}:{span[1]} of {Path(str(where[0])).name}: it kept no "
                        "offsets of a file the streams share"
                    )
            placed.append((where, stream, span))
    return None


def untrusted_sources(streams: dict[str, dict]) -> str | None:
    """Why Tiled cannot serve a run's frames stream by stream, or None.

    The live check of what :func:`untrusted_offsets` checks at the stop, from what a run
    being written already shows: for each stream with camera frames, its descriptor's
    ``external`` of the image key and the image's first array data source
    (:func:`image_source`, None while Tiled has none yet).

    Parameters
    ----------
    streams : dict
        ``stream name -> {"external": str | None, "source": dict | None}``.

    Returns
    -------
    str or None
        What cannot be trusted: classic ``resource``/``datum`` files (a camera staged once
        for the run writes every stream into one file, of which Tiled keeps no offsets), a
        format other than HDF5 or Tiled's own arrays (TIFF assets are named wrongly), or
        two streams whose frames Tiled takes from the same file.
    """
    where: dict[tuple, str] = {}
    for stream, info in streams.items():
        external = str(info.get("external") or "")
        if external.startswith("FILESTORE"):
            return (
                f"its {stream!r} frames are in classic areaDetector files, which a camera "
                "staged once shares between streams, with no offsets kept in Tiled"
            )
        source = info.get("source")
        if source is None:
            continue
        if source["mimetype"] not in _HDF5 | {_ZARR}:
            return f"Tiled gives its {stream!r} frames as {source['mimetype']!r}"
        if source["mimetype"] == _ZARR:
            continue  # Tiled's own array of this stream
        key = (tuple(source["files"][:1]), source.get("dataset"))
        if key in where and where[key] != stream:
            name = Path(str(key[0][0] if key[0] else "?")).name
            return (
                f"Tiled takes the {where[key]!r} and {stream!r} frames from the same file "
                f"{name}: it kept no offsets of a file the streams share"
            )
        where[key] = stream
    return None


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


# --- the run's own documents, rebuilt from what Tiled keeps ------------------------------------
def _from_files(node, start, stop, image_key, profile, roots, problem) -> list[tuple[str, dict]]:
    """The run's documents with its frames as classic ``resource``/``datum``, placed in the
    files Tiled's data sources name by the order of the camera's events."""
    uid = start.get("uid")
    try:
        run = run_overrides(profile, start.get("xanes") or {})
    except XanesStreamError:
        run = run_overrides(profile, {})
    foil = profile.foil.key if profile.foil is not None else None
    columns = [k for k in (run.energy_key, run.i0_key, foil) if k]
    descriptors, tables, sources = {}, {}, {}
    for stream in node:
        metadata = dict(node[stream].metadata or {})
        descriptors[stream] = {**metadata, "name": stream, "run_start": uid}
        wanted = [c for c in ("time", "seq_num", *columns) if c in node[stream]]
        tables[stream] = {c: np.asarray(node[stream][c].read()) for c in wanted}
        if image_key in (metadata.get("data_keys") or {}):
            sources[stream] = image_source(node[stream], image_key)
    if not sources:
        raise RawRunRefused(f"{problem}, and no stream has {image_key!r} frames")
    events = sorted(
        (float(t), stream, j)
        for stream, table in tables.items()
        for j, t in enumerate(table.get("time", []))
    )  # every event, in the order they were taken
    camera = [event for event in events if event[1] in sources]
    shape = descriptors[camera[0][1]]["data_keys"][image_key].get("shape") or [] if camera else []
    fpp = int(shape[0]) if len(shape) == 3 else 1
    resources, points = _place_frames(camera, sources, fpp, roots, problem, uid)
    documents: list[tuple[str, dict]] = [("start", start)]
    documents += [("resource", r) for r in resources.values()]
    documents += [("descriptor", d) for d in descriptors.values()]
    for time, stream, j in events:
        table = tables[stream]
        data = {c: float(table[c][j]) for c in columns if c in table}
        if stream in sources:
            resource_uid, point = points[(stream, j)]
            data[image_key] = datum_id = f"{resource_uid}/{point}"
            datum = {"datum_id": datum_id, "resource": resource_uid}
            documents.append(("datum", {**datum, "datum_kwargs": {"point_number": point}}))
        seq = int(table["seq_num"][j]) if "seq_num" in table else j + 1
        uid_of = descriptors[stream]["uid"]
        event = {"uid": f"{uid_of}-{seq}", "descriptor": uid_of, "seq_num": seq, "time": time}
        event |= {"data": data, "timestamps": dict.fromkeys(data, time)}
        event["filled"] = {image_key: False} if stream in sources else {}
        documents.append(("event", event))
    documents.append(("stop", stop))
    return documents


def image_source(stream_node, image_key: str) -> dict | None:
    """The first array data source of ``image_key`` in a stream: mimetype, files, dataset."""
    if image_key not in stream_node:
        return None
    for source in stream_node[image_key].data_sources():
        if source.structure_family == "array":
            return {
                "mimetype": source.mimetype,
                "files": [asset.data_uri for asset in source.assets],
                "dataset": (source.parameters or {}).get("dataset"),
            }
    return None


def _place_frames(order, sources, fpp, roots, problem, uid):
    """Resources and, for each camera event ``(stream, j)``, its ``(resource, point_number)``:
    verified against the files."""
    given = {s: src for s, src in sources.items() if src is not None}
    if not given:
        raise RawRunRefused(f"{problem}, and Tiled's copy names no file of the frames")
    kinds = {src["mimetype"] for src in given.values()}
    if kinds <= _HDF5:
        return _place_hdf5(order, given, fpp, roots, problem, uid)
    if kinds == {_TIFF}:
        return _place_tiff(order, given, fpp, roots, problem, uid)
    raise RawRunRefused(f"{problem}, and its frames are in {sorted(kinds)}, not HDF5 or TIFF")


def _place_hdf5(order, given, fpp, roots, problem, uid):
    files = {(src["files"][0], src["dataset"]) for src in given.values() if src["files"]}
    if len(files) != 1:
        raise RawRunRefused(
            f"{problem}, and its streams' frames are in {len(files)} files: which frames "
            "belong to which event cannot be told"
        )
    ((uri, dataset),) = files
    if dataset not in (None, AD_DATASET):
        raise RawRunRefused(f"{problem}, and its frames are in {dataset!r}, not {AD_DATASET}")
    path = resolve_confined(uri, roots)
    with open_hdf5(path, roots) as handle:
        held = int(np.prod(hdf5_dataset(handle, AD_DATASET, path).shape[:-2]))
        stamps = None
        if AD_TIMESTAMPS in handle:
            stamps = np.asarray(hdf5_dataset(handle, AD_TIMESTAMPS, path)[()], dtype=float)
    needed = len(order) * fpp
    if held != needed:
        raise RawRunRefused(
            f"{problem}, and {path.name} holds {held} frames where the run's {len(order)} "
            f"camera events of {fpp} frames need {needed}: which are which cannot be told"
        )
    if stamps is not None and len(stamps) == held:
        _check_stamps(order, stamps, fpp, path, problem)
    resource_uid = f"archived-{uid}-0"
    resource = {
        "uid": resource_uid,
        "run_start": uid,
        "spec": "AD_HDF5",
        "root": "/",
        "resource_path": str(path).lstrip("/"),
        "resource_kwargs": {"frame_per_point": fpp},
        "path_semantics": "posix",
    }
    points = {(stream, j): (resource_uid, g) for g, (_, stream, j) in enumerate(order)}
    return {resource_uid: resource}, points


def _check_stamps(order, stamps, fpp, path, problem) -> None:
    """Each event's frames were stamped after the previous event and before its own."""
    previous = -np.inf
    for g, (time, stream, j) in enumerate(order):
        first, last = stamps[g * fpp], stamps[(g + 1) * fpp - 1]
        if first < previous - STAMP_TOLERANCE_S or last > time + STAMP_TOLERANCE_S:
            raise RawRunRefused(
                f"{problem}, and the frames of {path.name} do not follow the events: event "
                f"{j + 1} of {stream!r} at {time:.3f} has frames stamped {first:.3f} to {last:.3f}"
            )
        previous = time


def _tiff_path(uri: str, roots) -> Path:
    """The file a TIFF asset names, confined to ``roots``. TiledWriter 2.0 joins an AD_TIFF
    resource's folder and file name without the separator the areaDetector handler puts in
    (``.../12/04`` + ``name_000000.tiff`` becomes ``.../12/04name_000000.tiff``): when the
    named file does not exist, the one whose folder is a prefix of the name is taken, if
    exactly one is."""
    path = resolve_confined(uri, roots)
    if path.exists():
        return path
    candidates = [
        path.parent / path.name[: len(sub.name)] / path.name[len(sub.name) :]
        for sub in path.parent.iterdir()
        if sub.is_dir() and path.name.startswith(sub.name) and len(path.name) > len(sub.name)
    ] if path.parent.is_dir() else []  # fmt: skip
    found = [c for c in candidates if c.is_file()]
    if len(found) != 1:
        raise RawRunRefused(f"Tiled's copy names {path}, which does not exist")
    return resolve_confined(found[0], roots)


def _series_key(paths, matches):
    """(folder, base, suffix, digits) of a file of a numbered TIFF series."""
    return (paths[0].parent, matches[0]["base"], matches[0]["suffix"], len(matches[0]["number"]))


def _place_tiff(order, given, fpp, roots, problem, uid):
    """A file per frame: each event's files, named ``<base>_<number>.tif[f]``, give its
    point number (their first number over ``fpp``); all must share one folder and base."""
    if len(given) == 1 and {stream for _, stream, _ in order} - set(given):
        return _place_shared_tiff(order, given, fpp, roots, problem, uid)
    events_of: dict[str, list] = {}
    for _, stream, j in order:
        events_of.setdefault(stream, []).append(j)
    points, pattern = {}, None
    for stream, js in events_of.items():
        files = (given.get(stream) or {}).get("files") or []
        if len(files) != len(js) * fpp:
            raise RawRunRefused(
                f"{problem}, and Tiled's copy names {len(files)} files for the {len(js)} "
                f"events of {fpp} frames of the {stream!r} stream"
            )
        for j in sorted(js):
            paths = [_tiff_path(f, roots) for f in files[j * fpp : (j + 1) * fpp]]
            matches = [_TIFF_NAME.match(p.name) for p in paths]
            if not all(matches):
                raise RawRunRefused(f"{problem}, and {paths[0].name} is not named <name>_<n>.tif")
            numbers = [int(m["number"]) for m in matches]
            key = _series_key(paths, matches)
            pattern = pattern or key
            consecutive = numbers == list(range(numbers[0], numbers[0] + fpp))
            if key != pattern or not consecutive or numbers[0] % fpp:
                raise RawRunRefused(
                    f"{problem}, and the files of event {j + 1} of {stream!r} "
                    f"({paths[0].name} ...) are not the camera's numbered series"
                )
            points[(stream, j)] = numbers[0] // fpp
    in_time = [points[(stream, j)] for _, stream, j in order]
    if in_time != sorted(in_time) or len(set(in_time)) != len(in_time):
        raise RawRunRefused(f"{problem}, and the files' numbers do not follow the events' order")
    return _tiff_resource(uid, pattern, fpp, points)


def _place_shared_tiff(order, given, fpp, roots, problem, uid):
    """ophyd-async's TIFF writer: one ``stream_resource`` for every stream, which Tiled keeps
    under the first stream only, with all the run's files. They must be one numbered series
    of exactly the frames the camera events need; the k-th event in time is the k-th
    ``fpp`` files, as the k-th ``fpp`` frames of a shared HDF5 file."""
    ((stream, source),) = given.items()
    files, needed = source.get("files") or [], len(order) * fpp
    if len(files) != needed:
        raise RawRunRefused(
            f"{problem}, and Tiled's copy names {len(files)} files (under {stream!r}) where "
            f"the run's {len(order)} camera events of {fpp} frames need {needed}: which are "
            "which cannot be told"
        )
    paths = [_tiff_path(f, roots) for f in files]
    matches = [_TIFF_NAME.match(p.name) for p in paths]
    if not all(matches):
        raise RawRunRefused(f"{problem}, and {paths[0].name} is not named <name>_<n>.tif")
    numbers = [int(m["number"]) for m in matches]
    first, key = numbers[0], _series_key(paths, matches)
    if (
        numbers != list(range(first, first + needed))
        or first % fpp
        or any(_series_key([p], [m]) != key for p, m in zip(paths, matches, strict=True))
    ):
        raise RawRunRefused(
            f"{problem}, and the files under {stream!r} are not one numbered series"
        )
    points = {(s, j): first // fpp + g for g, (_, s, j) in enumerate(order)}
    return _tiff_resource(uid, key, fpp, points)


def _tiff_resource(uid, pattern, fpp, points):
    """The ``AD_TIFF`` resource of a numbered series and each camera event's point in it."""
    folder, base, suffix, width = pattern
    resource_uid = f"archived-{uid}-0"
    resource = {
        "uid": resource_uid,
        "run_start": uid,
        "spec": "AD_TIFF",
        "root": "/",
        "resource_path": str(folder).lstrip("/") + "/",
        "resource_kwargs": {
            "template": f"%s%s_%{width}.{width}d.{suffix}",
            "filename": base,
            "frame_per_point": fpp,
        },
        "path_semantics": "posix",
    }
    return {resource_uid: resource}, {k: (resource_uid, p) for k, p in points.items()}
