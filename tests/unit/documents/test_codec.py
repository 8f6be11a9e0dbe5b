"""The document codec: arrays and documents round-trip; malformed or hostile bytes are
document errors, never a crash and never a pickle."""

import logging
import pickle

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xanes_stream.documents import codec
from xanes_stream.documents.codec import DocumentError
from xanes_stream.errors import XanesStreamError


@pytest.fixture
def no_pickle(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("pickle was called")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)


DTYPES = ["?", "i1", "<i2", ">i2", "<i4", "<i8", "u1", "<u2", ">u4", "<u8", "<f2", "<f4", ">f8",
          "<c8", "<c16", "<U5"]  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (7,), (3, 4, 5)])
def test_codec_round_trips_arrays(dtype, shape, no_pickle):
    rng = np.random.default_rng(0)
    values = rng.integers(0, 100, size=shape)
    array = values.astype(str).astype(dtype) if dtype.endswith("U5") else values.astype(dtype)
    out = codec.unpackb(codec.packb({"data": {"img": array}}))["data"]["img"]
    assert out.dtype == array.dtype and out.shape == array.shape
    np.testing.assert_array_equal(out, array)
    assert out.flags.writeable


def test_codec_round_trips_documents(no_pickle):
    view = np.arange(24, dtype="<f4").reshape(4, 6)[::2, ::3]  # not contiguous
    doc = {
        "uid": "u",
        "seq_num": np.int64(3),
        "flag": np.bool_(True),
        "x": np.float32(1.5),
        "z": np.complex128(1 - 2j),
        "w": 2 + 1j,
        "nested": [{"a": view, "b": None, "c": b"raw"}, (1, 2)],
    }
    out = codec.unpack_document(codec.packb(doc))
    assert out["seq_num"] == 3 and type(out["seq_num"]) is int
    assert out["flag"] is True and out["x"] == 1.5 and out["z"] == 1 - 2j and out["w"] == 2 + 1j
    np.testing.assert_array_equal(out["nested"][0]["a"], view)
    assert out["nested"][0]["c"] == b"raw" and out["nested"][1] == [1, 2]


@pytest.mark.parametrize(
    "bad",
    [
        np.array([object()], dtype=object),
        np.zeros(2, dtype=[("a", "<f4")]),
        np.array(["2020-01-01"], dtype="datetime64[D]"),
        np.array([b"ab"]),
        object(),
    ],
)
def test_codec_refuses_to_serialize(bad):
    with pytest.raises(DocumentError):
        codec.packb({"x": bad})


def ext(payload, code=codec.EXT_NDARRAY):
    return msgpack.packb({"x": msgpack.ExtType(code, msgpack.packb(payload))})


GOOD = codec.packb({"uid": "u", "img": np.arange(100, dtype="<f8")})
EVIL = msgpack.packb(  # what msgpack_numpy would hand to pickle.loads
    {b"nd": True, b"kind": b"O", b"type": "|O", b"shape": [1], b"data": pickle.dumps(len)}
)


@pytest.mark.parametrize(
    "data",
    [
        GOOD[:-5],  # truncated
        GOOD[:10],
        GOOD + b"\x00",  # trailing bytes
        b"\xc1",  # never-used msgpack byte
        b"",
        bytes(range(256)),
        ext(["|O", [1], b"12345678"]),  # object dtype
        ext(["<f4", [3], b"123"]),  # length does not match
        ext(["<f4", [-1], b""]),
        ext(["<f4", [1.5], b"1234"]),
        ext(["V8", [1], b"12345678"]),
        ext(["f4,i4", [1], b"12345678"]),
        ext(["nonsense", [1], b"1"]),
        ext(["|b1", [2], b"\x01\x07"]),  # bool bytes other than 0/1
        ext(["<U1", [1], b"\xff\xff\xff\xff"]),  # not a code point
        ext(["<f4", [1]]),
        ext([1, 2], code=codec.EXT_COMPLEX + 1),  # unknown extension
        ext(["a", 2], code=codec.EXT_COMPLEX),
        msgpack.packb({1: 2}),  # non-string key
    ],
)
def test_codec_rejects_malformed_input(data, no_pickle):
    with pytest.raises(DocumentError) as info:
        codec.unpackb(data)
    assert isinstance(info.value, XanesStreamError)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_codec_random_bytes_are_documents_or_document_errors(data):
    try:
        codec.unpackb(data)
    except DocumentError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(GOOD) - 1), st.integers(0, 255))
def test_codec_corrupted_messages_are_documents_or_document_errors(position, value):
    data = bytearray(GOOD)
    data[position] = value
    try:
        codec.unpackb(bytes(data))
    except DocumentError:
        pass


def test_codec_never_unpickles(no_pickle):
    out = codec.unpackb(EVIL)
    assert out[b"data"].startswith(b"\x80")  # stays bytes
    with pytest.raises(DocumentError):
        codec.unpack_document(EVIL)  # bytes keys are not a document
    with pytest.raises(DocumentError):
        codec.unpackb("not bytes")
    with pytest.raises(DocumentError, match="exceeds"):
        codec.unpackb(GOOD, max_bytes=10)


def test_pickle_helper_warns_once(monkeypatch, caplog):
    monkeypatch.setattr(codec, "_pickle_warned", False)
    with caplog.at_level(logging.WARNING, logger=codec.__name__):
        first = codec.pickle_deserializer_with_warning()
        second = codec.pickle_deserializer_with_warning()
    assert first is pickle.loads and second is pickle.loads
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "arbitrary code" in warnings[0].getMessage()
