"""Tiled as the live source of documents: runs followed as TiledWriter writes them.

Some beamlines publish no 0MQ: their RunEngine's ``TiledWriter`` posts the documents to a
central Tiled. :class:`TiledSourceThread` follows that Tiled instead of a 0MQ proxy and hands
each run's documents to the same :class:`~xanes_stream.documents.router.SafeRouter` the 0MQ
subscriber feeds, so the analysis is the same.

How a run is followed (tiled 0.2.20's websocket subscriptions; the server needs a
``streaming_cache``):

* A websocket subscription on the runs' container (``Container.subscribe``) announces each new
  child (``container-child-created``, whose metadata carries the start document) and each
  metadata update (``container-child-metadata-updated``: TiledWriter writes the stop there,
  last, once the run's data are in Tiled).
* At its creation, a run that is an energy scan for the profile (``is_energy_scan`` on
  ``metadata["start"]``) has its start routed: the scan gets its record at once. Other runs
  are ignored.
* While it is written, it is followed **frame by frame** (:class:`~.tiled_follow.FollowedRun`):
  each stream's descriptor as the stream appears, each new row as an event with its frames
  read through Tiled and put inline, so the accumulator corrects and registers them as they
  come and the maps follow the stop as closely as over 0MQ. Websocket subscriptions on the
  run, its streams and their image arrays say when to look; a poll every :data:`LOOK_S` s
  reads what a lost message would have announced. At most :data:`MAX_FOLLOWED` runs are
  followed so at once, each read :data:`~.tiled_follow.READ_ROWS` rows at a time.
* Runs whose frames Tiled cannot serve stream by stream (classic areaDetector files, which a
  camera staged once shares between streams; TIFF assets; one file under two streams:
  :func:`~xanes_stream.store.archived.untrusted_sources`) are said so in one log line and
  read **at the stop** with :func:`~xanes_stream.store.archived.archived_documents` (Tiled's
  copy checked, or the frames placed from the files), as are runs beyond MAX_FOLLOWED and runs
  whose stop was already written when they were found.
* At the stop, a run followed frame by frame gets the rows not routed yet, then its stop
  (each ``(descriptor, seq_num)`` once). If a read kept failing while it was followed, or
  Tiled served fewer events than the stop counts, its stop alone is routed.

Correctness: each run is routed once (the uids seen are kept); a run whose documents cannot
be read has its stop alone routed, so the router finds its frames missing and hands it on as
incomplete, and it is read back from Tiled (backfill) rather than dropped. Runs that exist when
the source starts belong to the sweep for scans lacking maps (:mod:`.recovery`), never to the
source; a run already in the service's table (``known``) is left alone. Websocket messages
can be lost (Tiled restarts, the socket breaks): every :data:`RECONCILE_S` s and after each
reconnection the source also looks in Tiled for runs created since, and for stops of the runs
it follows. When Tiled goes away the source says so in one log line, keeps trying with a
growing pause (at most :data:`MAX_BACKOFF_S` s) and subscribes again once Tiled answers.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from xanes_stream.documents.job import is_energy_scan
from xanes_stream.live.tiled_follow import FollowedRun
from xanes_stream.profiles import Profile
from xanes_stream.store.archived import archived_documents

__all__ = ["LOOK_S", "MAX_BACKOFF_S", "MAX_FOLLOWED", "RECONCILE_S", "TiledSourceThread"]

log = logging.getLogger(__name__)

#: Seconds between looks in Tiled for what the websocket may have missed.
RECONCILE_S = 10.0
#: The longest pause between attempts to reach Tiled again (s).
MAX_BACKOFF_S = 30.0
#: The longest the thread waits for an update before looking whether to stop (s).
POLL_S = 0.1
#: How many run uids are remembered as handled (each run is routed once).
SEEN = 10_000
#: How far back (s) a look after an outage reaches before the outage began (clocks differ).
MARGIN_S = 60.0
#: Seconds between looks at each run followed frame by frame, whatever the websocket says.
LOOK_S = 0.5
#: The shortest time (s) between two looks at a run that the websocket asks for.
POKE_S = 0.1
#: The most runs followed frame by frame at once; others are read at their stop.
MAX_FOLLOWED = 4


class TiledSourceThread:
    """Follows the runs TiledWriter writes into a Tiled container, in a daemon thread.

    Parameters
    ----------
    connect : callable
        Returns the Tiled container of the raw runs (a client node); called again after an
        outage. What it raises is logged, and retried.
    route : callable
        ``route(name, doc)``: the router (called in this thread only).
    profile : Profile
        Selects the runs that are energy scans.
    known : callable, optional
        ``known(uid)``: whether the service already has the run in hand (e.g. the sweep
        found it): such a run is not routed again.
    label : str, optional
        Where the runs are, for the log.
    reconcile_s : float, optional
        Seconds between looks in Tiled for what the websocket may have missed.
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        route: Callable[[str, dict], None],
        profile: Profile,
        *,
        known: Callable[[str], bool] = lambda uid: False,
        roots: list | None = None,
        label: str = "Tiled",
        reconcile_s: float = RECONCILE_S,
    ) -> None:
        self.connect, self.route, self.profile, self.known = connect, route, profile, known
        self.label, self.roots = label, list(roots or [])
        self.reconcile_s = float(reconcile_s)
        self.outages = 0  # times Tiled went away
        self.runs = 0  # runs routed (started)
        self._updates: queue.Queue = queue.Queue()
        # uid -> the run followed frame by frame, or None (read at its stop); no stop yet
        self._following: OrderedDict[str, FollowedRun | None] = OrderedDict()
        self._seen: OrderedDict[str, None] = OrderedDict()  # uids handled or ignored
        self._container = None
        self._subscription = None
        self._receiver: threading.Thread | None = None
        self._started = time.time()  # runs started before this are the sweep's
        self._last_look = self._started  # the last look in Tiled that succeeded
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tiled-source", daemon=True)

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> TiledSourceThread:
        """Start the thread; return once subscribed, or after ``timeout`` s (Tiled not there
        yet: the thread keeps trying and says so in the log).

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait for the first subscription.

        Returns
        -------
        TiledSourceThread
            self, following (or trying to).
        """
        self._started = self._last_look = time.time()
        self._thread.start()
        if self._connected.wait(timeout):
            log.info("following runs as TiledWriter writes them in %s", self.label)
        return self

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop following (within about :data:`POLL_S` plus the run in hand).

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
        """Whether the source follows Tiled: its thread runs and its subscription is up."""
        return self._thread.is_alive() and self._connected.is_set()

    # --- the thread --------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = 1.0
        try:
            while not self._stopping.is_set():
                try:
                    self._subscribe()
                except Exception as exc:  # Tiled not there: say so once, try again later
                    self._went_away(exc)
                    self._stopping.wait(backoff)
                    backoff = min(2 * backoff, MAX_BACKOFF_S)
                    continue
                backoff = 1.0
                self._follow()  # returns when stopping, or when Tiled went away
        except Exception:
            log.exception("the Tiled source stopped unexpectedly")
        finally:
            self._connected.clear()
            self._unsubscribe()
            for run in self._following.values():
                if run is not None:
                    run.unwatch()

    def _subscribe(self) -> None:
        """Connect, subscribe to the runs' container, then look for what was missed."""
        self._unsubscribe()
        container = self.connect()
        subscription = container.subscribe()
        subscription.child_created.add_callback(self._on_created)
        subscription.child_metadata_updated.add_callback(self._on_updated)
        subscription.disconnected.add_callback(self._on_disconnected)

        def receive() -> None:
            try:
                subscription.start()  # blocks; reconnects by itself for a while
            except Exception as exc:  # gave up reconnecting: this thread subscribes again
                self._updates.put(("gone", subscription, f"{type(exc).__name__}: {exc}"))

        self._container, self._subscription = container, subscription
        self._receiver = threading.Thread(target=receive, name="tiled-source-ws", daemon=True)
        self._receiver.start()
        self._reconcile()  # what was created before the socket was up, or while Tiled was away
        if self.outages and not self._connected.is_set():
            log.info("following runs in %s again", self.label)
        self._connected.set()

    def _unsubscribe(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is None:
            return
        try:
            subscription.disconnect(wait=False)
        except Exception as exc:
            log.debug("closing the Tiled subscription: %s", exc)
        if self._receiver is not None:
            self._receiver.join(1.0)  # a receiver still retrying ends at its next attempt

    def _follow(self) -> None:
        next_look = time.monotonic() + self.reconcile_s
        next_rows = time.monotonic() + LOOK_S
        while not self._stopping.is_set():
            try:
                kind, key, metadata = self._updates.get(timeout=POLL_S)
            except queue.Empty:
                kind = None
            try:
                if kind == "gone" and key is self._subscription:
                    raise ConnectionError(f"the websocket closed: {metadata}")
                if kind == "created":
                    self._created(key, metadata)
                elif kind == "updated":
                    self._updated(key, metadata)
                elif kind == "poke":  # many per frame: one look per POKE_S is enough
                    run = self._following.get(key)
                    if run is not None and time.monotonic() - run.last_look >= POKE_S:
                        self._look(key)
                if time.monotonic() >= next_rows:  # the bounded poll: no message is needed
                    next_rows = time.monotonic() + LOOK_S
                    for uid in list(self._following):
                        self._look(uid)
                if time.monotonic() >= next_look:
                    next_look = time.monotonic() + self.reconcile_s
                    self._reconcile()
            except Exception as exc:
                self._went_away(exc)
                return

    # --- websocket callbacks (Tiled's threads): queue, nothing else ---------------------------
    def _on_created(self, update) -> None:
        self._updates.put(("created", update.key, dict(update.metadata or {})))

    def _on_updated(self, update) -> None:
        self._updates.put(("updated", update.key, dict(update.metadata or {})))

    def _on_disconnected(self, subscription) -> None:
        if not self._stopping.is_set():
            self._updates.put(("gone", subscription, "disconnected"))

    # --- runs --------------------------------------------------------------------------------
    def _created(self, uid: str, metadata: dict) -> None:
        """A new child: route its start if it is an energy scan not handled yet."""
        start = metadata.get("start")
        if not isinstance(start, dict) or uid in self._seen or uid in self._following:
            return
        if not is_energy_scan(start, self.profile):
            self._remember(uid)
            log.info("ignored run %s in %s: not an energy scan", uid[:8], self.label)
            return
        if self.known(uid):
            self._remember(uid)  # in hand already (the sweep found it)
            return
        self.runs += 1
        self.route("start", dict(start))
        if isinstance(metadata.get("stop"), dict):  # written whole already: read it back
            self._following[uid] = None
            self._stopped(uid, metadata["stop"])
            return
        followed = [run for run in self._following.values() if run is not None]
        if len(followed) >= MAX_FOLLOWED:
            self._following[uid] = None
            log.info(
                "run %s: read at its stop, not frame by frame: %d runs are followed already",
                uid[:8],
                len(followed),
            )
            return
        container = self._container
        run = FollowedRun(lambda: container[uid], start, self.profile, self.route)
        self._following[uid] = run
        run.watch(lambda: self._updates.put(("poke", uid, None)))
        self._look(uid)

    def _look(self, uid: str) -> None:
        """Route what is new of a run followed frame by frame; a run found not to be
        followable (its frames are not Tiled's to serve) is left to its stop, said once."""
        run = self._following.get(uid)
        if run is None or not run.following:
            return
        run.look()
        if run.problem is not None:
            run.unwatch()
            log.info("run %s: read at its stop, not frame by frame: %s", uid[:8], run.problem)

    def _updated(self, uid: str, metadata: dict) -> None:
        if uid in self._following and isinstance(metadata.get("stop"), dict):
            self._stopped(uid, metadata["stop"])

    def _stopped(self, uid: str, stop: dict) -> None:
        """The run's stop is in Tiled. A run followed frame by frame gets its rows left and
        its stop; one that failed while followed, its stop alone (the router finds frames
        missing and the backfill reads the run again whole); any other its documents not
        routed yet, read back whole, or if they cannot be read its stop alone."""
        run = self._following.pop(uid, None)
        self._remember(uid)
        if run is not None and (run.finish(stop) or run.failed is not None):
            if run.failed is not None:
                self.route("stop", dict(stop))
            return
        described = {d["uid"] for d in run.descriptors.values()} if run is not None else set()
        routed = run.routed if run is not None else set()
        routed_stop = False
        try:
            archived = archived_documents(self._container[uid], self.profile, self.roots)
            if archived.note:
                log.warning("run %s: %s", uid[:8], archived.note)
            for name, doc in archived.documents:
                if name == "start" or (name == "descriptor" and doc.get("uid") in described):
                    continue
                if name == "event" and (doc.get("descriptor"), doc.get("seq_num")) in routed:
                    continue  # routed while followed (a stream without frames)
                self.route(name, doc)
                routed_stop = routed_stop or name == "stop"
        except Exception as exc:
            log.warning(
                "run %s: cannot read its documents from %s (%s); it is handed on as incomplete",
                uid[:8],
                self.label,
                exc,
            )
        if not routed_stop:
            self.route("stop", dict(stop))

    def _reconcile(self) -> None:
        """Look in Tiled for runs the websocket did not announce (created since the source
        started, or since shortly before an outage) and for stops of the runs followed."""
        from tiled.queries import Key

        container = self._container
        look = time.time()
        since = max(self._started, self._last_look - MARGIN_S)
        for uid in list(self._following):
            if uid not in container:
                continue
            metadata = container[uid].metadata or {}
            if isinstance(metadata.get("stop"), dict):
                self._stopped(uid, metadata["stop"])
        for uid, node in container.search(Key("start.time") >= since).items():
            if uid not in self._seen and uid not in self._following:
                self._created(uid, dict(node.metadata or {}))
        self._last_look = look

    def _went_away(self, exc: Exception) -> None:
        if self._connected.is_set() or self.outages == 0:
            self.outages += 1
            log.error(
                "lost the connection to %s (%s: %s); trying again, with a growing pause "
                "(runs written meanwhile are looked for once it answers)",
                self.label,
                type(exc).__name__,
                exc,
            )
        self._connected.clear()

    def _remember(self, uid: str) -> None:
        self._seen[uid] = None
        while len(self._seen) > SEEN:
            self._seen.popitem(last=False)
