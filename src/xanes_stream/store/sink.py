"""What results are written to: Tiled (:class:`~xanes_stream.store.tiled_store.TiledResultStore`)
or the local spool while Tiled is away (:class:`~xanes_stream.store.spool.Spool`)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from xanes_stream.pipeline.results import Maps

__all__ = ["ResultSink"]


@runtime_checkable
class ResultSink(Protocol):
    """Takes the result of one raw run: its maps, or the record that it has none."""

    def write_maps(self, uid: str, maps: Maps, metadata: dict) -> str:
        """Write the maps of raw run ``uid`` with ``metadata``; returns where they now are."""
        ...

    def write_failure(self, uid: str, reason: str, metadata: dict) -> str:
        """Record that raw run ``uid`` has no maps, and why; returns where the record is."""
        ...
