"""The live service's speed: end-of-scan latency and the frame rate it sustains.

    python benchmarks/bench_live.py [--size 1024] [--n-energy 100] [--rate 20]

A real Tiled server and the 0MQ proxy run on 127.0.0.1; the service subscribes in this process.
A publisher sends one energy scan (dark, flat, then n_energy 1024^2 inline frames of a phantom
with drift) paced at ``--rate`` frames/s, then the stop document. Reported:

- ingest: frames the service corrected and registered, frames dropped (sent - received), the
  time the service spends per frame (correction + incremental registration) and the rate that
  allows, and whether it kept up with the publisher;
- end-of-scan latency: from sending the stop document to the maps being readable in Tiled,
  beside ``analyze`` in-process on the same stack. The end is when the service's write to Tiled
  returned (the node is committed: any client reads it from then on, which a separate client
  then checks). Polling Tiled meanwhile would steal the CPU the analysis needs on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _documents(phantom, rate: float):
    from event_model import compose_run

    run = compose_run(
        metadata={
            "plan_name": "xanes_scan",
            "scan_id": 1,
            "sample": "benchmark phantom",
            "num_points": int(phantom.energies.size),
            "xanes": {
                "references": [r.name for r in phantom.references],
                "image_key": "img",
                "energy_key": "energy",
                "mode": "transmission",
                "energies": phantom.energies.tolist(),
            },
        }
    )
    yield "start", run.start_doc
    shape = list(phantom.frames.shape[1:])
    keys = {
        "img": {"source": "sim", "dtype": "array", "shape": shape, "dtype_numpy": "<f4"},
        "energy": {"source": "sim", "dtype": "number", "shape": []},
    }
    for stream, frame in (("dark", phantom.dark), ("flat", phantom.flat[0])):
        bundle = run.compose_descriptor(name=stream, data_keys=keys)
        yield "descriptor", bundle.descriptor_doc
        yield (
            "event",
            bundle.compose_event(
                data={"img": frame, "energy": 0.0}, timestamps={"img": 0, "energy": 0}
            ),
        )
    primary = run.compose_descriptor(name="primary", data_keys=keys)
    yield "descriptor", primary.descriptor_doc
    for i, energy in enumerate(phantom.energies):
        yield "pace", 1.0 / rate
        yield (
            "event",
            primary.compose_event(
                data={"img": phantom.frames[i], "energy": float(energy)},
                timestamps={"img": time.time(), "energy": time.time()},
            ),
        )
    yield "stop", run.compose_stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--n-energy", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20.0, help="frames per second sent")
    parser.add_argument(
        "--upload", action="store_true", help="upload each map instead of registering one file"
    )
    args = parser.parse_args()

    from xanes_stream import analyze
    from xanes_stream.devtools.launcher import start_proxy, start_tiled
    from xanes_stream.documents.accumulator import ScanAccumulator
    from xanes_stream.live.service import ServiceConfig, XanesService
    from xanes_stream.sim.phantom import make_phantom
    from xanes_stream.sim.run import connect_publisher

    energies = np.linspace(8250, 8450, args.n_energy)
    print(f"making a {args.n_energy} x {args.size}^2 phantom scan ...", flush=True)
    phantom = make_phantom(
        (args.size, args.size), energies=energies, n_particles=12, drift=0.3, seed=1
    )
    phantom.flat = phantom.flat.astype(np.float32)

    # in-process reference: the same work the service does at the stop, on the same stack
    from xanes_stream.profiles import load_profile

    settings = load_profile("sim").settings
    accumulator = ScanAccumulator(settings, mode="transmission")
    accumulator.add_dark(phantom.dark)
    accumulator.add_flat(phantom.flat[0])
    per_frame = []
    for energy, frame in zip(energies, phantom.frames, strict=True):
        t0 = time.perf_counter()
        accumulator.add_frame(energy, frame)
        per_frame.append(time.perf_counter() - t0)
    stack, stack_energies, shifts = accumulator.finish()
    no_registration = settings.model_copy(
        update={"registration": settings.registration.model_copy(update={"method": "none"})}
    )
    refs = phantom.references
    analyze(
        stack[:, :16].copy(), stack_energies, refs, mode="absorbance", settings=no_registration
    )  # warm-up
    t0 = time.perf_counter()
    analyze(stack, stack_energies, refs, mode="absorbance", settings=no_registration, shifts=shifts)
    in_process = time.perf_counter() - t0
    del stack

    with start_tiled() as tiled, start_proxy() as proxy:
        config = ServiceConfig(
            tiled_uri=tiled.uri,
            zmq_address=proxy.out_address,
            profile="sim",
            results_dir=None if args.upload else str(tiled.results_dir),
            state_dir=str(tiled.root_dir / "service-state"),
        )
        service = XanesService(config, client=tiled.client()).start()
        watcher = tiled.client()
        time.sleep(3)  # let the service warm the server up, as a running one has
        publisher = connect_publisher(proxy.in_address)
        sent = 0
        started = time.perf_counter()
        next_send = started
        uid = None
        try:
            for name, doc in _documents(phantom, args.rate):
                if name == "pace":
                    next_send += doc
                    time.sleep(max(0.0, next_send - time.perf_counter()))
                    continue
                if name == "start":
                    uid = doc["uid"]
                if name == "stop":
                    send_duration = time.perf_counter() - started
                    stop_sent = time.time()
                publisher(name, doc)
                sent += name == "event"
            (record,) = service.wait_for([uid], 120)
            latency = None
            if record is not None and record.status == "done":
                latency = record.stopped_at + record.latency - stop_sent
                node = watcher["xanes"][uid]  # readable by another client
                assert node.metadata["status"] == "done"
                assert node["fractions"].shape[1:] == (args.size, args.size)
        finally:
            publisher.close()
            service.stop()

    received = record.frames if record else 0
    per_frame_ms = 1000 * float(np.median(per_frame))
    print(
        f"\ningest, {args.size}^2 frames at {args.rate:g} frames/s sent "
        f"({sent} events in {send_duration:.1f} s):"
    )
    print(
        f"  service time per frame (dark/flat, -ln, incremental registration): "
        f"median {per_frame_ms:.1f} ms -> sustains {1000 / per_frame_ms:.0f} frames/s"
    )
    print(
        f"  frames analysed: {received} of {args.n_energy} primary frames sent; dropped: "
        f"{args.n_energy - (received or 0)}"
    )
    print(f"\nend of scan, {args.n_energy} x {args.size}^2:")
    print(f"  analyze in-process (fit and all maps): {in_process:.2f} s")
    if latency is None:
        print("  no maps in Tiled within 120 s")
        return 1
    print(
        f"  stop document -> maps readable in Tiled: {latency:.2f} s "
        f"({latency / in_process:.2f}x in-process; status {record.status}, "
        f"service analysis {record.analysis_seconds:.2f} s; maps "
        f"{'uploaded' if args.upload else 'registered as one file'})"
    )
    print("  where it goes (s): " + ", ".join(f"{k} {v:.2f}" for k, v in record.timings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
