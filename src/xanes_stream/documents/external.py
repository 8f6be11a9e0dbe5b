"""Frames stored outside the documents: HDF5 files announced by ``stream_resource``.

Every file is opened through :mod:`xanes_stream.documents.opener`: resolved once when its
``stream_resource`` arrives, refused outside the configured roots, and verified again once
open, so a hostile document (or a file swapped for a link meanwhile) cannot make the service
read other files. A ``stream_datum``'s ranges are checked before anything is allocated: at
most ``max_frames`` frames, and ``max_bytes`` of them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xanes_stream.documents.codec import DocumentError
from xanes_stream.documents.opener import (
    PathNotAllowed,
    hdf5_dataset,
    open_hdf5,
    resolve_confined,
)

__all__ = ["ExternalFrames", "PathNotAllowed", "confined_path", "datum_ranges"]

_HDF5_MIMETYPES = {"application/x-hdf5", "application/x-hdf5-smwr-slice"}
#: Frames one ``stream_datum`` may announce unless told otherwise.
MAX_FRAMES = 100_000


def confined_path(uri: str, roots: list[str | Path]) -> Path:
    """The local path of a ``file://`` URI, if it lies inside one of ``roots``."""
    return resolve_confined(uri, roots)


def _bound(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise DocumentError(f"stream_datum {what} is {value!r}, not an integer")
    return int(value)


def datum_ranges(datum: dict, max_frames: int = MAX_FRAMES) -> tuple[range, range]:
    """The ``indices`` (frames in the file) and ``seq_nums`` (events) of a ``stream_datum``,
    checked to be the same non-empty length of at most ``max_frames``: nothing allocated."""
    indices = datum.get("indices")
    if not isinstance(indices, dict):
        raise DocumentError("stream_datum has no indices")
    start, stop = (
        _bound(indices.get("start"), "indices.start"),
        _bound(indices.get("stop"), "indices.stop"),
    )
    seq = datum.get("seq_nums") or {}
    if not isinstance(seq, dict):
        raise DocumentError("stream_datum seq_nums is not a range")
    first = _bound(seq.get("start", start + 1), "seq_nums.start")
    last = _bound(seq.get("stop", stop + 1), "seq_nums.stop")
    if not 0 <= start < stop or stop - start > max_frames:
        raise DocumentError(
            f"stream_datum announces frames {start}:{stop}; at most {max_frames} "
            "frames, from index 0 up, are accepted in one"
        )
    if last - first != stop - start or first < 1:
        raise DocumentError(
            f"stream_datum announces events {first}:{last} for frames {start}:{stop}"
        )
    return range(start, stop), range(first, last)


class ExternalFrames:
    """Reads frames for ``stream_datum`` documents from the files of ``stream_resource``."""

    def __init__(
        self, roots: list[str | Path], *, max_frames: int = MAX_FRAMES, max_bytes: int | None = None
    ) -> None:
        self.roots = list(roots)
        self.max_frames, self.max_bytes = max_frames, max_bytes
        self._resources: dict[str, tuple[Path, str]] = {}

    def add_resource(self, doc: dict) -> None:
        mimetype = doc.get("mimetype", "")
        if mimetype not in _HDF5_MIMETYPES:
            raise DocumentError(f"stream_resource mimetype {mimetype!r} is not HDF5")
        path = resolve_confined(doc["uri"], self.roots)
        dataset = (doc.get("parameters") or {}).get("dataset")
        if not dataset or not isinstance(dataset, str):
            raise DocumentError("stream_resource has no parameters.dataset")
        uid = doc["uid"]
        if not isinstance(uid, str):
            raise DocumentError("stream_resource uid is not a string")
        self._resources[uid] = (path, dataset)

    def knows(self, resource_uid: str) -> bool:
        """Whether a ``stream_resource`` of this uid was added (others are not ours)."""
        return isinstance(resource_uid, str) and resource_uid in self._resources

    def read(self, datum: dict) -> tuple[list[int], np.ndarray]:
        """Sequence numbers and frames (n, ny, nx) of one ``stream_datum``."""
        resource = datum["stream_resource"]
        if not self.knows(resource):
            raise DocumentError(f"stream_datum names unknown stream_resource {resource!r}")
        path, name = self._resources[resource]
        indices, seq_nums = datum_ranges(datum, self.max_frames)
        start, stop = indices.start, indices.stop
        with open_hdf5(path, self.roots) as handle:
            dataset = hdf5_dataset(handle, name, path)
            if dataset.ndim < 3:
                raise DocumentError(f"{path}: {name} of shape {dataset.shape} holds no frames")
            size = (stop - start) * int(np.prod(dataset.shape[1:])) * dataset.dtype.itemsize
            if self.max_bytes is not None and size > self.max_bytes:
                raise DocumentError(
                    f"{path}: frames {start}:{stop} of {name} ({dataset.shape[1:]}) would take "
                    f"{size / 2**20:.0f} MiB, more than the {self.max_bytes / 2**20:.0f} MiB "
                    "allowed for one scan"
                )
            try:
                frames = np.asarray(dataset[start:stop])
            except (OSError, KeyError, ValueError) as exc:
                raise DocumentError(f"cannot read frames {start}:{stop} of {path}: {exc}") from None
        if frames.shape[0] != stop - start:
            raise DocumentError(f"{path} holds {frames.shape[0]} of frames {start}:{stop}")
        return list(seq_nums), frames
