"""The 0MQ subscriber: bluesky's real Publisher through a real proxy, and raw malformed frames
from a PUB socket. Every wait is bounded; ports and processes are freed at the end."""

import logging
import pickle
import threading
import time

import numpy as np
import pytest
import zmq
from bluesky.callbacks.zmq import Publisher
from event_model import compose_run

from xanes_stream.devtools.launcher import start_proxy
from xanes_stream.documents import codec, subscriber
from xanes_stream.documents.subscriber import SubscriberThread
from xanes_stream.errors import XanesStreamError

pytestmark = pytest.mark.timeout(120)
WAIT = 10.0


class Inbox:
    """The documents a subscriber hands on, for a test to wait on."""

    def __init__(self, fail_on: str | None = None):
        self.docs: list[tuple[str, object]] = []
        self.fail_on = fail_on
        self._changed = threading.Condition()

    def __call__(self, name, doc):
        if self.fail_on is not None and isinstance(doc, dict) and doc.get("uid") == self.fail_on:
            raise RuntimeError("a callback that raises")
        with self._changed:
            self.docs.append((name, doc))
            self._changed.notify_all()

    def uids(self) -> list:
        return [doc.get("uid") for _, doc in self.docs if isinstance(doc, dict)]

    def wait_for(self, uid: str, timeout: float = WAIT) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: uid in self.uids(), timeout)


def settle(send, *inboxes, timeout: float = WAIT) -> None:
    """Send probe starts until every inbox has one: the subscriptions have reached the PUB."""
    deadline = time.monotonic() + timeout
    n = 0
    while not all(inbox.uids() for inbox in inboxes):
        assert time.monotonic() < deadline, "the subscribers never received a probe"
        n += 1
        send("start", {"uid": f"probe-{n}", "time": 0.0})
        time.sleep(0.05)
    for inbox in inboxes:
        inbox.docs.clear()


@pytest.fixture(scope="module")
def proxy():
    with start_proxy() as running:
        yield running


@pytest.fixture
def subscribers():
    """Start subscribers; every one is stopped (and must stop promptly) at the end."""
    started = []

    def start(*args, **kwargs):
        started.append(SubscriberThread(*args, **kwargs).start())
        return started[-1]

    yield start
    for sub in started:
        assert sub.stop(5.0)


def a_run(uid_prefix: str = ""):
    run = compose_run(metadata={"plan_name": "xanes_scan", "xanes": {"sample": uid_prefix}})
    bundle = run.compose_descriptor(
        name="primary",
        data_keys={
            "camera_image": {"source": "sim", "dtype": "array", "shape": [4, 5]},
            "energy": {"source": "sim", "dtype": "number", "shape": []},
        },
    )
    image = np.arange(20, dtype=np.uint16).reshape(4, 5)
    event = bundle.compose_event(
        data={"camera_image": image, "energy": 8333.0},
        timestamps={"camera_image": 0.0, "energy": 0.0},
    )
    stop = run.compose_stop()
    return [
        ("start", run.start_doc),
        ("descriptor", bundle.descriptor_doc),
        ("event", event),
        ("stop", stop),
    ]


def test_documents_from_bluesky_publishers_through_the_proxy(proxy, subscribers):
    """Both forms bluesky's Publisher sends (empty prefix: the message starts with b' ', and a
    prefix) arrive whole, arrays included; a prefixed subscriber takes only its prefix."""
    everything, ours = Inbox(), Inbox()
    subscribers(proxy.out_address, everything)
    subscribers(proxy.out_address, ours, prefix=b"xanes")
    plain = Publisher(proxy.in_address, serializer=codec.packb)
    prefixed = Publisher(proxy.in_address, prefix=b"xanes", serializer=codec.packb)
    try:
        settle(prefixed, everything, ours)
        theirs, mine = a_run("theirs"), a_run("mine")
        for name, doc in theirs:
            plain(name, doc)
        assert everything.wait_for(theirs[-1][1]["uid"])
        for name, doc in mine:
            prefixed(name, doc)
        assert everything.wait_for(mine[-1][1]["uid"]) and ours.wait_for(mine[-1][1]["uid"])
    finally:
        plain.close()
        prefixed.close()
    assert [name for name, _ in ours.docs] == ["start", "descriptor", "event", "stop"]
    assert ours.uids() == [doc["uid"] for _, doc in mine]
    assert everything.uids() == [doc["uid"] for _, doc in theirs + mine]
    _, event = ours.docs[2]
    image = event["data"]["camera_image"]
    assert image.dtype == np.uint16 and image.shape == (4, 5)
    np.testing.assert_array_equal(image, np.arange(20).reshape(4, 5))
    assert event["data"]["energy"] == 8333.0


