"""The event log pages and status clients follow."""

import threading

from xanes_stream.live.events import EventLog


def test_readers_get_events_after_their_seq_in_order():
    log = EventLog()
    for i in range(5):
        log.publish("scan", n=i)
    assert [e["n"] for e in log.since(2)] == [2, 3, 4]
    assert log.since(log.last_seq) == []


def test_a_waiting_reader_wakes_on_publish():
    log = EventLog()
    threading.Timer(0.05, log.publish, args=("scan",), kwargs={"n": 1}).start()
    assert [e["n"] for e in log.since(0, timeout=10)] == [1]


def test_only_the_newest_events_are_kept():
    log = EventLog(capacity=3)
    for i in range(10):
        log.publish("scan", n=i)
    assert [e["seq"] for e in log.since(0)] == [8, 9, 10]
