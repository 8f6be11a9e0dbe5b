"""A day of scans: N small scans back to back through ``xanes-stream serve``; exactly once?
how does its memory grow? how far behind are the maps?

    python benchmarks/bench_soak.py [--scans 200] [--chunk 10] [--size 64]

A real Tiled server and 0MQ proxy on 127.0.0.1, the service as a subprocess (as deployed: its
memory is its own), the simulated beamline's RunEngine here, sending ``--chunk`` scans per
plan (TiledWriter first, then the proxy; 41 energies, ``--size``^2 inline frames). Reported
(:mod:`xanes_stream.devtools.soak`):

- scans mapped: the keys under the root at the end, against the scans sent, and the maps
  writes per scan in the service's log: every scan once, nothing more;
- the service's resident memory (VmRSS) after the first chunk, its peak (sampled every
  second) and after the last, with the memory after each chunk;
- lag, stop document to maps written (the service's own measure, ``record.latency``):
  median and maximum.

The default (200 scans of 64^2) takes about 12 minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=200)
    parser.add_argument("--chunk", type=int, default=10, help="scans per RunEngine plan")
    parser.add_argument("--size", type=int, default=64, help="frame edge, pixels")
    parser.add_argument("--batch", type=int, default=10, help="TiledWriter's batch_size")
    parser.add_argument("--root", default="soak/xanes", help="results root (a nested path)")
    args = parser.parse_args()

    from xanes_stream.devtools.soak import run_soak

    def progress(mapped: int, rss: float) -> None:
        print(f"  {mapped:>5} scans mapped, service RSS {rss:7.1f} MiB", flush=True)

    print(f"soak: {args.scans} scans of {args.size}^2 x 41 energies, {args.chunk} per plan")
    result = run_soak(
        args.scans, chunk=args.chunk, shape=(args.size, args.size), root=args.root,
        batch_size=args.batch,
        progress=progress,
    )  # fmt: skip
    rss, lag = result.rss(), result.lag()
    duplicates = sum(n - 1 for n in result.writes.values() if n > 1)
    rows = [
        ("scans sent", f"{len(result.uids)}"),
        (f"maps under /{args.root}", f"{len(result.under_root)}"),
        ("maps writes (log)", f"{sum(result.writes.values())} ({duplicates} duplicate)"),
        ("each exactly once", "yes" if result.mapped_once else "NO"),
        ("RSS first / peak / last",
         f"{rss['first']:.1f} / {rss['peak']:.1f} / {rss['last']:.1f} MiB"),
        ("RSS last / first", f"{rss['last'] / rss['first']:.3f}"),
        ("lag median / max", f"{lag['median']:.2f} / {lag['max']:.2f} s"),
        ("wall time", f"{result.seconds:.0f} s ({result.seconds / len(result.uids):.2f} s/scan)"),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"{name:>{width}}  {value}")
    print(f"\nmeasured with: python benchmarks/bench_soak.py --scans {args.scans} "
          f"--chunk {args.chunk} --size {args.size} --batch {args.batch}")  # fmt: skip
    return 0 if result.mapped_once else 1


if __name__ == "__main__":
    sys.exit(main())
