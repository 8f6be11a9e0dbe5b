"""The legacy layout's two routes, on a stand-in for a databroker run (no server): the files
when they are readable here, else the server's arrays, checked against the documents."""

from types import SimpleNamespace

import h5py
import numpy as np
import pytest

from xanes_stream.store.legacy import (
    FROM_ARRAYS,
    FROM_DOCUMENTS,
    FROM_FILES,
    LegacyRunRefused,
    is_legacy_run,
    legacy_documents,
)

KEY = "cam_image"
SHAPE = [2, 4, 5]  # two exposures per event


class Array:
    def __init__(self, data):
        self.data, self.shape, self.dtype = data, data.shape, data.dtype

    def read(self):
        return self.data


def run(path, n_events=3, filled=None):
    """Documents of a one-stream run of ``n_events`` events whose frames are in ``path``, and
    a node whose server fills them as ``filled`` (default: the right frames)."""
    frames = np.arange(n_events * np.prod(SHAPE), dtype="u2").reshape(n_events, *SHAPE)
    resource = {"uid": "r1", "spec": "AD_HDF5", "root": "/", "resource_path": str(path)[1:],
                "resource_kwargs": {"frame_per_point": 2}, "path_semantics": "posix"}  # fmt: skip
    descriptor = {"uid": "d1", "name": "primary", "run_start": "s1",
                  "data_keys": {KEY: {"shape": SHAPE, "dtype": "array", "external": "FILESTORE:"},
                                "cam_ts": {"shape": [2], "dtype": "array", "external": "X:"},
                                "energy": {"shape": [], "dtype": "number"}}}  # fmt: skip
    datum_page = {"resource": "r1", "datum_id": [f"r1/{i}" for i in range(n_events)],
                  "datum_kwargs": {"point_number": list(range(n_events))}}  # fmt: skip
    events = [
        {"uid": f"e{i}", "descriptor": "d1", "seq_num": i + 1, "time": float(i),
         "data": {KEY: f"r1/{i}", "cam_ts": f"r1/{i}", "energy": 8300.0 + i},
         "timestamps": {KEY: 0.0, "cam_ts": 0.0, "energy": 0.0}, "filled": {KEY: False}}
        for i in range(n_events)
    ]  # fmt: skip
    stop = {"uid": "x", "run_start": "s1"}
    documents = [("start", {"uid": "s1", "time": 0.0}), ("descriptor", descriptor),
                 ("resource", resource), ("datum_page", datum_page),
                 *[("event", e) for e in events], ("stop", stop)]  # fmt: skip
    served = frames if filled is None else filled
    return Node({"primary": {"data": {KEY: Array(served)}}}), documents, frames


class Node(dict):
    """A databroker run as the Tiled client shows it: streams, each with ``data``."""

    specs = (SimpleNamespace(name="BlueskyRun", version="1"),)


@pytest.fixture
def h5file(tmp_path):
    path = tmp_path / "data" / "frames.h5"
    path.parent.mkdir()
    with h5py.File(path, "w") as f:
        f["/entry/data/data"] = np.zeros((6, 4, 5), "u2")
    return path


def test_only_databrokers_runs_are_legacy():
    legacy = SimpleNamespace(specs=[SimpleNamespace(name="BlueskyRun", version="1")])
    writer = SimpleNamespace(specs=[SimpleNamespace(name="BlueskyRun", version="3.0")])
    assert is_legacy_run(legacy) and not is_legacy_run(writer)


def test_files_inside_the_roots_are_read_by_the_router(h5file):
    node, documents, _ = run(h5file)
    out, source, note = legacy_documents(node, documents, KEY, [h5file.parent])
    assert (out, source, note) == (documents, FROM_FILES, None)


@pytest.mark.parametrize("where", ["outside", "missing"])
def test_files_not_readable_here_give_way_to_the_servers_arrays(h5file, tmp_path, where):
    node, documents, frames = run(h5file if where == "outside" else tmp_path / "gone.h5")
    roots = [tmp_path / "elsewhere"] if where == "outside" else [tmp_path]
    out, source, note = legacy_documents(node, documents, KEY, roots)
    assert source == FROM_ARRAYS
    assert ("outside the allowed roots" if where == "outside" else "does not exist") in note
    assert not {n for n, _ in out} & {"resource", "datum", "datum_page"}
    (descriptor,) = [d for n, d in out if n == "descriptor"]
    assert "external" not in descriptor["data_keys"][KEY]
    assert "cam_ts" not in descriptor["data_keys"]  # its datums are gone with the files
    events = [d for n, d in out if n == "event"]
    for i, event in enumerate(events):
        np.testing.assert_array_equal(event["data"][KEY], frames[i])
        assert "cam_ts" not in event["data"] and event["filled"][KEY] is True


@pytest.mark.parametrize(
    ("filled", "reason"),
    [
        (np.zeros((2, *SHAPE), "u2"), r"as \(2, 2, 4, 5\), where its 3 events"),
        (np.zeros((3, 1, 4, 5), "u2"), r"of shape \(2, 4, 5\)"),
    ],
)
def test_server_arrays_that_do_not_match_the_documents_are_refused(tmp_path, filled, reason):
    node, documents, _ = run(tmp_path / "gone.h5", filled=filled)
    with pytest.raises(LegacyRunRefused, match=reason):
        legacy_documents(node, documents, KEY, [tmp_path])


def test_an_event_naming_no_datum_of_the_run_is_refused(tmp_path):
    node, documents, _ = run(tmp_path / "gone.h5")
    documents = [(n, d) for n, d in documents if n != "datum_page"]
    with pytest.raises(LegacyRunRefused, match="names no datum of the run"):
        legacy_documents(node, documents, KEY, [tmp_path])


def test_a_run_without_camera_files_is_handed_on_as_it_is(tmp_path):
    node, documents, _ = run(tmp_path / "gone.h5")
    out, source, _ = legacy_documents(node, documents, "no_such_camera", [tmp_path])
    assert (out, source) == (documents, FROM_DOCUMENTS)
