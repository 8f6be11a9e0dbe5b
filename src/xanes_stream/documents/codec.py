"""Pickle-free msgpack codec for Bluesky documents that carry numpy arrays.

Arrays travel as a msgpack ExtType (:data:`EXT_NDARRAY`) whose payload is the msgpack list
``[dtype.str, shape, raw bytes]``; only bool, signed and unsigned integer, float, complex and
unicode-string dtypes are accepted, and the byte length must match dtype and shape. Numpy scalars
become Python scalars and complex numbers an ExtType (:data:`EXT_COMPLEX`). Nothing here ever
unpickles: ``msgpack_numpy`` does (``pickle.loads`` on any object-dtype map), so a crafted
message would run code. Use with ``Publisher(serializer=packb)`` and
``RemoteDispatcher(deserializer=unpackb)``.
"""

from __future__ import annotations

import logging
import pickle
import threading
from collections.abc import Callable
from typing import Any

import msgpack
import numpy as np

from xanes_stream.errors import XanesStreamError

__all__ = [
    "EXT_COMPLEX",
    "EXT_NDARRAY",
    "MAX_MESSAGE_BYTES",
    "DocumentError",
    "packb",
    "pickle_deserializer_with_warning",
    "unpack_document",
    "unpackb",
]

logger = logging.getLogger(__name__)

EXT_NDARRAY = 42
EXT_COMPLEX = 43
#: bool, signed int, unsigned int, float, complex, unicode string (never object, void, bytes).
ALLOWED_KINDS = frozenset("biufcU")
MAX_MESSAGE_BYTES = 1 << 31
MAX_NDIM = 32
_MAX_CODE_POINT = 0x10FFFF


class DocumentError(XanesStreamError):
    """A document that cannot be serialized, or bytes that are not a valid document."""


def _check_dtype(dtype: np.dtype) -> None:
    if dtype.kind not in ALLOWED_KINDS or dtype.hasobject or dtype.fields or dtype.subdtype:
        raise DocumentError(f"arrays of dtype {dtype} are not allowed in documents")
    if dtype.itemsize == 0:
        raise DocumentError(f"arrays of zero-size dtype {dtype} are not allowed in documents")


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        _check_dtype(obj.dtype)
        # tobytes() is C order whatever the strides (ascontiguousarray would make 0-d 1-d)
        payload = msgpack.packb([obj.dtype.str, list(obj.shape), obj.tobytes()], use_bin_type=True)
        return msgpack.ExtType(EXT_NDARRAY, payload)
    if isinstance(obj, complex | np.complexfloating):
        return msgpack.ExtType(EXT_COMPLEX, msgpack.packb([float(obj.real), float(obj.imag)]))
    if isinstance(obj, np.bool_ | np.integer | np.floating | np.str_):
        return obj.item()
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=repr)
    raise DocumentError(f"cannot serialize an object of type {type(obj).__name__}")


def packb(obj: Any) -> bytes:
    """Serialize a document (nested dicts, lists, scalars, numpy arrays) to msgpack bytes."""
    try:
        return msgpack.packb(obj, default=_default, use_bin_type=True, strict_types=False)
    except DocumentError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise DocumentError(f"cannot serialize document: {exc}") from None


def _decode_array(data: bytes) -> np.ndarray:
    try:
        fields = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:  # any failure to parse the payload means malformed input
        raise DocumentError(f"malformed array payload: {exc}") from None
    if not (isinstance(fields, list) and len(fields) == 3):
        raise DocumentError("malformed array payload: expected [dtype, shape, bytes]")
    dtype_str, shape, buffer = fields
    if not isinstance(dtype_str, str) or len(dtype_str) > 16 or not isinstance(buffer, bytes):
        raise DocumentError("malformed array payload: bad dtype or data field")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_NDIM
        or not all(type(n) is int and n >= 0 for n in shape)
    ):
        raise DocumentError("malformed array payload: shape must be a list of non-negative ints")
    try:
        dtype = np.dtype(dtype_str)
    except (TypeError, ValueError, SyntaxError) as exc:
        raise DocumentError(f"malformed array payload: unknown dtype {dtype_str!r}") from exc
    _check_dtype(dtype)
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize != len(buffer):
        raise DocumentError(
            f"array payload holds {len(buffer)} bytes, dtype {dtype} and shape {tuple(shape)} "
            f"need {count * dtype.itemsize}"
        )
    if dtype.kind == "b" and np.frombuffer(buffer, np.uint8).max(initial=0) > 1:
        raise DocumentError("malformed array payload: boolean bytes other than 0 and 1")
    if dtype.kind == "U":
        points = np.frombuffer(buffer, dtype.byteorder.replace("|", "=") + "u4")
        if points.max(initial=0) > _MAX_CODE_POINT:
            raise DocumentError("malformed array payload: invalid unicode code point")
    # bytearray: the array owns writable memory, independent of the message buffer
    return np.frombuffer(bytearray(buffer), dtype=dtype).reshape(tuple(shape))


def _decode_complex(data: bytes) -> complex:
    try:
        parts = msgpack.unpackb(data, raw=False, use_list=True)
    except Exception as exc:  # any failure to parse the payload means malformed input
        raise DocumentError(f"malformed complex payload: {exc}") from None
    if not (
        isinstance(parts, list)
        and len(parts) == 2
        and all(isinstance(p, int | float) and not isinstance(p, bool) for p in parts)
    ):
        raise DocumentError("malformed complex payload: expected [real, imag]")
    return complex(parts[0], parts[1])


def _ext_hook(code: int, data: bytes) -> Any:
    if code == EXT_NDARRAY:
        return _decode_array(data)
    if code == EXT_COMPLEX:
        return _decode_complex(data)
    raise DocumentError(f"unknown msgpack extension type {code}")


def unpackb(data: bytes | bytearray | memoryview, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Any:
    """Deserialize msgpack bytes made by :func:`packb`; raises :class:`DocumentError`."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DocumentError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise DocumentError(f"message of {len(data)} bytes exceeds the limit of {max_bytes}")
    try:
        return msgpack.unpackb(data, raw=False, ext_hook=_ext_hook, strict_map_key=True)
    except DocumentError:
        raise
    except Exception as exc:  # truncated, garbage, extra data, bad keys, too deep, ...
        raise DocumentError(f"malformed document message: {exc}") from None


def unpack_document(data: bytes | bytearray | memoryview) -> dict[str, Any]:
    """Like :func:`unpackb`, but the result must be a mapping with string keys."""
    doc = unpackb(data)
    if not isinstance(doc, dict) or not all(isinstance(k, str) for k in doc):
        raise DocumentError("a document must be a mapping with string keys")
    return doc


_pickle_warned = False
_pickle_lock = threading.Lock()


def pickle_deserializer_with_warning() -> Callable[[bytes], Any]:
    """``pickle.loads``, for a user who explicitly enabled pickle; warns once per process.

    Unpickling runs arbitrary code from whoever can publish to the proxy: only for trusted,
    closed networks and legacy publishers.
    """
    global _pickle_warned
    with _pickle_lock:
        if not _pickle_warned:
            _pickle_warned = True
            logger.warning(
                "pickle deserialization enabled: any process that can publish to the 0MQ "
                "proxy can run arbitrary code here; use the msgpack codec unless every "
                "publisher is trusted"
            )
    return pickle.loads