def test_pickle_is_refused_unless_allowed(proxy, subscribers, caplog):
    """bluesky's default serializer is pickle: dropped with a hint, unless allow_pickle."""
    refusing, allowing = Inbox(), Inbox()
    refuser = subscribers(proxy.out_address, refusing)
    subscribers(proxy.out_address, allowing, allow_pickle=True)
    publisher = Publisher(proxy.in_address)  # pickle.dumps
    try:
        with caplog.at_level(logging.ERROR, logger=subscriber.__name__):
            deadline = time.monotonic() + WAIT
            while not (allowing.uids() and refuser.dropped):
                assert time.monotonic() < deadline, "no pickled document got through"
                publisher("start", {"uid": "pickled", "time": 0.0})
                time.sleep(0.05)
    finally:
        publisher.close()
    assert refusing.docs == []
    assert "pickled" in allowing.uids()
    assert "pickle is refused unless explicitly allowed" in caplog.text


def raw_frames(prefix: bytes = b"") -> list:
    """Messages no publisher should send: each must be logged and dropped."""
    good = codec.packb({"uid": "x", "time": 0.0})
    return [
        [b"no-spaces-at-all"],
        [prefix + b" start"],  # no payload field
        [prefix + b" nonsense " + good],  # not a document name
        [prefix + b" st\xffart " + good],  # name not utf-8
        [prefix + b" start \xc1"],  # not msgpack
        [prefix + b" start " + good + b"trailing"],
        [prefix + b" event " + codec.msgpack.packb(msgpack_object_array())],
        [prefix + b" start " + pickle.dumps({"uid": "pickled"})],
        [prefix + b" start", good],  # multipart
        [prefix + b" start " + codec.packb({"uid": "raises"})],  # the callback raises
    ]


def msgpack_object_array():
    """An array ExtType claiming dtype object (msgpack_numpy would unpickle it)."""
    payload = codec.msgpack.packb(["|O", [1], b"\x00" * 8], use_bin_type=True)
    return {"uid": "obj", "data": codec.msgpack.ExtType(codec.EXT_NDARRAY, payload)}


def test_malformed_frames_are_logged_and_dropped(subscribers, caplog):
    """Raw frames from a PUB socket: every bad one is dropped with a log line, messages of
    another prefix are ignored, and the subscriber goes on to the next good document."""
    context = zmq.Context()
    pub = context.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    try:
        port = pub.bind_to_random_port("tcp://127.0.0.1")
        inbox = Inbox(fail_on="raises")
        sub = subscribers(f"127.0.0.1:{port}", inbox, prefix=b"ours")

        def send(name, doc):
            pub.send(b"ours " + name.encode() + b" " + codec.packb(doc))

        settle(send, inbox)
        bad = raw_frames(b"ours")
        with caplog.at_level(logging.ERROR, logger=subscriber.__name__):
            for frames in bad:
                pub.send_multipart(frames)
            pub.send(b"theirs start " + codec.packb({"uid": "theirs", "time": 0.0}))
            send("stop", {"uid": "last", "time": 0.0})
            assert inbox.wait_for("last")
        assert inbox.uids() == ["last"]
        assert sub.dropped == len(bad)
        lines = [r.getMessage() for r in caplog.records if r.name == subscriber.__name__]
        assert len(lines) == len(bad) and all("dropped 0MQ message" in line for line in lines)
        started = time.monotonic()
        assert sub.stop(5.0) and time.monotonic() - started < 2.0
        assert not sub.alive
    finally:
        pub.close(linger=0)
        context.term()


def test_an_unusable_address_is_an_error_at_once():
    started = time.monotonic()
    with pytest.raises(XanesStreamError, match="cannot subscribe"):
        SubscriberThread("nosuchtransport://here", Inbox()).start()
    assert time.monotonic() - started < 5.0
