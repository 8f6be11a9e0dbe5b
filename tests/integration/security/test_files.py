"""Files that documents name, through the real ``serve``: HDF5 links out of the detector folder,
virtual datasets, external storage and a file swapped for a link after its check are refused;
the run's failed record in Tiled names the file and the problem; no secret value is read."""

import time
import uuid

import h5py
import numpy as np
import pytest

from tests.helpers.runs import a_run

pytestmark = pytest.mark.timeout(300)
SECRET = 4242


@pytest.fixture(scope="module")
def served(serve, tmp_path_factory):
    served = serve()
    outside = tmp_path_factory.mktemp("outside")
    with h5py.File(outside / "secret.h5", "w") as f:
        f["d"] = np.full((3, 8, 8), SECRET, np.uint16)
    served.secret = outside / "secret.h5"
    return served


def _run_reading(file, dataset="data"):
    """An energy scan whose 3 primary frames come from ``file``: its documents up to the
    stream_resource, and from the stream_datum on."""
    docs = a_run(n=3)
    uid = docs[0][1]["uid"]
    primary = next(d for n, d in docs if n == "descriptor" and d["name"] == "primary")
    for name, doc in docs:
        if name == "event" and doc["descriptor"] == primary["uid"]:
            doc["data"].pop("camera_image")
            doc["filled"] = {}
    resource = {"uid": str(uuid.uuid4()), "run_start": uid, "data_key": "camera_image",
                "mimetype": "application/x-hdf5", "uri": f"file://localhost{file}",
                "parameters": {"dataset": dataset}}  # fmt: skip
    datum = {"uid": f"{resource['uid']}/0", "stream_resource": resource["uid"],
             "descriptor": primary["uid"], "indices": {"start": 0, "stop": 3},
             "seq_nums": {"start": 1, "stop": 4}}  # fmt: skip
    at = next(i for i, (n, d) in enumerate(docs) if d is primary) + 1
    return uid, [*docs[:at], ("stream_resource", resource)], [("stream_datum", datum), *docs[at:]]


def _publish(served, file, dataset="data", between=None):
    uid, first, rest = _run_reading(file, dataset)
    served.publish(first)
    if between is not None:
        time.sleep(1.0)  # the stream_resource has been checked
        between()
    served.publish(rest)
    return served.record(uid)


def _refused(record, *words):
    assert record["status"] == "failed", record
    for word in words:
        assert word in record["reason"], record["reason"]
    assert str(SECRET) not in str(record.get("summary"))


def test_an_external_link_out_of_the_folder_is_refused(served):
    file = served.data_dir / "linked.h5"
    with h5py.File(file, "w") as f:
        f["data"] = h5py.ExternalLink(str(served.secret), "/d")
    _refused(_publish(served, file), str(file), "external link", str(served.secret))


def test_a_virtual_dataset_is_refused(served):
    file = served.data_dir / "virtual.h5"
    layout = h5py.VirtualLayout((3, 8, 8), np.uint16)
    layout[:] = h5py.VirtualSource(str(served.secret), "d", shape=(3, 8, 8))
    with h5py.File(file, "w") as f:
        f.create_virtual_dataset("data", layout)
    _refused(_publish(served, file), str(file), "virtual dataset", str(served.secret))


def test_external_raw_storage_is_refused(served):
    raw = served.secret.with_suffix(".raw")
    raw.write_bytes(np.full((3, 8, 8), SECRET, np.uint16).tobytes())
    file = served.data_dir / "external.h5"
    with h5py.File(file, "w") as f:
        f.create_dataset("data", (3, 8, 8), np.uint16, external=[(str(raw), 0, 3 * 128)])
    _refused(_publish(served, file), str(file), "keeps its data in other files", str(raw))


def test_a_file_swapped_for_a_link_after_its_check_is_refused(served):
    file = served.data_dir / "swapped.h5"
    with h5py.File(file, "w") as f:
        f["data"] = np.full((3, 8, 8), 500, np.uint16)

    def swap():
        file.unlink()
        file.symlink_to(served.secret)

    _refused(_publish(served, file, "d", between=swap), str(file), "symbolic link")
