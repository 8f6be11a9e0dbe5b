"""The safe 0MQ subscriber: documents from the proxy, decoded safely, in a thread of its own.

It speaks bluesky's wire format on pyzmq's public API alone (bluesky's ``RemoteDispatcher``
needs its private parts overridden to survive bad input). Bluesky's ``Publisher`` sends each
document as one single-part message ``prefix + b" " + name + b" " + payload``; the prefix may
be empty (the message then starts with a space) and never contains a space; ``name`` is a
document name (``start``, ``event``, ...) and ``payload`` the serialized document.

Payloads are decoded with the msgpack codec (pickle only when explicitly enabled); anything
unusable (multipart, not three fields, unknown name, undecodable, a callback that raises) is
logged and dropped, and the subscriber keeps listening. A message larger than
``max_message_bytes`` is refused by 0MQ itself (``ZMQ_MAXMSGSIZE``) before any of it is held:
0MQ then drops the connection to the proxy (for good), so the subscriber logs it and connects
again (documents sent meanwhile are lost; their runs are read back from Tiled at their stop).
Messages with another prefix than ours (when ours is not empty) are ignored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import zmq
from event_model import DocumentNames

from xanes_stream.documents import codec
from xanes_stream.errors import XanesStreamError

log = logging.getLogger(__name__)

#: Larger messages are refused by 0MQ unread (a 4k x 4k float32 frame inline is 64 MiB).
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
#: The longest the subscriber thread waits for a message before looking whether to stop (ms).
POLL_MS = 100
_NAMES = frozenset(name.name for name in DocumentNames)


def _endpoint(address: str) -> str:
    """``host:port`` as bluesky takes it, or a full 0MQ endpoint (``tcp://``, ``ipc://``)."""
    return address if "://" in address else f"tcp://{address}"


class SubscriberThread:
    """A SUB socket on the proxy's out address, read in a daemon thread; ``stop`` ends it.

    Parameters
    ----------
    address : str
        The proxy's out address, ``host:port`` or a 0MQ endpoint.
    callback : callable
        Called as ``callback(name, doc)`` for each document, in the subscriber's thread.
    prefix : bytes, optional
        Only messages with this prefix are taken; empty: all.
    allow_pickle : bool, optional
        Unpickle payloads (runs code from whoever can publish); default: the msgpack codec.
    max_message_bytes : int, optional
        Larger messages are refused by 0MQ before they are received.
    """

    def __init__(
        self,
        address: str,
        callback: Callable,
        *,
        prefix: bytes = b"",
        allow_pickle: bool = False,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        if not isinstance(prefix, bytes) or b" " in prefix:
            raise ValueError(f"prefix {prefix!r} must be bytes without b' '")
        self.address = address
        self.callback = callback
        self.prefix = prefix
        self.deserializer: Callable[[Any], Any] = (
            codec.pickle_deserializer_with_warning() if allow_pickle else codec.unpackb
        )
        self.allow_pickle = allow_pickle
        self.max_message_bytes = int(max_message_bytes)
        self.disconnects = 0  # connections to the proxy 0MQ dropped (an oversized message, ...)
        self.dropped = 0  # messages logged and dropped
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._error: str | None = None  # why the socket could not be set up
        self._thread = threading.Thread(target=self._run, name="zmq-subscriber", daemon=True)

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> SubscriberThread:
        """Start the thread; return once its socket is connected and subscribed.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait for the socket.

        Returns
        -------
        SubscriberThread
            self, listening.
        """
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"0MQ subscriber to {self.address} did not start in {timeout} s")
        if self._error is not None:
            raise XanesStreamError(f"cannot subscribe to 0MQ at {self.address}: {self._error}")
        log.info("listening for documents on %s", _endpoint(self.address))
        return self

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop listening (within about :data:`POLL_MS` plus the document in hand).

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait for the thread.

        Returns
        -------
        bool
            Whether the thread has ended.
        """
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        """Whether the subscriber thread runs."""
        return self._thread.is_alive()

    def _run(self) -> None:
        context = zmq.Context()
        try:
            socket = context.socket(zmq.SUB)
            socket.setsockopt(zmq.LINGER, 0)
            socket.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)  # before any is read
            monitor = socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
            socket.connect(_endpoint(self.address))
            socket.setsockopt(zmq.SUBSCRIBE, b"")
        except zmq.ZMQError as exc:
            self._error = str(exc)
            self._ready.set()
            context.destroy(linger=0)
            return
        self._ready.set()
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        try:
            while not self._stopping.is_set():
                ready = dict(poller.poll(POLL_MS))
                if monitor in ready:
                    self._disconnected(monitor, socket)
                if socket in ready:
                    self._handle(socket.recv_multipart())
        except Exception:
            log.exception("0MQ subscriber stopped unexpectedly")
        finally:
            socket.disable_monitor()
            monitor.close(linger=0)
            socket.close(linger=0)
            context.term()

    def _disconnected(self, monitor, socket) -> None:
        """The connection to the proxy was dropped: say so, and connect again (0MQ gives up
        for good on a connection that sent an oversized message)."""
        while monitor.poll(0):
            monitor.recv_multipart()
        self.disconnects += 1
        log.error(
            "0MQ dropped the connection to the proxy at %s (a message larger than %d bytes "
            "is refused unread; documents sent meanwhile are lost and their runs read "
            "back from Tiled); connecting again",
            _endpoint(self.address),
            self.max_message_bytes,
        )
        try:
            socket.disconnect(_endpoint(self.address))  # if 0MQ still retries: not twice
        except zmq.ZMQError:
            pass
        socket.connect(_endpoint(self.address))

    # --- messages ----------------------------------------------------------------------------
    def _handle(self, frames: list[bytes]) -> None:
        if len(frames) != 1:
            self._drop(f"a message of {len(frames)} parts (bluesky sends one)")
            return
        (message,) = frames
        first = message.find(b" ")
        second = message.find(b" ", first + 1) if first >= 0 else -1
        if second < 0:
            self._drop(f"malformed message {message[:80]!r}: not prefix, name and document")
            return
        if self.prefix and message[:first] != self.prefix:
            return
        try:
            name = message[first + 1 : second].decode()
        except UnicodeDecodeError as exc:
            self._drop(f"malformed message {message[:80]!r}: UnicodeDecodeError {exc}")
            return
        if name not in _NAMES:
            self._drop(f"malformed message {message[:80]!r}: unknown document name {name!r}")
            return
        payload = memoryview(message)[second + 1 :]  # no copy of a large frame
        try:
            doc = self.deserializer(payload)
        except Exception as exc:
            hint = ""
            if not self.allow_pickle and payload[:1] == b"\x80":
                hint = " (pickled? pickle is refused unless explicitly allowed)"
            self._drop(f"cannot decode {name} document: {exc}{hint}")
            return
        try:
            self.callback(name, doc)
        except Exception as exc:  # callbacks are meant not to raise; never die if one does
            self._drop(f"{name} document failed in a callback: {exc}")

    def _drop(self, why: str) -> None:
        self.dropped += 1
        log.error("dropped 0MQ message: %s", why)
