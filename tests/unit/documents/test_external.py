"""Frames stored outside the documents: read from a real HDF5 file inside an allowed root;
refused outside it, through ``..`` and through a symbolic link."""

import os

import h5py
import numpy as np
import pytest

from xanes_stream.documents.codec import DocumentError
from xanes_stream.documents.external import ExternalFrames, PathNotAllowed, confined_path

DATASET = "/entry/data/data"


@pytest.fixture
def detector(tmp_path):
    """An allowed root with one detector file of 5 frames, and a folder beside it."""
    root, outside = tmp_path / "detector", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    frames = np.random.default_rng(2).integers(0, 60000, (5, 12, 16)).astype(np.uint16)
    for folder in (root, outside):
        with h5py.File(folder / "scan.h5", "w") as f:
            f.create_dataset(DATASET, data=frames)
    return root, outside, frames


def _resource(path, uid="res-1", **changes):
    doc = {
        "uid": uid,
        "mimetype": "application/x-hdf5",
        "uri": f"file://localhost{path}",
        "parameters": {"dataset": DATASET},
    }
    return {**doc, **changes}


def _datum(start, stop, resource="res-1", **changes):
    return {"stream_resource": resource, "indices": {"start": start, "stop": stop}, **changes}


def test_frames_are_read_from_a_file_inside_the_root(detector):
    root, _, frames = detector
    external = ExternalFrames([root])
    external.add_resource(_resource(root / "scan.h5"))
    assert external.knows("res-1") and not external.knows("res-2")
    seq, got = external.read(_datum(1, 4))
    assert seq == [2, 3, 4]  # event seq_nums start at 1
    np.testing.assert_array_equal(got, frames[1:4])
    seq, got = external.read(_datum(4, 5, seq_nums={"start": 10, "stop": 11}))
    assert seq == [10]
    np.testing.assert_array_equal(got, frames[4:5])


def test_a_plain_path_and_a_nested_root_are_inside(detector):
    root, _, frames = detector
    assert confined_path(str(root / "scan.h5"), [root]) == (root / "scan.h5").resolve()
    external = ExternalFrames([root.parent / "other", root])  # any root will do
    external.add_resource(_resource(root / "scan.h5", mimetype="application/x-hdf5-smwr-slice"))
    np.testing.assert_array_equal(external.read(_datum(0, 5))[1], frames)


def test_a_file_outside_the_roots_is_refused(detector):
    root, outside, _ = detector
    external = ExternalFrames([root])
    with pytest.raises(PathNotAllowed, match="outside the allowed roots"):
        external.add_resource(_resource(outside / "scan.h5"))
    with pytest.raises(PathNotAllowed, match="none set"):
        ExternalFrames([]).add_resource(_resource(root / "scan.h5"))
    assert not external.knows("res-1")


def test_dot_dot_out_of_the_root_is_refused(detector):
    root, outside, _ = detector
    sneaky = f"{root}/../{outside.name}/scan.h5"
    assert os.path.exists(sneaky)  # the file is there: only the root keeps it out
    with pytest.raises(PathNotAllowed):
        ExternalFrames([root]).add_resource(_resource(sneaky))
    with pytest.raises(PathNotAllowed):
        confined_path(f"file://{root}/%2E%2E/{outside.name}/scan.h5", [root])  # quoted dots


def test_a_symbolic_link_out_of_the_root_is_refused(detector):
    root, outside, _ = detector
    (root / "link.h5").symlink_to(outside / "scan.h5")
    with pytest.raises(PathNotAllowed):
        ExternalFrames([root]).add_resource(_resource(root / "link.h5"))


def test_bad_resources_and_datums_are_document_errors(detector):
    root, _, _ = detector
    external = ExternalFrames([root])
    with pytest.raises(DocumentError, match="is neither HDF5 nor TIFF"):
        external.add_resource(_resource(root / "scan.h5", mimetype="image/tiff"))
    with pytest.raises(DocumentError, match="unsupported URI scheme 'http'"):
        external.add_resource(_resource(root / "scan.h5", uri=f"http://host{root}/scan.h5"))
    with pytest.raises(DocumentError, match="another host 'beamline'"):
        external.add_resource(_resource(root / "scan.h5", uri=f"file://beamline{root}/scan.h5"))
    with pytest.raises(DocumentError, match="no parameters.dataset"):
        external.add_resource(_resource(root / "scan.h5", parameters={}))
    external.add_resource(_resource(root / "scan.h5"))
    external.add_resource(_resource(root / "missing.h5", uid="res-2"))
    external.add_resource(_resource(root / "scan.h5", uid="res-3", parameters={"dataset": "x"}))
    with pytest.raises(DocumentError, match="unknown stream_resource 'res-9'"):
        external.read(_datum(0, 1, resource="res-9"))
    with pytest.raises(DocumentError, match="holds 2 of frames 3:7"):
        external.read(_datum(3, 7))
    with pytest.raises(DocumentError, match="cannot open .*missing.h5: No such file"):
        external.read(_datum(0, 1, resource="res-2"))
    with pytest.raises(DocumentError, match="scan.h5 has no dataset x"):
        external.read(_datum(0, 1, resource="res-3"))
