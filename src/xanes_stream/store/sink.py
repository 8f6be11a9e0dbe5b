"""What results are written to: Tiled (:class:`~xanes_stream.store.tiled_store.TiledResultStore`)
or the local spool while Tiled is away (:class:`~xanes_stream.store.spool.Spool`)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from xanes_stream.errors import XanesStreamError
from xanes_stream.pipeline.results import Maps

__all__ = ["ResultConflict", "ResultSink"]


class ResultConflict(XanesStreamError):
    """A result refused because the store already holds good maps of that raw uid from another
    run: those are kept. ``uri`` is where they are; ``kept`` their ``scan_id`` and ``sample``."""

    def __init__(self, message: str, uri: str, kept: dict) -> None:
        super().__init__(message)
        self.uri = uri
        self.kept = kept


@runtime_checkable
class ResultSink(Protocol):
    """Takes the result of one raw run: its maps, or the record that it has none.

    A sink may refuse a result with :class:`ResultConflict` (the Tiled store does when good
    maps of the uid, from another run, are already there); the local spool never refuses.
    """

    def write_maps(self, uid: str, maps: Maps, metadata: dict) -> str:
        """Write the maps of raw run ``uid`` with ``metadata``; returns where they now are."""
        ...

    def write_failure(self, uid: str, reason: str, metadata: dict) -> str:
        """Record that raw run ``uid`` has no maps, and why; returns where the record is."""
        ...
