"""How much documents may make the service hold: per scan, per ``stream_datum``, in flight.

Documents are untrusted; each limit turns what would be an unbounded allocation (or a
``MemoryError`` at the stop) into a failed run with a reason. The service sets them from its
:class:`~xanes_stream.live.config.ServiceConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits"]


@dataclass(frozen=True)
class Limits:
    """Bounds on one router's runs.

    Parameters
    ----------
    max_runs_in_flight : int
        Runs started and not yet stopped kept at once; the oldest is failed (and its memory
        given back) when another starts.
    max_scan_bytes : int
        Memory one scan's frames may take: the announced energies x the frame shape (float32),
        and what is held while it runs.
    max_frames : int
        Frames (energies) a run, and one ``stream_datum``, may announce.
    """

    max_runs_in_flight: int = 16
    max_scan_bytes: int = 8 * 2**30
    max_frames: int = 100_000
