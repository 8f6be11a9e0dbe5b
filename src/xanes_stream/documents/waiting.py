"""Events and frames of one run that wait for each other, bounded.

A frame stored in a file comes in a ``stream_datum``, its energy in an ``event``; either may
come first. What waits is held here, at most ``max_items`` events and frames each, the frames'
bytes counted (:attr:`Waiting.nbytes`) so that the run's memory budget includes them.
"""

from __future__ import annotations

import numpy as np

from xanes_stream.documents.codec import DocumentError

__all__ = ["Waiting"]

Key = tuple[str, int]  # (descriptor uid, seq_num)


class Waiting:
    """Event data waiting for its frame, and frames waiting for their event."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self.events: dict[Key, dict] = {}
        self.frames: dict[Key, np.ndarray] = {}
        self.nbytes = 0

    def hold_event(self, key: Key, data: dict) -> None:
        if key not in self.events and len(self.events) >= self.max_items:
            raise DocumentError(f"more than {self.max_items} events wait for their frames")
        self.events[key] = data

    def hold_frame(self, key: Key, frame: np.ndarray) -> None:
        if key not in self.frames and len(self.frames) >= self.max_items:
            raise DocumentError(f"more than {self.max_items} frames wait for their events")
        self.take_frame(key)
        self.frames[key] = frame
        self.nbytes += frame.nbytes

    def take_frame(self, key: Key) -> np.ndarray | None:
        frame = self.frames.pop(key, None)
        if frame is not None:
            self.nbytes -= frame.nbytes
        return frame

    def clear(self) -> None:
        self.events.clear()
        self.frames.clear()
        self.nbytes = 0

    def lost(self, primary: set[str]) -> list[str]:
        """What is still waiting at the stop (of the ``primary`` descriptors' events)."""
        lost = [f"{len(self.frames)} frames whose events were not received"] if self.frames else []
        unmatched = sum(1 for key in self.events if key[0] in primary)
        if unmatched:
            lost.append(f"{unmatched} events whose frames were not received")
        return lost
