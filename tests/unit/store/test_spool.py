"""The spool on its own: maps and failures put on disk come back equal and in order, survive a
restart, wait out an outage, and a corrupted entry is set aside, not a crash."""

import logging
from dataclasses import fields

import httpx
import numpy as np
import pytest

from xanes_stream.pipeline.results import Maps
from xanes_stream.store.spool import Spool


class RecordingStore:
    """Takes what the spool writes, in order; refuses with ``fail(uid)`` (an exception or None)."""

    def __init__(self, fail=lambda uid: None):
        self.written, self.fail = [], fail

    def _take(self, uid, kind, *payload):
        error = self.fail(uid)
        if error is not None:
            raise error
        self.written.append((uid, kind, *payload))
        return f"http://tiled/xanes/{uid}"

    def write_maps(self, uid, maps, metadata):
        return self._take(uid, "maps", maps, metadata)

    def write_failure(self, uid, reason, metadata):
        return self._take(uid, "failure", reason, metadata)


def _maps(seed: int) -> Maps:
    """Maps of random numbers (each entry different), shaped as a 2-reference 12 x 16 scan."""
    rng = np.random.default_rng(seed)
    ny, nx, n = 12, 16, 5
    image = lambda: rng.random((ny, nx)).astype(np.float32)  # noqa: E731
    return Maps(
        reference_names=["NiO", "LiNiO2"],
        fractions=rng.random((2, ny, nx)).astype(np.float32),
        thickness=image(),
        error=image(),
        r_factor=image(),
        chi2_red=image(),
        edge_energy=image() + 8340,
        peak_energy=image() + 8350,
        mask=rng.random((ny, nx)) > 0.5,
        clusters=rng.integers(0, 4, (ny, nx)).astype(np.int16),
        shifts=rng.normal(size=(n, 2)),
        energies=np.linspace(8300, 8400, n),
        mean_spectrum=rng.random(n),
        mean_fit=rng.random(n),
        fit_energies=np.linspace(8300, 8400, n),
        metadata={"method": "fit", "seed": seed},
    )


def _assert_same_maps(got: Maps, want: Maps):
    assert got.reference_names == want.reference_names
    for f in fields(Maps):
        value = getattr(want, f.name)
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(getattr(got, f.name), value, err_msg=f.name)


@pytest.fixture
def filled(tmp_path):
    """A spool holding maps of a, a failure of b, maps of c (put in that order)."""
    spool = Spool(tmp_path / "spool")
    maps = {"a": _maps(1), "c": _maps(3)}
    spool.write_maps("a", maps["a"], {"raw_uid": "a", "scan": 1})
    spool.write_failure("b", "aborted by the user", {"raw_uid": "b", "energies": np.arange(3.0)})
    spool.write_maps("c", maps["c"], {"raw_uid": "c", "scan": 3})
    return spool, maps


def test_entries_come_back_equal_and_in_order(filled):
    spool, maps = filled
    assert spool.uids() == ["a", "b", "c"] and len(spool) == 3
    store = RecordingStore()
    written = spool.flush(store)
    assert written == [(uid, f"http://tiled/xanes/{uid}") for uid in "abc"]
    assert [w[:2] for w in store.written] == [("a", "maps"), ("b", "failure"), ("c", "maps")]
    _assert_same_maps(store.written[0][2], maps["a"])
    _assert_same_maps(store.written[2][2], maps["c"])
    assert store.written[0][3] == {"raw_uid": "a", "scan": 1}
    assert store.written[0][2].metadata["seed"] == 1  # the maps' own metadata, apart
    assert store.written[1][2:] == ("aborted by the user", {"raw_uid": "b", "energies": [0, 1, 2]})
    assert len(spool) == 0 and not list(spool.folder.iterdir())


def test_entries_survive_a_restart_and_new_ones_go_after(filled):
    spool, maps = filled
    again = Spool(spool.folder)
    again.write_maps("d", _maps(4), {"raw_uid": "d"})
    assert again.uids() == ["a", "b", "c", "d"]
    store = RecordingStore()
    again.flush(store)
    assert [w[0] for w in store.written] == ["a", "b", "c", "d"]
    _assert_same_maps(store.written[2][2], maps["c"])


def test_an_outage_stops_the_flush_and_keeps_the_order(filled):
    spool, _ = filled
    down = RecordingStore(lambda uid: httpx.ConnectError("refused") if uid == "b" else None)
    assert [uid for uid, _ in spool.flush(down)] == ["a"]
    assert spool.uids() == ["b", "c"]  # c waits behind b though Tiled would take it
    overloaded = RecordingStore(
        lambda uid: httpx.HTTPStatusError("busy", request=None, response=httpx.Response(503))
    )
    assert spool.flush(overloaded) == [] and spool.uids() == ["b", "c"]
    up = RecordingStore()
    assert [uid for uid, _ in spool.flush(up)] == ["b", "c"]


def test_a_corrupted_entry_is_reported_and_set_aside(filled, caplog):
    spool, maps = filled
    first = spool.entries()[0]
    first.write_bytes(b"not an HDF5 file")
    store = RecordingStore()
    with caplog.at_level(logging.ERROR, logger="xanes_stream.store.spool"):
        written = spool.flush(store)
    assert [uid for uid, _ in written] == ["b", "c"]
    _assert_same_maps(store.written[1][2], maps["c"])
    assert spool.uids() == []
    rejected = list(spool.folder.glob("*.rejected"))
    assert [p.name for p in rejected] == [first.name + ".rejected"]
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert first.name in record.getMessage() and "rejected" in record.getMessage()


def test_a_refused_entry_is_set_aside_and_the_rest_written(filled):
    spool, _ = filled
    picky = RecordingStore(lambda uid: ValueError("bad metadata") if uid == "a" else None)
    assert [uid for uid, _ in spool.flush(picky)] == ["b", "c"]
    assert len(list(spool.folder.glob("*-a.h5.rejected"))) == 1 and len(spool) == 0
