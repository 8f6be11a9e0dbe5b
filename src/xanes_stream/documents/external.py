"""Frames stored outside the documents: HDF5 files, or a TIFF file per frame
(:mod:`xanes_stream.documents.tiff`), announced by ``stream_resource``.

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
from xanes_stream.documents.tiff import TIFF_MIMETYPE, TiffSeries, check_bytes, read_tiff_frame

__all__ = [
    "ExternalFrames",
    "PathNotAllowed",
    "confined_path",
    "datum_ranges",
    "frames_per_index",
]

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
        self._resources: dict[str, tuple[Path, str] | TiffSeries] = {}

    def add_resource(self, doc: dict) -> None:
        mimetype = doc.get("mimetype", "")
        uid = doc.get("uid")
        if not isinstance(uid, str):
            raise DocumentError("stream_resource uid is not a string")
        if mimetype == TIFF_MIMETYPE:
            series = TiffSeries.from_resource(doc.get("uri"), doc.get("parameters"))
            resolve_confined(series.folder.as_uri(), self.roots)  # refused now, not per file
            self._resources[uid] = series
            return
        if mimetype not in _HDF5_MIMETYPES:
            raise DocumentError(f"stream_resource mimetype {mimetype!r} is neither HDF5 nor TIFF")
        path = resolve_confined(doc["uri"], self.roots)
        dataset = (doc.get("parameters") or {}).get("dataset")
        if not dataset or not isinstance(dataset, str):
            raise DocumentError("stream_resource has no parameters.dataset")
        self._resources[uid] = (path, dataset)

    def knows(self, resource_uid: str) -> bool:
        """Whether a ``stream_resource`` of this uid was added (others are not ours)."""
        return isinstance(resource_uid, str) and resource_uid in self._resources

    def read(self, datum: dict) -> tuple[list[int], np.ndarray]:
        """Sequence numbers and frames (n, ny, nx) of one ``stream_datum`` (one frame an
        index)."""
        seq_nums, frames, _ = self.read_stacked(datum)
        return seq_nums, frames

    def read_stacked(self, datum: dict, shape=None) -> tuple[list[int], np.ndarray, int]:
        """Sequence numbers, frames and frames per index of one ``stream_datum``.

        ``shape`` is the descriptor's shape of the data key: ophyd-async (0.10 on) writes
        ``[k, *frame]`` when each event (each index of ``indices``) is ``k`` collections,
        rows ``[i * k, (i + 1) * k)`` of the dataset; then the frames are (n, k, *frame).
        With ``k == 1``, or a shape of one frame, they are (n, *frame).
        """
        resource = datum["stream_resource"]
        if not self.knows(resource):
            raise DocumentError(f"stream_datum names unknown stream_resource {resource!r}")
        indices, seq_nums = datum_ranges(datum, self.max_frames)
        if isinstance(self._resources[resource], TiffSeries):
            frames, k = self._read_tiff(self._resources[resource], indices, shape)
            return list(seq_nums), frames, k
        path, name = self._resources[resource]
        with open_hdf5(path, self.roots) as handle:
            dataset = hdf5_dataset(handle, name, path)
            if dataset.ndim < 3:
                raise DocumentError(f"{path}: {name} of shape {dataset.shape} holds no frames")
            k = frames_per_index(shape, dataset.shape[1:], self.max_frames)
            start, stop = indices.start * k, indices.stop * k
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
        if k > 1:
            frames = frames.reshape(len(indices), k, *frames.shape[1:])
        return list(seq_nums), frames, k

    def _read_tiff(self, series: TiffSeries, indices: range, shape) -> tuple[np.ndarray, int]:
        """Files ``[start * k, stop * k)`` of the series, ``k`` frames per index (Tiled's
        ``TIFFConsolidator``: files per datum = frames per event / frames per file)."""
        frame = tuple(shape[1:]) if isinstance(shape, list | tuple) and len(shape) > 2 else shape
        k = frames_per_index(shape, frame or (), self.max_frames)
        numbers = range(indices.start * k, indices.stop * k)
        if len(numbers) > self.max_frames:
            raise DocumentError(
                f"stream_datum announces {len(numbers)} TIFF files; at most {self.max_frames}"
            )
        if frame and self.max_bytes is not None:  # at least a byte a pixel, before any read
            check_bytes(series.folder, len(numbers), frame, np.uint8, self.max_bytes)
        frames, used = [], 0
        for number in numbers:
            path = series.path_of(number, self.roots)
            left = None if self.max_bytes is None else self.max_bytes - used
            frames.append(read_tiff_frame(path, self.roots, left))
            used += frames[-1].nbytes
            if frames[-1].shape != frames[0].shape or (frame and frames[0].shape != frame):
                raise DocumentError(
                    f"{path} is a frame of {frames[-1].shape}, not {frame or frames[0].shape}"
                )
        stacked = np.stack(frames)
        if k > 1:
            stacked = stacked.reshape(len(indices), k, *stacked.shape[1:])
        return stacked, k


def frames_per_index(shape, frame: tuple, max_frames: int = MAX_FRAMES) -> int:
    """How many dataset rows of ``frame`` shape one ``stream_datum`` index holds, by the
    descriptor's ``shape`` of the data key: ``[k, *frame]`` (ophyd-async 0.10 on: ``k``
    collections per event), ``frame`` itself or none said (1)."""
    if not isinstance(shape, list | tuple) or not shape:
        return 1
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in shape):
        raise DocumentError(f"descriptor shape {shape!r} is not a shape")
    shape, frame = tuple(shape), tuple(int(n) for n in frame)
    if shape == frame:
        return 1
    if shape[1:] != frame or not 1 <= shape[0] <= max_frames:
        raise DocumentError(f"the descriptor's shape {shape} is not frames of the file's {frame}")
    return shape[0]
