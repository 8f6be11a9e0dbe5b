"""Run a simulated in-operando XANES experiment: RunEngine -> TiledWriter -> 0MQ Publisher.

The RunEngine calls its callbacks in the order they were subscribed, so with TiledWriter first
every document (and, with ``batch_size=1``, every frame) is in Tiled before the Publisher sends
it: a consumer that gets an event over 0MQ can read its frame from Tiled at once, and one that
gets ``stop`` finds the raw run complete.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
from bluesky import RunEngine
from bluesky.callbacks.zmq import Publisher
from zmq.utils.monitor import recv_monitor_message

from xanes_stream.documents import codec
from xanes_stream.sim.areadetector import DatumPager
from xanes_stream.sim.beamline import make_beamline
from xanes_stream.sim.txm import BeamlineError, ScanTruth

__all__ = ["PLANS", "SimulatedRun", "connect_publisher", "run_simulated_experiment"]

#: The plans :func:`run_simulated_experiment` can run: ours (``xanes_scan``, one dark, one flat,
#: the energies in eV) and FXI's (``xanes_scan2``, a flat at every energy, XEng in keV).
PLANS = ("xanes_scan", "xanes_scan2")

#: After the 0MQ handshake, time for the proxy's subscription to reach the PUB socket.
SUBSCRIPTION_SETTLE_S = 0.2


@dataclass
class SimulatedRun:
    """One raw run of the experiment and what the camera really imaged in it."""

    uid: str
    truth: ScanTruth


def connect_publisher(address: str, *, prefix: bytes = b"", timeout: float = 10.0) -> Publisher:
    """A bluesky ``Publisher`` (safe msgpack codec) whose connection to the proxy is up.

    A PUB socket drops messages until its peer is connected and subscribed, so this waits
    (at most ``timeout`` s) for the 0MQ handshake with the proxy, then lets the subscription
    settle. Raises :class:`BeamlineError` if the proxy does not answer.
    """
    publisher = Publisher(address, prefix=prefix, serializer=codec.packb)
    sock = publisher._socket  # bluesky exposes no hook; reconnect under a monitor
    sock.setsockopt(zmq.LINGER, 2000)  # close() never blocks for long on unsent messages
    monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    try:
        sock.disconnect(publisher.address)
        sock.connect(publisher.address)
        connected = bool(monitor.poll(int(timeout * 1000)))
        if connected:
            recv_monitor_message(monitor)
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
    if not connected:
        publisher.close()
        raise BeamlineError(f"no 0MQ proxy answered at {address} within {timeout:g} s")
    time.sleep(SUBSCRIPTION_SETTLE_S)
    return publisher


def _stop_loop(run_engine: RunEngine) -> None:
    """Stop and close the event loop (and its thread) of a RunEngine made here."""
    loop = run_engine.loop
    thread = getattr(run_engine, "_th", None)
    loop.call_soon_threadsafe(loop.stop)
    if thread is not None:
        thread.join(timeout=5.0)
    if not loop.is_running():
        loop.close()


def run_simulated_experiment(
    tiled_uri: str | None,
    api_key: str | None,
    proxy_in_address: str | None,
    *,
    n_scans: int,
    detector: str = "hdf5",
    data_dir: str | Path | None,
    shape: tuple[int, int] = (128, 128),
    energies: Sequence[float] | None = None,
    seed: int = 0,
    batch_size: int = 1,
    prefix: bytes = b"",
    callbacks: Sequence[Callable[[str, dict], Any]] = (),
    settings: dict[str, Any] | None = None,
    md: dict[str, Any] | None = None,
    connect_timeout: float = 10.0,
    run_engine: RunEngine | None = None,
    plan: str = "xanes_scan",
    plan_kwargs: dict[str, Any] | None = None,
    datum_page: bool = False,
) -> list[SimulatedRun]:
    """Run an in-operando series of ``n_scans`` XANES scans on the simulated TXM.

    Documents go first to Tiled (``TiledWriter``, ``batch_size`` 1: each frame is written
    as it comes, so live consumers can read it; larger batches are faster but the frames
    arrive in Tiled later, at the latest at ``stop``), then to the 0MQ proxy at
    ``proxy_in_address`` (``host:port``) with the safe msgpack codec, then to ``callbacks``.
    ``tiled_uri`` or ``proxy_in_address`` may be None to skip that leg. ``settings`` are
    further :class:`~xanes_stream.sim.txm.SimSettings` fields.

    ``plan`` is ``"xanes_scan"`` (our beamline; ``detector`` ``"hdf5"`` or ``"inline"``) or
    ``"xanes_scan2"`` (FXI's plan and devices, :mod:`~xanes_stream.sim.fxi`; ``detector``
    ``"ad_hdf5"``, the default there, ``"ad_tiff"``, ``"async_hdf5"`` or ``"async_tiff"``;
    ``energies`` still in eV, handed to the plan in keV). ``plan_kwargs`` go to the plan
    (e.g. ``chunk_size``). ``datum_page`` sends ``datum`` documents packed as
    ``datum_page``. Returns the raw runs in order, each with its ground truth
    (``truth.uid`` is set too).
    """
    if plan not in PLANS:
        raise BeamlineError(f"plan must be one of {PLANS}, not {plan!r}")
    values = {**(settings or {}), "shape": tuple(shape), "seed": seed}
    if plan == "xanes_scan2":
        from xanes_stream.sim.fxi import make_fxi_beamline

        detector = "ad_hdf5" if detector == "hdf5" else detector
        beamline: Any = make_fxi_beamline({**values, "detector": detector}, data_dir)
        eng_list = None if energies is None else [e / 1000.0 for e in energies]
        series = beamline.series(n_scans, eng_list, md=md, **(plan_kwargs or {}))
    else:
        beamline = make_beamline({**values, "detector": detector}, data_dir)
        series = beamline.in_operando_series(
            n_scans, energies=energies, md=md, **(plan_kwargs or {})
        )
    own_engine = run_engine is None
    if run_engine is None:
        main = threading.current_thread() is threading.main_thread()
        run_engine = RunEngine({}, context_managers=None if main else [])
    client = None
    publisher = None
    tokens = []
    try:
        targets: list[Callable[[str, dict], Any]] = []
        if tiled_uri is not None:
            from bluesky_tiled_plugins import TiledWriter

            from xanes_stream.store.client import tiled_client

            client = tiled_client(tiled_uri, api_key)
            targets.append(TiledWriter(client, batch_size=batch_size))
        if proxy_in_address is not None:
            publisher = connect_publisher(proxy_in_address, prefix=prefix, timeout=connect_timeout)
            targets.append(publisher)
        targets.extend(callbacks)
        if datum_page:
            targets = [DatumPager(*targets)]
        tokens.extend(run_engine.subscribe(cb) for cb in targets)
        first = len(beamline.truths)
        uids = run_engine(series)
    finally:
        for token in tokens:
            run_engine.unsubscribe(token)
        if publisher is not None:
            publisher.close()
        if client is not None:
            client.context.close()
        if own_engine:
            _stop_loop(run_engine)
    truths = beamline.truths[first:]
    if len(truths) != len(uids):
        raise BeamlineError(f"{len(uids)} runs but {len(truths)} camera stagings")
    for uid, truth in zip(uids, truths, strict=True):
        truth.uid = uid
    return [SimulatedRun(uid, truth) for uid, truth in zip(uids, truths, strict=True)]
