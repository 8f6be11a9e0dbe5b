"""TIFF files named by documents, a frame a file: their names, and reading them bounded.

ophyd-async's areaDetector TIFF writer (0.21, ``ADMultipartDataLogic``) announces a run's
files with one ``stream_resource``: mimetype :data:`TIFF_MIMETYPE`, ``uri`` the folder's
``file://`` URI (ending in ``/``), ``parameters["template"]`` the file name with a new-style
number field (``"<name>_{:06d}.tiff"``) and ``parameters["chunk_shape"]`` ``(1, ny, nx)``, a
frame a file. File ``i`` is ``uri + template.format(i)``, as Tiled's ``TIFFConsolidator``
forms it; that consolidator also takes old-style templates (``%s`` the ``filename``
parameter, ``%6.6d`` the number), so :class:`TiffSeries` does too.

Templates are untrusted: only a plain name, one number field and a ``.tif``/``.tiff``
extension are accepted, and the number is put in by this module, never by ``str.format``
or ``%`` on the document's text. Every file is opened through
:mod:`xanes_stream.documents.opener`.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xanes_stream.documents.codec import DocumentError
from xanes_stream.documents.opener import local_path, open_confined, resolve_confined

__all__ = ["TIFF_MIMETYPE", "TiffSeries", "check_bytes", "read_tiff_frame"]

TIFF_MIMETYPE = "multipart/related;type=image/tiff"
_NAME = r"[A-Za-z0-9._-]*"
#: A plain name (after up to two ``%s``), one number field, a TIFF extension.
_TEMPLATE = re.compile(
    rf"(?P<lead>(?:%s){{0,2}})(?P<name>{_NAME})"
    r"(?:\{:(?P<new>0?\d{0,2})d\}|%(?P<old>0?\d{0,2})d|%(?P<width>\d{1,2})\.(?P<prec>\d{1,2})d)"
    r"(?P<ext>\.tiff?)"
)
_PLAIN = re.compile(rf"{_NAME}")


@dataclass(frozen=True)
class TiffSeries:
    """A numbered series of TIFF files in one folder: ``folder / name_of(i)``."""

    folder: Path
    prefix: str
    width: int
    zero: bool
    ext: str

    @classmethod
    def from_resource(cls, uri, parameters) -> TiffSeries:
        """The series a ``stream_resource``'s ``uri`` and ``parameters`` announce.

        Raises
        ------
        DocumentError
            The template is not a plain numbered TIFF name, the files hold more than one
            frame each, or the folder is not a local ``file://`` folder.
        """
        if not isinstance(uri, str) or not uri.endswith("/"):
            raise DocumentError(f"stream_resource uri {uri!r} is not a folder (ending in /)")
        parameters = parameters if isinstance(parameters, dict) else {}
        template, filename = parameters.get("template"), parameters.get("filename", "")
        match = _TEMPLATE.fullmatch(template) if isinstance(template, str) else None
        if match is None or not isinstance(filename, str) or not _PLAIN.fullmatch(filename):
            raise DocumentError(
                f"TIFF template {template!r} is not of the shape 'name_{{:06d}}.tiff' (a plain "
                "file name, one frame number): it is not used to name files"
            )
        chunk = parameters.get("chunk_shape") or (1,)
        if not isinstance(chunk, list | tuple) or not chunk or chunk[0] != 1:
            raise DocumentError(
                f"TIFF chunk_shape {chunk!r}: only files of one frame each are read"
            )
        lead = filename if match["lead"] else ""  # Tiled: the first %s is the filename
        spec = match["new"] if match["new"] is not None else match["old"]
        if spec is None:  # %6.6d: zero-padded to the larger of width and precision
            width, zero = max(int(match["width"]), int(match["prec"])), True
        else:
            width, zero = int(spec or 0), spec.startswith("0")
        folder = local_path(uri)
        if not folder.is_absolute():
            raise DocumentError(f"stream_resource uri {uri!r} is not an absolute folder")
        return cls(folder, lead + match["name"], width, zero, match["ext"])

    def name_of(self, number: int) -> str:
        """The name of file ``number`` of the series."""
        digits = f"{number:0{self.width}d}" if self.zero else f"{number:{self.width}d}"
        return f"{self.prefix}{digits}{self.ext}"

    def path_of(self, number: int, roots) -> Path:
        """File ``number``, resolved and confined to ``roots``."""
        return resolve_confined((self.folder / self.name_of(number)).as_uri(), roots)


def check_bytes(path: Path, frames: int, shape, dtype, max_bytes: int | None) -> None:
    """Refuse ``frames`` frames of ``shape`` and ``dtype`` if they exceed ``max_bytes``."""
    size = frames * int(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize
    if max_bytes is not None and size > max_bytes:
        raise DocumentError(
            f"{path}: {frames} frames of {tuple(shape)} would take {size / 2**20:.0f} MiB, "
            f"more than the {max_bytes / 2**20:.0f} MiB left for the scan"
        )


def read_tiff_frame(path: Path, roots, max_bytes: int | None, frames: int = 1) -> np.ndarray:
    """The first page of the TIFF file ``path``, opened confined to ``roots``; its file and
    ``frames`` frames of its page's size are checked against ``max_bytes`` before reading."""
    import tifffile

    with open_confined(path, roots) as fd:
        check_bytes(path, 1, (os.fstat(fd).st_size,), np.uint8, max_bytes)
        with os.fdopen(os.dup(fd), "rb") as file:
            content = io.BytesIO(file.read())
    try:
        with tifffile.TiffFile(content) as tif:
            page = tif.pages[0]
            check_bytes(path, frames, page.shape, page.dtype, max_bytes)
            return page.asarray()
    except (tifffile.TiffFileError, ValueError, OSError, IndexError) as exc:
        raise DocumentError(f"{path} is not a readable TIFF file: {exc}") from None
