"""A bounded, numbered log of what the service did, for pages and status clients to follow."""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque


class EventLog:
    """Append-only events ``{"seq", "time", "kind", ...}``; readers ask for those after a seq.

    Only the newest ``capacity`` events are kept; a reader that fell further behind gets what
    is left and should re-read the full state (``seq`` tells it so: it jumps).
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._events: deque[dict] = deque(maxlen=capacity)
        self._seq = itertools.count(1)
        self._changed = threading.Condition()

    def publish(self, kind: str, **payload) -> dict:
        with self._changed:
            event = {"seq": next(self._seq), "time": time.time(), "kind": kind, **payload}
            self._events.append(event)
            self._changed.notify_all()
        return event

    @property
    def last_seq(self) -> int:
        with self._changed:
            return self._events[-1]["seq"] if self._events else 0

    def since(self, seq: int, timeout: float = 0.0) -> list[dict]:
        """Events newer than ``seq``, waiting up to ``timeout`` s for the first one."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                newer = [e for e in self._events if e["seq"] > seq]
                remaining = deadline - time.monotonic()
                if newer or remaining <= 0:
                    return newer
                self._changed.wait(remaining)
