"""One run followed frame by frame as TiledWriter writes it (for :mod:`.tiled_source`).

:class:`FollowedRun` turns what Tiled holds of a run being written into the documents the
router takes: each stream, as it appears, becomes its ``descriptor`` (the stream node's
metadata, with ``name`` and ``run_start``); each new row of a stream's table becomes an
``event`` (``seq_num``, ``time``, the energy and I0 keys of the profile as the start's
``md["xanes"]`` overrides them) with its frames read through Tiled
(``node[stream][image_key][a:b]``) and put inline. Rows are routed once each (by
``(descriptor, seq_num)``), in reads of at most :data:`READ_ROWS` rows, and only as far as
Tiled has both the row and its frames.

Runs whose frames Tiled cannot serve stream by stream (:func:`~xanes_stream.store.archived.
untrusted_sources`: classic areaDetector files, TIFF assets, a file shared by streams) are not
followed: :attr:`FollowedRun.problem` says why, and the source reads them at their stop.
A read that fails while following sets :attr:`FollowedRun.failed`: the run's stop is then
routed alone, and the backfill reads it again whole.

Websocket subscriptions on the run, its streams and their image arrays only say *when* to
look (:meth:`FollowedRun.watch`); what is new is always read from Tiled, so a lost message
costs a poll's delay, never a frame.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from xanes_stream.errors import XanesStreamError
from xanes_stream.profiles import Profile
from xanes_stream.profiles.overrides import run_overrides
from xanes_stream.store.archived import image_source, untrusted_sources

__all__ = ["READ_ROWS", "FollowedRun"]

log = logging.getLogger(__name__)

#: The most rows of one stream read (and held) at once.
READ_ROWS = 32
#: Reads that may fail in a row while a run is written (Tiled answers 500 now and then to a
#: read racing a write) before the run is no longer followed; at the stop, the tries.
MAX_ERRORS = 20
FINAL_TRIES = 3
#: Seconds between the tries at the stop.
RETRY_S = 0.2


class FollowedRun:
    """What of one run being written has been routed, and how to route what is new.

    Parameters
    ----------
    fetch : callable
        ``fetch()``: the run in Tiled, fetched again (a client node keeps the count of its
        streams from when it was fetched, so each look starts from a fresh one).
    start : dict
        Its start document (already routed).
    profile : Profile
        The operator's profile (image, energy and I0 keys, before the start's overrides).
    route : callable
        ``route(name, doc)``: the router.
    """

    def __init__(
        self,
        fetch: Callable[[], Any],
        start: dict,
        profile: Profile,
        route: Callable[[str, dict], None],
    ) -> None:
        self.fetch, self.start, self.route = fetch, start, route
        self.uid = str(start.get("uid"))
        try:
            run = run_overrides(profile, start.get("xanes") or {})
        except XanesStreamError:
            run = run_overrides(profile, {})  # the router fails the run with the reason
        self.image_key = run.image_key
        foil = profile.foil.key if profile.foil is not None else None
        self.columns = [k for k in (run.energy_key, run.i0_key, foil) if k]
        self.descriptors: dict[str, dict] = {}  # stream -> descriptor routed
        self.rows: dict[str, int] = {}  # stream -> rows routed
        self.routed: set[tuple[str, int]] = set()  # (descriptor uid, seq_num) of events routed
        self.sources: dict[str, dict] = {}  # image streams: external, source
        self.problem: str | None = None  # Tiled cannot serve its frames: read at the stop
        self.failed: str | None = None  # a read failed while following
        self.errors = 0  # reads failed in a row
        self.framed = 0  # events routed with their frames
        self.last_look = 0.0  # time.monotonic() of the last look
        self._subscriptions: list = []
        self._watched: set[str] = set()
        self._poke: Callable[[], None] | None = None

    @property
    def events(self) -> int:
        """How many events have been routed."""
        return len(self.routed)

    @property
    def following(self) -> bool:
        """Whether the run is still followed frame by frame."""
        return self.problem is None and self.failed is None

    # --- reading what is new -------------------------------------------------------------
    def look(self, *, final: bool = False) -> bool:
        """Route the streams and rows Tiled holds that are not routed yet; nothing is raised.

        A failed read is tried again at the next look; :data:`MAX_ERRORS` in a row, or one
        at the stop (``final``), end the following (:attr:`failed`).

        Returns
        -------
        bool
            Whether the look read all it tried to.
        """
        if not self.following:
            return True
        self.last_look = time.monotonic()
        try:
            node = self.fetch()
            for stream in list(node):
                self._look_at(stream, node[stream])
                if not self.following:
                    return True
        except Exception as exc:
            self.errors += 1
            reason = f"a read from Tiled failed ({type(exc).__name__}: {exc})"
            if final or self.errors >= MAX_ERRORS:
                self._failed(reason)
            else:
                log.debug("run %s: %s; read again at the next look", self.uid[:8], reason)
            return False
        self.errors = 0
        return True

    def finish(self, stop: dict) -> bool:
        """The stop is in Tiled: route the rows left, then the stop.

        Returns
        -------
        bool
            True when the run was followed to its end and its stop routed; False when it
            was not (:attr:`problem` or :attr:`failed`): the stop is not routed then.
        """
        for attempt in range(FINAL_TRIES):
            if self.look(final=attempt == FINAL_TRIES - 1):
                break
            time.sleep(RETRY_S)
        self.unwatch()
        if self.following:
            counts = stop.get("num_events") or {}
            for stream in self.descriptors:
                wanted = counts.get(stream)
                if isinstance(wanted, int) and self.rows.get(stream, 0) < wanted:
                    self._failed(
                        f"Tiled served {self.rows.get(stream, 0)} of the {wanted} events of "
                        f"its {stream!r} stream"
                    )
                    break
        if not self.following:
            return False
        self.route("stop", dict(stop))
        return True

    def _look_at(self, stream: str, snode: Any) -> None:
        if stream not in self.descriptors:
            metadata = dict(snode.metadata or {})
            if "uid" not in metadata:
                return  # not a stream written by TiledWriter
            descriptor = {**metadata, "name": stream, "run_start": self.uid}
            info = (metadata.get("data_keys") or {}).get(self.image_key)
            if isinstance(info, dict):
                self.sources[stream] = {"external": info.get("external"), "source": None}
                if not self._trusted():
                    return
            self.route("descriptor", descriptor)
            self.descriptors[stream], self.rows[stream] = descriptor, 0
            self._watch_stream(stream, snode)
        if stream in self.sources and self.sources[stream]["source"] is None:
            self.sources[stream]["source"] = image_source(snode, self.image_key)
            if self.sources[stream]["source"] is None or not self._trusted():
                return
            if self._poke is not None:
                self._subscribe(snode[self.image_key], "new_data")  # frames appended
        self._route_rows(stream, snode)

    def _trusted(self) -> bool:
        problem = untrusted_sources(self.sources)
        if problem is None:
            return True
        if self.framed:
            self._failed(problem)  # found late: frames already routed may be wrong
        else:
            self.problem = problem
        return False

    def _route_rows(self, stream: str, snode: Any) -> None:
        """Route the rows of ``stream`` Tiled holds with their frames, READ_ROWS at a time."""
        keys = set(snode)  # one request, not one per key
        if "seq_num" not in keys or (stream in self.sources and self.image_key not in keys):
            return  # no row yet, or no frames yet
        done = self.rows[stream]
        seq = np.asarray(snode["seq_num"].read())
        if len(seq) <= done:
            return
        image, per_row, fpp = None, True, 1
        if stream in self.sources:
            image = snode[self.image_key]  # fresh: its shape says how many frames Tiled has
            shape = list(self.descriptors[stream]["data_keys"][self.image_key].get("shape") or [])
            per_row = len(image.shape) == len(shape) + 1
            fpp = 1 if per_row or len(shape) < 3 else int(shape[0])
            ready = min(len(seq), image.shape[0] // fpp)
        else:
            ready = len(seq)
        if ready <= done:
            return
        wanted = [c for c in ("time", *self.columns) if c in keys]
        table = {c: np.asarray(snode[c].read()) for c in wanted}
        uid = self.descriptors[stream]["uid"]
        for a in range(done, ready, READ_ROWS):
            b = min(a + READ_ROWS, ready)
            frames = None
            if image is not None:
                frames = np.asarray(image[a * fpp : b * fpp])
                if not per_row:
                    frames = frames.reshape(b - a, fpp, *frames.shape[1:])
                    if fpp == 1:
                        frames = frames[:, 0]
            for j in range(a, b):
                number = int(seq[j])
                if (uid, number) in self.routed:
                    continue
                data = {
                    c: table[c][j].item() for c in self.columns if c in table and j < len(table[c])
                }
                if frames is not None:
                    data[self.image_key] = frames[j - a]
                    self.framed += 1
                when = float(table["time"][j]) if "time" in table else 0.0
                event = {"uid": f"{uid}-{number}", "descriptor": uid, "seq_num": number}
                event |= {"time": when, "data": data, "timestamps": dict.fromkeys(data, when)}
                event["filled"] = {}
                self.route("event", event)
                self.routed.add((uid, number))
            self.rows[stream] = b

    def _failed(self, reason: str) -> None:
        if self.failed is None:
            self.failed = reason
            log.warning(
                "run %s: %s; it is handed on as incomplete and read again whole",
                self.uid[:8],
                reason,
            )

    # --- when to look ----------------------------------------------------------------------
    def watch(self, poke: Callable[[], None]) -> None:
        """Subscribe to the run (new streams); ``poke()`` is called on each update (in
        Tiled's threads). Subscriptions that cannot be made are left to the poll."""
        self._poke = poke
        try:
            self._subscribe(self.fetch(), "child_created")
        except Exception as exc:  # the poll reads what the subscription would announce
            log.debug("run %s: no subscription (%s)", self.uid[:8], exc)

    def _watch_stream(self, stream: str, snode: Any) -> None:
        if self._poke is None or stream in self._watched:
            return
        self._watched.add(stream)
        self._subscribe(snode, "child_created")  # its table and arrays appearing

    def _subscribe(self, node: Any, registry: str) -> None:
        poke = self._poke
        try:
            subscription = node.subscribe()
            getattr(subscription, registry).add_callback(lambda *_: poke())
        except Exception as exc:
            log.debug("run %s: no subscription on %s (%s)", self.uid[:8], node, exc)
            return

        def receive() -> None:
            try:
                subscription.start()
            except Exception as exc:  # the poll goes on
                log.debug("run %s: a subscription ended (%s)", self.uid[:8], exc)

        threading.Thread(target=receive, name="tiled-run-ws", daemon=True).start()
        self._subscriptions.append(subscription)

    def unwatch(self) -> None:
        """Close the run's subscriptions."""
        subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            try:
                subscription.disconnect(wait=False)
            except Exception as exc:
                log.debug("closing a subscription of run %s: %s", self.uid[:8], exc)
