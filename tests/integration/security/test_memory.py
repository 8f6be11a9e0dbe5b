"""Bounded memory per message, per document and per client, measured on the real ``serve``
process (its peak resident memory, VmHWM from /proc) while hostile documents come through the
real 0MQ proxy; each hostile run gets a failed record in Tiled saying why."""

import time
import uuid

import h5py
import numpy as np
import pytest

from tests.helpers.runs import a_run
from xanes_stream.documents import codec

pytestmark = pytest.mark.timeout(300)
MIB = 2**20


@pytest.fixture(scope="module")
def served(serve):
    return serve(max_message_bytes=8 * MIB, max_runs_in_flight=4)


def test_an_oversized_message_is_refused_before_it_is_received(served):
    """(a) 0MQ's MAXMSGSIZE: a 300 MiB message never reaches the service's memory."""
    before = served.peak_rss_mb()
    big = np.zeros(300 * MIB // 8)  # one "start" whose payload is 300 MiB
    served.publisher._socket.send(b" start " + codec.packb({"uid": "big", "x": big}))
    del big
    served.wait_log(r"0MQ dropped the connection to the proxy .* larger than 8388608 bytes")
    served.settle()  # it connects again and goes on
    grew = served.peak_rss_mb() - before
    print(f"serve peak RSS {served.peak_rss_mb():.0f} MiB (grew {grew:.0f} MiB)")
    assert grew < 100, f"the service's peak memory grew by {grew:.0f} MiB"


def test_a_stream_datum_announcing_a_huge_range_allocates_nothing(served):
    """(b) ~300 bytes announcing 2e7 frames: refused from its numbers, with a record."""
    file = served.data_dir / "two-frames.h5"
    with h5py.File(file, "w") as f:
        f["data"] = np.zeros((2, 8, 8), np.uint16)
    docs = a_run(n=3)
    uid = docs[0][1]["uid"]
    primary = next(d for n, d in docs if n == "descriptor" and d["name"] == "primary")
    resource = {"uid": str(uuid.uuid4()), "run_start": uid, "data_key": "camera_image",
                "mimetype": "application/x-hdf5", "uri": f"file://localhost{file}",
                "parameters": {"dataset": "data"}}  # fmt: skip
    datum = {"uid": f"{resource['uid']}/0", "stream_resource": resource["uid"],
             "descriptor": primary["uid"], "indices": {"start": 0, "stop": 2},
             "seq_nums": {"start": 1, "stop": 20_000_001}}  # fmt: skip
    at = next(i for i, (n, d) in enumerate(docs) if d is primary) + 1
    docs[at:at] = [("stream_resource", resource), ("stream_datum", datum)]
    assert len(codec.packb(datum)) < 400
    before = served.peak_rss_mb()
    served.publish(docs)
    record = served.record(uid)
    assert record["status"] == "failed"
    assert "stream_datum announces events 1:20000001 for frames 0:2" in record["reason"]
    grew = served.peak_rss_mb() - before
    print(f"serve peak RSS {served.peak_rss_mb():.0f} MiB (grew {grew:.0f} MiB)")
    assert grew < 100, f"the service's peak memory grew by {grew:.0f} MiB"


def test_runs_that_never_stop_are_evicted_with_a_record(served):
    """(c) 12 starts, no stops, 4 in flight at most: the 8 oldest get failed records."""
    runs = [a_run(n=3, stop=False) for _ in range(12)]
    for docs in runs:
        served.publish(docs)
    for docs in runs[:8]:
        record = served.record(docs[0][1]["uid"])
        assert record["status"] == "failed" and "evicted before its stop" in record["reason"]
    time.sleep(1.0)
    client = served.tiled.client()
    assert all(docs[0][1]["uid"] not in client["xanes"] for docs in runs[8:])  # still followed


def test_a_start_announcing_a_scan_too_large_fails_at_the_start_with_a_record(served):
    """(d) 1e5 energies of 512 x 512 frames (100 GiB): a failed record, no MemoryError."""
    docs = a_run(n=100_000, shape=(512, 512))
    uid = docs[0][1]["uid"]
    before = served.peak_rss_mb()
    served.publish(docs)
    record = served.record(uid)
    assert record["status"] == "failed"
    assert "100000 frames of (512, 512) would take 100000 MiB" in record["reason"]
    assert "max_scan_bytes" in record["reason"]
    grew = served.peak_rss_mb() - before
    print(f"serve peak RSS {served.peak_rss_mb():.0f} MiB (grew {grew:.0f} MiB)")
    assert grew < 100, f"the service's peak memory grew by {grew:.0f} MiB"
