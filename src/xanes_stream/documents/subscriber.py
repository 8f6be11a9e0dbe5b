"""The safe 0MQ subscriber: bluesky's RemoteDispatcher, hardened, in a thread of its own.

Bluesky's ``RemoteDispatcher`` unpickles by default, prints rather than logs what it drops, and
stops for good on a message with an unknown document name. Here messages are decoded with the
msgpack codec (pickle only when explicitly enabled), anything unusable is logged and dropped,
and the subscriber keeps listening.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from bluesky.callbacks.zmq import RemoteDispatcher
from event_model import DocumentNames

from xanes_stream.documents import codec

log = logging.getLogger(__name__)

#: Larger messages are dropped unread (a 4k x 4k float32 frame inline is 64 MiB).
MAX_MESSAGE_BYTES = 256 * 1024 * 1024


class SafeRemoteDispatcher(RemoteDispatcher):
    """A RemoteDispatcher whose polling loop survives any message."""

    dropped = 0

    async def _poll(self):
        our_prefix = self._prefix
        while True:
            message = await self._socket.recv()
            if len(message) > MAX_MESSAGE_BYTES:
                self._drop(f"message of {len(message)} bytes exceeds {MAX_MESSAGE_BYTES}")
                continue
            try:
                prefix, name, payload = message.split(b" ", 2)
                name = name.decode()
                kind = DocumentNames[name]
            except (ValueError, UnicodeDecodeError, KeyError) as exc:
                self._drop(f"malformed message {message[:80]!r}: {type(exc).__name__} {exc}")
                continue
            if our_prefix and prefix != our_prefix:
                continue
            try:
                doc = self._deserializer(payload)
            except Exception as exc:
                self._drop(f"cannot decode {name} document: {exc}")
                continue
            self.loop.call_soon(self._process_safely, kind, doc)

    def _process_safely(self, kind, doc) -> None:
        try:
            self.process(kind, doc)
        except Exception as exc:  # callbacks are meant not to raise; never die if one does
            self._drop(f"{kind.name} document failed in a callback: {exc}")

    def _drop(self, why: str) -> None:
        type(self).dropped += 1
        log.error("dropped 0MQ message: %s", why)


class SubscriberThread:
    """Runs a :class:`SafeRemoteDispatcher` in a daemon thread; ``stop`` ends it cleanly."""

    def __init__(
        self, address: str, callback: Callable, *, prefix: bytes = b"", allow_pickle: bool = False
    ) -> None:
        self.address = address
        self.callback = callback
        self.prefix = prefix
        self.deserializer = (
            codec.pickle_deserializer_with_warning() if allow_pickle else codec.unpackb
        )
        self.dispatcher: SafeRemoteDispatcher | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zmq-subscriber", daemon=True)

    def _run(self) -> None:
        dispatcher = SafeRemoteDispatcher(
            self.address, prefix=self.prefix, deserializer=self.deserializer, strict=False
        )
        dispatcher.subscribe(self.callback)
        self.dispatcher = dispatcher
        dispatcher.loop.call_soon(self._ready.set)
        try:
            dispatcher.start()
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("0MQ subscriber stopped unexpectedly")

    def start(self, timeout: float = 10.0) -> SubscriberThread:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"0MQ subscriber to {self.address} did not start in {timeout} s")
        log.info("listening for documents on tcp://%s", self.address)
        return self

    def stop(self, timeout: float = 10.0) -> bool:
        dispatcher = self.dispatcher
        if dispatcher is not None and not dispatcher.loop.is_closed():

            def cancel():
                if dispatcher._task is not None:
                    dispatcher._task.cancel()

            try:
                dispatcher.loop.call_soon_threadsafe(cancel)
            except RuntimeError:
                pass
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()
