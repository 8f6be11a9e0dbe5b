"""One bad run never delays another: runs that must be read back from Tiled but cannot be (an
orphan stop, a run whose documents came short and whose archive never comes) wait on their
own while a good scan's maps arrive in their usual time; the bad runs still get their record.
Real Tiled, the real 0MQ proxy, the service."""

import time
import uuid

import numpy as np
import pytest

from xanes_stream.sim.run import connect_publisher, run_simulated_experiment

pytestmark = pytest.mark.timeout(300)
ENERGIES = np.concatenate(
    [np.arange(8250, 8320, 10.0), np.arange(8320, 8370, 2.0), np.arange(8370, 8451, 10.0)]
)
BACKFILL = 30.0  # s the service waits for TiledWriter to finish a run it must re-read


@pytest.fixture(scope="module")
def live(start_pipeline):
    return start_pipeline(backfill_timeout=BACKFILL)


def publish_bad_runs(live) -> list[str]:
    """An orphan stop and a run whose frames never came, neither of them in Tiled."""
    orphan, short = uuid.uuid4().hex, uuid.uuid4().hex
    now = time.time()
    start = {"uid": short, "time": now, "scan_id": 501, "plan_name": "xanes_scan",
             "sample": "never archived", "xanes": {"references": ["NiO", "LiNiO2"]}}  # fmt: skip
    documents = [
        ("stop", {"uid": uuid.uuid4().hex, "run_start": orphan, "time": now,
                  "exit_status": "success", "num_events": {"primary": 40}}),
        ("start", start),
        ("stop", {"uid": uuid.uuid4().hex, "run_start": short, "time": now,
                  "exit_status": "success", "num_events": {"primary": 40}}),
    ]  # fmt: skip
    publisher = connect_publisher(live.proxy.in_address)
    try:
        for name, doc in documents:
            publisher(name, doc)
    finally:
        publisher.close()
    return [orphan, short]


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {timeout:g} s")


def test_runs_that_cannot_be_read_back_do_not_delay_a_good_scan(live):
    bad = publish_bad_runs(live)
    records = live.service.records
    wait_until(lambda: all(uid in records for uid in bad), 10, "the bad runs' records")
    (run,) = run_simulated_experiment(
        None, None, live.proxy.in_address, n_scans=1, detector="inline",
        data_dir=live.data_dir, shape=(48, 48), seed=51, energies=ENERGIES,
    )  # fmt: skip
    (record,) = live.service.wait_for([run.uid], BACKFILL * 3)
    assert record is not None and record.status == "done", record and record.reason
    # its maps came in their usual time, not after the bad runs' waits for Tiled
    assert record.latency < BACKFILL / 3, record.latency
    node = live.client["xanes"][run.uid]
    truth = run.truth  # and they are right: the good scan's fractions against the camera's truth
    names = node["fractions"].metadata["reference_names"]
    fitted = node["fractions"].read()[[names.index(n) for n in truth.references]]
    inside = truth.particles & (truth.thickness > 0.3 * truth.thickness.max())
    assert np.median(np.abs(fitted - truth.fractions)[:, inside]) < 0.05
    # the bad runs still get a record of why they have no maps, once their wait is over
    waiting = wait_until(
        lambda: (
            [r for uid in bad if (r := live.service.view.scan_record(uid)).status == "waiting"]
            if all(live.service.view.scan_record(uid).status == "waiting" for uid in bad)
            else None
        ),
        BACKFILL * 2,
        "the bad runs' records",
    )
    for bad_record in waiting:
        assert "cannot be read from Tiled yet" in bad_record.reason, bad_record.reason
