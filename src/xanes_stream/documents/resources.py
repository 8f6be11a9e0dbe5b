"""Frames of classic ophyd detectors: files announced by ``resource``, frames by ``datum``.

A classic areaDetector (FXI's Kinetix and Andor, with ophyd's ``FileStoreHDF5IterativeWrite``
or ``FileStoreTIFFIterativeWrite``) puts a datum id in its events; the ``datum`` (or
``datum_page``) before the event says which ``point_number`` of which ``resource`` it is, and
the resource's ``frame_per_point`` (fpp) how many frames a point holds. Point ``p`` is frames
``[p * fpp, (p + 1) * fpp)`` of the run's file, whatever the stream: one file serves the dark,
primary and flat streams, so the offset comes from the point number alone.

- ``AD_HDF5``: ``root`` + ``resource_path``, dataset :data:`AD_DATASET`;
- ``AD_TIFF``: a file per frame, ``template % (folder + '/', filename, p * fpp + i)``, the
  template only of the shape areaDetector writes (:data:`TIFF_TEMPLATE`);
- ``AD_HDF5_TS`` (the frames' timestamps): ignored;
- any other spec is remembered, so that a run whose frames are in such files says so.

Documents are untrusted: every file goes through :mod:`xanes_stream.documents.opener`
(confined to the allowed roots, however ``root`` and ``resource_path`` are spelled); a bad
resource is refused with a reason when a frame of it is wanted (it may belong to another
detector); datums held are bounded, and the bytes of a read are checked before allocating.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from event_model import unpack_datum_page

from xanes_stream.documents.codec import DocumentError
from xanes_stream.documents.opener import hdf5_dataset, open_hdf5, resolve_confined
from xanes_stream.documents.tiff import check_bytes, read_tiff_frame

__all__ = ["AD_DATASET", "IGNORED_SPECS", "READ_SPECS", "TIFF_TEMPLATE", "ClassicFrames"]

#: Where areaDetector's HDF5 plugin (and the ``AD_HDF5`` handler) keeps the frames.
AD_DATASET = "/entry/data/data"
#: The specs whose frames are read, and those known to hold no frames.
READ_SPECS = ("AD_HDF5", "AD_TIFF")
IGNORED_SPECS = ("AD_HDF5_TS",)
#: The only ``AD_TIFF`` templates accepted: folder, file name, a zero-padded frame number.
TIFF_TEMPLATE = re.compile(r"%s%s_%[1-9]\d?\.[1-9]\d?d\.tiff?")


@dataclass(frozen=True)
class _Resource:
    spec: str
    fpp: int = 1
    path: Path | None = None  # AD_HDF5: the file; AD_TIFF: the folder
    template: str = ""
    filename: str = ""
    refused: str | None = None  # why its frames cannot be read


class ClassicFrames:
    """The resources and datums of one run; :meth:`read` gives a datum's frames."""

    def __init__(
        self, roots: list, *, max_frames: int = 100_000, max_bytes: int | None = None
    ) -> None:
        self.roots = list(roots)
        self.max_frames, self.max_bytes = max_frames, max_bytes
        self._resources: dict[str, _Resource] = {}
        self._datums: dict[str, tuple[str, int]] = {}  # datum id -> resource uid, point

    # --- documents --------------------------------------------------------------------
    def add_resource(self, doc: dict) -> None:
        uid, spec = doc.get("uid"), doc.get("spec")
        if not isinstance(uid, str) or not isinstance(spec, str):
            raise DocumentError("resource has no uid or spec")
        if len(self._resources) >= self.max_frames:
            raise DocumentError(f"more than {self.max_frames} resources in one run")
        if spec in IGNORED_SPECS or spec not in READ_SPECS:
            self._resources[uid] = _Resource(spec[:80])
            return
        try:
            self._resources[uid] = self._parse(doc, spec)
        except DocumentError as exc:  # refused when (if) a frame of it is wanted
            self._resources[uid] = _Resource(spec, refused=f"{spec} resource {uid[:8]}: {exc}")

    def add_datum(self, doc: dict) -> None:
        resource = self._resources.get(doc.get("resource"))
        if resource is None or resource.spec in IGNORED_SPECS:
            return
        datum_id = doc.get("datum_id")
        if not isinstance(datum_id, str):
            raise DocumentError(f"datum id {datum_id!r} is not a string")
        kwargs = doc.get("datum_kwargs")
        point = kwargs.get("point_number", 0) if isinstance(kwargs, dict) else None
        if resource.spec in READ_SPECS and not _is_count(point):
            raise DocumentError(f"datum {datum_id[:40]} has point_number {point!r}")
        if datum_id not in self._datums and len(self._datums) >= self.max_frames:
            if resource.spec not in READ_SPECS:
                return  # only to say why frames are missing: not worth failing the run for
            raise DocumentError(f"more than {self.max_frames} datums wait for their events")
        self._datums[datum_id] = (doc["resource"], int(point) if _is_count(point) else 0)

    def add_datum_page(self, doc: dict) -> None:
        resource = self._resources.get(doc.get("resource"))
        if resource is None or resource.spec in IGNORED_SPECS:
            return
        ids, kwargs = doc.get("datum_id"), doc.get("datum_kwargs")
        if not isinstance(ids, list) or not isinstance(kwargs, dict):
            raise DocumentError("datum_page has no list of datum ids and dict of kwargs")
        if len(ids) > self.max_frames or any(
            not isinstance(v, list) or len(v) != len(ids) for v in kwargs.values()
        ):
            raise DocumentError("datum_page kwargs do not match its datum ids")
        for datum in unpack_datum_page(doc):
            self.add_datum(datum)

    # --- frames -----------------------------------------------------------------------
    def knows(self, datum_id) -> bool:
        """Whether ``datum_id`` is a datum of a resource whose frames this reads."""
        return isinstance(datum_id, str) and self._spec(datum_id) in READ_SPECS

    def unread_spec(self, datum_id) -> str | None:
        """The spec of ``datum_id``'s resource if it is one this service does not read."""
        spec = self._spec(datum_id) if isinstance(datum_id, str) else None
        return None if spec is None or spec in READ_SPECS or spec in IGNORED_SPECS else spec

    def _spec(self, datum_id: str) -> str | None:
        held = self._datums.get(datum_id)
        return None if held is None else self._resources[held[0]].spec

    def read(self, datum_id: str) -> np.ndarray:
        """The frames (fpp, ny, nx) of datum ``datum_id``: its point's frames of the file."""
        if not self.knows(datum_id):
            raise DocumentError(f"no datum {datum_id[:40]!r} of a readable resource")
        uid, point = self._datums.pop(datum_id)
        resource = self._resources[uid]
        if resource.refused:
            raise DocumentError(resource.refused)
        if resource.spec == "AD_HDF5":
            return self._read_hdf5(resource, point)
        return self._read_tiff(resource, point)

    def _read_hdf5(self, resource: _Resource, point: int) -> np.ndarray:
        path, fpp = resource.path, resource.fpp
        start, stop = point * fpp, (point + 1) * fpp
        with open_hdf5(path, self.roots) as handle:
            dataset = hdf5_dataset(handle, AD_DATASET, path)
            if dataset.ndim < 3:
                raise DocumentError(f"{path}: {AD_DATASET} of {dataset.shape} holds no frames")
            self._check_bytes(path, fpp, dataset.shape[1:], dataset.dtype)
            if dataset.shape[0] < stop:
                raise DocumentError(
                    f"{path} holds {dataset.shape[0]} frames; point {point} is frames "
                    f"{start}:{stop} (frame_per_point {fpp})"
                )
            try:
                return np.asarray(dataset[start:stop])
            except (OSError, KeyError, ValueError) as exc:
                raise DocumentError(f"cannot read frames {start}:{stop} of {path}: {exc}") from None

    def _read_tiff(self, resource: _Resource, point: int) -> np.ndarray:
        frames, folder = [], os.path.join(str(resource.path), "")
        for number in range(point * resource.fpp, (point + 1) * resource.fpp):
            path = _confined(resource.template % (folder, resource.filename, number), self.roots)
            frame = read_tiff_frame(path, self.roots, self.max_bytes, resource.fpp)
            if frames and frame.shape != frames[0].shape:
                raise DocumentError(f"{path} is {frame.shape}, the point's first {frames[0].shape}")
            frames.append(frame)
        return np.stack(frames)

    def _check_bytes(self, path: Path, fpp: int, shape, dtype) -> None:
        check_bytes(path, fpp, shape, dtype, self.max_bytes)

    def _parse(self, doc: dict, spec: str) -> _Resource:
        root, resource_path = doc.get("root", ""), doc.get("resource_path")
        if not isinstance(root, str) or not isinstance(resource_path, str) or not resource_path:
            raise DocumentError("root and resource_path must be text")
        if doc.get("path_semantics", "posix") != "posix":
            raise DocumentError(f"path_semantics {doc.get('path_semantics')!r} is not posix")
        kwargs = doc.get("resource_kwargs")
        kwargs = kwargs if isinstance(kwargs, dict) else {}
        fpp = kwargs.get("frame_per_point", 1)
        if not _is_count(fpp) or not 1 <= fpp <= self.max_frames:
            raise DocumentError(f"frame_per_point {fpp!r} is not 1 to {self.max_frames}")
        path = _confined(os.path.join(root, resource_path), self.roots)
        if spec == "AD_HDF5":
            return _Resource(spec, int(fpp), path)
        template, filename = kwargs.get("template"), kwargs.get("filename")
        if not isinstance(template, str) or not TIFF_TEMPLATE.fullmatch(template):
            raise DocumentError(
                f"template {template!r} is not of the shape '%s%s_%6.6d.tiff' (folder, file "
                "name, frame number): it is not used to name files"
            )
        if not isinstance(filename, str) or not filename or "/" in filename or "\x00" in filename:
            raise DocumentError(f"filename {filename!r} is not a file name")
        return _Resource(spec, int(fpp), path, template, filename)


def _is_count(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= 0


def _confined(path: str, roots: list) -> Path:
    """``path`` (untrusted, absolute) resolved inside ``roots``; spelled as a file URI so that
    no character of it is read as URI syntax."""
    if "\x00" in path or not os.path.isabs(path):
        raise DocumentError(f"{path!r} is not an absolute path")
    return resolve_confined(Path(path).as_uri(), roots)
