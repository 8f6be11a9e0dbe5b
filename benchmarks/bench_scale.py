"""Scale: scans per hour in-process vs a LocalCluster of 2 worker processes, and a 3-D volume
fitted through the cluster slab by slab.

    python benchmarks/bench_scale.py [--scans 8] [--size 128] [--volume 64] [--n-energy 100]

- scans per hour: ``--scans`` 2-D scans (n_energy 81, ``--size``^2, registration off as the
  live service registers frames as they arrive) through
  :func:`~xanes_stream.pipeline.scan.analyze_scan` directly: one after another in this
  process, then all submitted at once to a ``LocalCluster(n_workers=2, threads_per_worker=1)``
  with :class:`~xanes_stream.live.compute.DaskAnalyser` (what ``serve --dask`` uses), after
  one warm-up scan on each;
- volume: ``--n-energy`` x ``--volume``^3 float32 optical density written to a temporary
  HDF5 file chunked by z-slice, fitted by
  :func:`~xanes_stream.live.cluster_stack.volume_on_cluster` (``analyze --dask``): wall time
  and each worker's peak resident memory (VmHWM from /proc/self/status, run on the worker).
  256^3 x 100 is 6.7 GB of input: ``--volume 256`` on a machine with the disk and time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from xanes_stream.sim.phantom import make_phantom

REFS = ("NiO", "LiNiO2")


def _vmhwm() -> int:
    """This process's peak resident memory in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _scans(n: int, size: int):
    phantoms = [
        make_phantom((size, size), references=REFS, drift=0, seed=s) for s in range(min(n, 4))
    ]
    return [phantoms[i % len(phantoms)] for i in range(n)]


def bench_scans(client, address: str, n: int, size: int) -> dict:
    from xanes_stream.live.compute import DaskAnalyser
    from xanes_stream.pipeline.scan import analyze_scan

    scans = _scans(n, size)
    settings = {"registration": {"method": "none"}}

    def kwargs(p):
        return dict(energies=p.energies, references=p.references, settings=settings,
                    dark=p.dark, flat=p.flat)  # fmt: skip

    analyze_scan(scans[0].frames, **kwargs(scans[0]))  # warm-up
    t0 = time.perf_counter()
    for p in scans:
        analyze_scan(p.frames, **kwargs(p))
    here = time.perf_counter() - t0
    analyser = DaskAnalyser(address)
    try:
        for p in scans[:2]:  # warm-up on each worker
            analyser.submit(p.frames, **kwargs(p)).result()
        t0 = time.perf_counter()
        pending = [analyser.submit(p.frames, **kwargs(p)) for p in scans]
        where = {pend.result()[1] for pend in pending}
        there = time.perf_counter() - t0
    finally:
        analyser.close()
    return {"in_process_per_hour": 3600 * n / here, "cluster_per_hour": 3600 * n / there,
            "in_process_s": here, "cluster_s": there, "workers_used": len(where)}  # fmt: skip


def write_volume(path: Path, side: int, n_energy: int) -> tuple[np.ndarray, list]:
    """A (n_energy, side, side, side) float32 OD volume of 4 phantom slices repeated along z."""
    energies = np.linspace(8250.0, 8450.0, n_energy)
    slices = [
        make_phantom((side, side), energies=energies, references=REFS, drift=0, seed=10 + s)
        for s in range(4)
    ]
    od = [(-np.log(p.transmission)).astype(np.float32) for p in slices]
    with h5py.File(path, "w") as f:
        d = f.create_dataset(
            "img_xanes", shape=(n_energy, side, side, side), dtype="f4",
            chunks=(n_energy, 1, side, side),
        )  # fmt: skip
        for z in range(side):
            d[:, z] = od[z % 4]
        f.create_dataset("X_eng", data=energies / 1000.0)
    return energies, slices[0].references


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--volume", type=int, default=64, help="side of the cube (256: 6.7 GB)")
    parser.add_argument("--n-energy", type=int, default=100)
    parser.add_argument("--slab", type=int, default=4)
    args = parser.parse_args(argv)
    print("$ python benchmarks/bench_scale.py " + " ".join(sys.argv[1:]))

    from distributed import Client, LocalCluster

    from xanes_stream.live.cluster_stack import volume_on_cluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        scans = bench_scans(client, cluster.scheduler_address, args.scans, args.size)
        print(f"{args.scans} scans of 81 x {args.size}^2 (analyze_scan directly): "
              f"in-process {scans['in_process_per_hour']:.0f}/h ({scans['in_process_s']:.1f} s), "
              f"LocalCluster 2 workers {scans['cluster_per_hour']:.0f}/h "
              f"({scans['cluster_s']:.1f} s, {scans['workers_used']} workers used)")  # fmt: skip
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "volume.h5"
            t0 = time.perf_counter()
            energies, references = write_volume(path, args.volume, args.n_energy)
            written = time.perf_counter() - t0
            size = args.n_energy * args.volume**3 * 4
            before = client.run(_vmhwm)
            t0 = time.perf_counter()
            maps = volume_on_cluster(
                str(path), energies, references,
                address=cluster.scheduler_address, slab=args.slab,
            )  # fmt: skip
            wall = time.perf_counter() - t0
            peaks = client.run(_vmhwm)
        print(f"volume {args.n_energy} x {args.volume}^3 ({size / 1e9:.2f} GB, written in "
              f"{written:.1f} s), slabs of {args.slab}: {wall:.1f} s on "
              f"{len(maps.metadata['analysed_on'])} workers, {int(maps.mask.sum())} voxels "
              f"in mask")  # fmt: skip
        for worker, peak in sorted(peaks.items()):
            print(f"  {worker}: peak RSS {peak / 1e6:.0f} MB (before the volume "
                  f"{before[worker] / 1e6:.0f} MB)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
