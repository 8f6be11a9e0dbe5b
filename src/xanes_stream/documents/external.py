"""Frames stored outside the documents: HDF5 files announced by ``stream_resource``.

A path named in a document is only opened when it lies inside one of the configured roots
(after resolving symbolic links), so a hostile document cannot make the service read
arbitrary files.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import h5py
import numpy as np

from xanes_stream.documents.codec import DocumentError

_HDF5_MIMETYPES = {"application/x-hdf5", "application/x-hdf5-smwr-slice"}


class PathNotAllowed(DocumentError):
    """A document named a file outside the allowed roots."""


def confined_path(uri: str, roots: list[str | Path]) -> Path:
    """The local path of a ``file://`` URI, if it lies inside one of ``roots``."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("file", ""):
        raise DocumentError(f"unsupported URI scheme {parsed.scheme!r} in {uri!r}")
    if parsed.netloc not in ("", "localhost"):
        raise DocumentError(f"file on another host {parsed.netloc!r} in {uri!r}")
    path = Path(unquote(parsed.path)).resolve()
    for root in roots:
        if path.is_relative_to(Path(root).resolve()):
            return path
    raise PathNotAllowed(
        f"{path} is outside the allowed roots ({', '.join(map(str, roots)) or 'none set'})"
    )


class ExternalFrames:
    """Reads frames for ``stream_datum`` documents from the files of ``stream_resource``."""

    def __init__(self, roots: list[str | Path]) -> None:
        self.roots = list(roots)
        self._resources: dict[str, tuple[Path, str]] = {}

    def add_resource(self, doc: dict) -> None:
        mimetype = doc.get("mimetype", "")
        if mimetype not in _HDF5_MIMETYPES:
            raise DocumentError(f"stream_resource mimetype {mimetype!r} is not HDF5")
        path = confined_path(doc["uri"], self.roots)
        dataset = doc.get("parameters", {}).get("dataset")
        if not dataset:
            raise DocumentError("stream_resource has no parameters.dataset")
        self._resources[doc["uid"]] = (path, dataset)

    def knows(self, resource_uid: str) -> bool:
        """Whether a ``stream_resource`` of this uid was added (others are not ours)."""
        return resource_uid in self._resources

    def read(self, datum: dict) -> tuple[list[int], np.ndarray]:
        """Sequence numbers and frames (n, ny, nx) of one ``stream_datum``."""
        resource = datum["stream_resource"]
        if resource not in self._resources:
            raise DocumentError(f"stream_datum names unknown stream_resource {resource!r}")
        path, dataset = self._resources[resource]
        start, stop = int(datum["indices"]["start"]), int(datum["indices"]["stop"])
        seq = datum.get("seq_nums", {})
        seq_nums = list(range(int(seq.get("start", start + 1)), int(seq.get("stop", stop + 1))))
        try:
            with h5py.File(path, "r", swmr=True) as f:
                frames = np.asarray(f[dataset][start:stop])
        except (OSError, KeyError) as exc:
            raise DocumentError(f"cannot read frames {start}:{stop} of {path}: {exc}") from None
        if frames.shape[0] != stop - start:
            raise DocumentError(f"{path} holds {frames.shape[0]} of frames {start}:{stop}")
        return seq_nums, frames
