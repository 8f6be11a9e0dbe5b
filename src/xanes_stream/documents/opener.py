"""The one way a file named by a document is opened: inside the allowed roots, and verified.

Every file a document names (HDF5 today; TIFF and classic ``resource`` files go through here
too) is untrusted: a user or a detector can put anything in the detector folder, and a path can
be swapped for a symbolic link between the moment it is checked and the moment it is read.
So:

1. :func:`resolve_confined` resolves the path once (symbolic links, ``..``) and refuses it
   unless it lies inside one of the roots;
2. :func:`open_confined` opens that resolved path (not following a final symbolic link, not
   blocking on a FIFO) and then checks the *opened* file: a regular file, whose real path
   (what the kernel says the descriptor is) lies inside a root, with the device and inode of
   the resolved path. A swap after step 1 is caught here; one after step 2 changes nothing,
   the descriptor is already on the right file;
3. :func:`open_hdf5` hands HDF5 that very file (``/proc/self/fd/N`` on Linux) and checks that
   the file HDF5 holds is the same device and inode; :func:`hdf5_dataset` then finds the
   dataset refusing external links, virtual datasets and external raw storage (each can
   point HDF5 at a file outside the roots; none is written by the detectors we read).

Each refusal is a :class:`PathNotAllowed` or :class:`~.codec.DocumentError` naming the file
and the problem, which becomes the reason in the run's failed record.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

from xanes_stream.documents.codec import DocumentError

__all__ = [
    "PathNotAllowed",
    "hdf5_dataset",
    "local_path",
    "open_confined",
    "open_hdf5",
    "resolve_confined",
]

_MAX_SOFT_LINKS = 16
_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_FLAGS |= getattr(os, "O_CLOEXEC", 0)


class PathNotAllowed(DocumentError):
    """A document named a file outside the allowed roots, or one that is not a plain file."""


def local_path(uri: str) -> Path:
    """The local path of a ``file://`` URI (or of a plain path), not yet resolved."""
    if not isinstance(uri, str) or not uri or "\x00" in uri:
        raise DocumentError(f"not a file URI: {uri!r}")
    parsed = urlparse(uri)
    if parsed.scheme not in ("file", ""):
        raise DocumentError(f"unsupported URI scheme {parsed.scheme!r} in {uri!r}")
    if parsed.netloc not in ("", "localhost"):
        raise DocumentError(f"file on another host {parsed.netloc!r} in {uri!r}")
    path = unquote(parsed.path)
    if "\x00" in path:
        raise DocumentError(f"not a file URI: {uri!r}")
    return Path(path)


def _roots(roots) -> list[Path]:
    return [Path(root).resolve() for root in roots]


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def resolve_confined(uri: str | Path, roots) -> Path:
    """The resolved path of ``uri`` (a ``file://`` URI or a path), if inside one of ``roots``.

    Raises
    ------
    PathNotAllowed
        It resolves outside every root (or no root is set).
    DocumentError
        It is not a local file URI.
    """
    path = local_path(str(uri)).resolve()
    if not _inside(path, _roots(roots)):
        raise PathNotAllowed(
            f"{path} is outside the allowed roots ({', '.join(map(str, roots)) or 'none set'})"
        )
    return path


def _real_path(fd: int, path: Path) -> Path:
    """Where the kernel says descriptor ``fd`` is (Linux), else ``path`` resolved anew."""
    with contextlib.suppress(OSError):
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    return path.resolve()


@contextlib.contextmanager
def open_confined(path: Path, roots) -> Iterator[int]:
    """A read-only descriptor of the regular file ``path`` (resolved by
    :func:`resolve_confined`), verified once open to be inside ``roots``; closed on exit.

    Raises
    ------
    PathNotAllowed
        The opened file is not a regular file, is not inside the roots, or is not the file
        at ``path`` (it was swapped meanwhile).
    DocumentError
        It cannot be opened.
    """
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PathNotAllowed(f"{path} became a symbolic link after it was checked") from None
        raise DocumentError(f"cannot open {path}: {exc.strerror or exc}") from None
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise PathNotAllowed(f"{path} is not a regular file")
        real = _real_path(fd, path)
        if not _inside(real, _roots(roots)):
            raise PathNotAllowed(f"{path} is in fact {real}, outside the allowed roots")
        try:
            named = os.stat(path, follow_symlinks=False)
        except OSError:
            named = None
        if named is None or (named.st_dev, named.st_ino) != (opened.st_dev, opened.st_ino):
            raise PathNotAllowed(f"{path} was replaced while it was being opened")
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def open_hdf5(path: Path, roots, *, swmr: bool = True):
    """The HDF5 file at ``path`` (resolved by :func:`resolve_confined`), opened read-only
    through :func:`open_confined`; find datasets in it with :func:`hdf5_dataset`."""
    import h5py

    with open_confined(path, roots) as fd:
        by_fd = f"/proc/self/fd/{fd}"
        name = by_fd if os.path.exists(by_fd) else str(path)
        try:
            handle = h5py.File(name, "r", swmr=swmr)
        except OSError as exc:
            raise DocumentError(f"{path} is not a readable HDF5 file: {exc}") from None
        with handle:
            held = os.fstat(handle.id.get_vfd_handle())
            ours = os.fstat(fd)
            if (held.st_dev, held.st_ino) != (ours.st_dev, ours.st_ino):
                raise PathNotAllowed(f"{path} was replaced while it was being opened")
            yield handle


def hdf5_dataset(handle, name: str, path: Path):
    """Dataset ``name`` of the open HDF5 file ``handle`` (of ``path``), found link by link.

    Soft links are followed inside the file; an external link, a virtual dataset or external
    raw storage is refused, as is anything but a numeric dataset.
    """
    import h5py

    if not isinstance(name, str) or not name.strip("/"):
        raise DocumentError(f"{path}: no dataset named ({name!r})")
    node, parts, hops = handle, [p for p in name.split("/") if p], 0
    while parts:
        part = parts.pop(0)
        if not isinstance(node, h5py.Group):
            raise DocumentError(f"{path}: {name} is not a dataset of the file")
        link = node.get(part, getlink=True)
        if link is None:
            raise DocumentError(f"{path} has no dataset {name}")
        if isinstance(link, h5py.SoftLink):
            hops += 1
            if hops > _MAX_SOFT_LINKS:
                raise DocumentError(f"{path}: {name} goes through too many soft links")
            target = link.path
            node = handle if target.startswith("/") else node
            parts = [p for p in target.split("/") if p] + parts
            continue
        if not isinstance(link, h5py.HardLink):
            raise PathNotAllowed(
                f"{path}: {name} goes through an external link ({_target(link)}): "
                "frames are only read from the file the document names"
            )
        node = node[part]
    if not isinstance(node, h5py.Dataset):
        raise DocumentError(f"{path}: {name} is not a dataset")
    if node.is_virtual:
        sources = sorted({s.file_name for s in node.virtual_sources()})
        raise PathNotAllowed(
            f"{path}: {name} is a virtual dataset (of {', '.join(sources)}): "
            "frames are only read from the file the document names"
        )
    if node.external:
        files = sorted({str(entry[0]) for entry in node.external})
        raise PathNotAllowed(
            f"{path}: {name} keeps its data in other files ({', '.join(files)}): "
            "frames are only read from the file the document names"
        )
    if node.dtype.kind not in "uif":
        raise DocumentError(f"{path}: {name} holds {node.dtype}, not numeric frames")
    return node


def _target(link) -> str:
    return f"{getattr(link, 'filename', '?')}:{getattr(link, 'path', '?')}"
