"""The one opener of document-named files: what it refuses, each with the file and the problem
named. Real HDF5 files and real symbolic links in a temporary folder."""

import os

import h5py
import numpy as np
import pytest

from xanes_stream.documents.codec import DocumentError
from xanes_stream.documents.external import ExternalFrames, datum_ranges
from xanes_stream.documents.opener import (
    PathNotAllowed,
    hdf5_dataset,
    open_confined,
    open_hdf5,
    resolve_confined,
)

SECRET = 7


@pytest.fixture
def folders(tmp_path):
    """An allowed root and, outside it, a file of secret frames."""
    root, outside = tmp_path / "detector", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    with h5py.File(outside / "secret.h5", "w") as f:
        f["d"] = np.full((2, 4, 4), SECRET, np.uint16)
    return root, outside


def _read(root, file, dataset="d"):
    external = ExternalFrames([root])
    external.add_resource(
        {
            "uid": "r",
            "mimetype": "application/x-hdf5",
            "uri": f"file://{file}",
            "parameters": {"dataset": dataset},
        }
    )
    return external, lambda: external.read(
        {"stream_resource": "r", "indices": {"start": 0, "stop": 2}}
    )


def test_an_external_link_out_of_the_root_is_refused(folders):
    root, outside = folders
    with h5py.File(root / "scan.h5", "w") as f:
        f["entry"] = h5py.ExternalLink(str(outside / "secret.h5"), "/d")
    _, read = _read(root, root / "scan.h5", "entry")
    with pytest.raises(PathNotAllowed, match=r"scan.h5: entry goes through an external link"):
        read()


def test_a_virtual_dataset_is_refused(folders):
    root, outside = folders
    layout = h5py.VirtualLayout((2, 4, 4), np.uint16)
    layout[:] = h5py.VirtualSource(str(outside / "secret.h5"), "d", shape=(2, 4, 4))
    with h5py.File(root / "vds.h5", "w") as f:
        f.create_virtual_dataset("d", layout)
    _, read = _read(root, root / "vds.h5")
    with pytest.raises(PathNotAllowed, match=r"vds.h5: d is a virtual dataset \(of .*secret.h5"):
        read()


def test_external_raw_storage_is_refused(folders):
    root, outside = folders
    (outside / "raw.bin").write_bytes(np.full((2, 4, 4), SECRET, np.uint16).tobytes())
    with h5py.File(root / "ext.h5", "w") as f:
        f.create_dataset("d", (2, 4, 4), np.uint16, external=[(str(outside / "raw.bin"), 0, 64)])
    _, read = _read(root, root / "ext.h5")
    with pytest.raises(PathNotAllowed, match=r"ext.h5: d keeps its data in other files"):
        read()


def test_a_soft_link_inside_the_file_is_followed(folders):
    root, _ = folders
    frames = np.arange(32, dtype=np.uint16).reshape(2, 4, 4)
    with h5py.File(root / "nexus.h5", "w") as f:
        f["entry/instrument/detector/data"] = frames
        f["entry/data/data"] = h5py.SoftLink("/entry/instrument/detector/data")
    _, read = _read(root, root / "nexus.h5", "/entry/data/data")
    np.testing.assert_array_equal(read()[1], frames)


def test_a_soft_link_through_an_external_link_is_refused(folders):
    root, outside = folders
    with h5py.File(root / "scan.h5", "w") as f:
        f["ext"] = h5py.ExternalLink(str(outside / "secret.h5"), "/")
        f["data"] = h5py.SoftLink("/ext/d")
    _, read = _read(root, root / "scan.h5", "data")
    with pytest.raises(PathNotAllowed, match="external link"):
        read()


def test_a_file_swapped_for_a_link_after_its_check_is_refused(folders):
    root, outside = folders
    with h5py.File(root / "scan.h5", "w") as f:
        f["d"] = np.zeros((2, 4, 4), np.uint16)
    _, read = _read(root, root / "scan.h5")
    (root / "scan.h5").unlink()
    (root / "scan.h5").symlink_to(outside / "secret.h5")  # after the stream_resource
    with pytest.raises(PathNotAllowed, match="scan.h5 became a symbolic link"):
        read()


def test_a_folder_swapped_for_a_link_is_caught_on_the_opened_file(folders):
    root, outside = folders
    (root / "run").mkdir()
    path = resolve_confined(str(root / "run" / "secret.h5"), [root])
    (root / "run").rmdir()
    (root / "run").symlink_to(outside)  # the folder, not the file, is now a link
    with pytest.raises(PathNotAllowed, match=r"is in fact .*elsewhere/secret.h5, outside"):
        with open_confined(path, [root]):
            pass


def test_a_fifo_and_a_folder_are_not_files(folders):
    root, _ = folders
    os.mkfifo(root / "pipe.h5")
    with pytest.raises(PathNotAllowed, match="pipe.h5 is not a regular file"):
        with open_confined(resolve_confined(str(root / "pipe.h5"), [root]), [root]):
            pass
    with pytest.raises(DocumentError, match="cannot open|not a regular file"):
        with open_confined(root, [root]):
            pass


def test_what_hdf5_holds_is_checked(folders):
    root, _ = folders
    with h5py.File(root / "odd.h5", "w") as f:
        f["group/x"] = 1
        f["text"] = np.array([b"a", b"b"])
    with open_hdf5(root / "odd.h5", [root]) as handle:
        with pytest.raises(DocumentError, match="group is not a dataset"):
            hdf5_dataset(handle, "group", root / "odd.h5")
        with pytest.raises(DocumentError, match="not numeric frames"):
            hdf5_dataset(handle, "text", root / "odd.h5")
        with pytest.raises(DocumentError, match="group/x/y is not a dataset of the file"):
            hdf5_dataset(handle, "group/x/y", root / "odd.h5")
    (root / "notes.h5").write_text("not HDF5")
    with pytest.raises(DocumentError, match="notes.h5 is not a readable HDF5 file"):
        with open_hdf5(root / "notes.h5", [root]):
            pass


@pytest.mark.parametrize(
    ("datum", "match"),
    [
        ({"indices": {"start": 0, "stop": 10**12}}, "at most 1000 frames"),
        ({"indices": {"start": 5, "stop": 2}}, "frames 5:2"),
        ({"indices": {"start": -3, "stop": 2}}, "frames -3:2"),
        ({"indices": {"start": 0, "stop": 2}, "seq_nums": {"start": 1, "stop": 10**9}}, "events"),
        ({"indices": {"start": 0, "stop": 2.5}}, "not an integer"),
        ({"indices": {"start": True, "stop": 2}}, "not an integer"),
        ({"indices": "0:2"}, "no indices"),
    ],
)
def test_datum_ranges_are_checked_before_anything_is_allocated(datum, match):
    with pytest.raises(DocumentError, match=match):
        datum_ranges(datum, max_frames=1000)


def test_a_read_larger_than_the_budget_is_refused(folders):
    root, _ = folders
    with h5py.File(root / "big.h5", "w") as f:  # declared big, nothing written: sparse
        f.create_dataset("d", (1000, 2048, 2048), np.float32, chunks=(1, 2048, 2048))
    external = ExternalFrames([root], max_bytes=64 * 2**20)
    external.add_resource(
        {
            "uid": "r",
            "mimetype": "application/x-hdf5",
            "uri": str(root / "big.h5"),
            "parameters": {"dataset": "d"},
        }
    )
    with pytest.raises(DocumentError, match=r"big.h5: frames 0:900 of d .* more than the 64 MiB"):
        external.read({"stream_resource": "r", "indices": {"start": 0, "stop": 900}})
