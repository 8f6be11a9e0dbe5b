"""Seconds per analysis beyond the fit (particles, fronts, series, ML, few-energy, 3D), 1024^2.

    PYTHONPATH=src python benchmarks/bench_products_b.py [--size 1024] [--n-train 3000]

The stack is a 256^2 phantom (two Ni references, 20,000 counts, noise) tiled 4 x 4, as optical
density, 100 energies. ``analyze`` runs once to give the maps every product starts from; the
normalized stack the products take is made with the scan's edge operator (a stand-in for
``normalize_stack``). The 3D row analyses the same voxels as a volume of 4 slices of 512^2.
Each row is one call after a warm-up on a small input (imports are paid once by a service).
Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bench_products import peak_memory

from xanes_stream import analyze
from xanes_stream.pipeline.products import fronts, ml, particles
from xanes_stream.pipeline.results import NormalizedStack
from xanes_stream.pipeline.series import SeriesSummary
from xanes_stream.pipeline.volume import analyze_volume
from xanes_stream.sim.phantom import make_phantom
from xanes_stream.spectra import learn
from xanes_stream.spectra.normalize import EdgeOperator, edge_windows

SETTINGS = {"registration": {"method": "none"}}


def energies_100() -> np.ndarray:
    """100 energies across the Ni K-edge: coarse before and after, ~0.7 eV across it."""
    return np.concatenate(
        [np.arange(8250.0, 8320.0, 5.0), np.linspace(8320.0, 8369.0, 69), np.arange(8370, 8455, 5)]
    )


def tiled_stack(size: int) -> tuple[np.ndarray, list]:
    tile = make_phantom((256, 256), energies=energies_100(), n_particles=6, drift=0, seed=1)
    od = -np.log(tile.transmission)
    reps = size // 256
    return np.ascontiguousarray(np.tile(od, (1, reps, reps))), tile.references


def normalized_stack(od: np.ndarray, energies: np.ndarray, e0: float, mask) -> NormalizedStack:
    operator = EdgeOperator.build(energies, edge_windows(energies, e0))
    n, ny, nx = od.shape
    spectra = np.empty((operator.fit_energy.size, ny, nx), dtype=np.float32)
    step = np.empty((ny, nx), dtype=np.float32)
    rows = max(1, 65_536 // nx)
    for r in range(0, ny, rows):
        block = od[:, r : r + rows].reshape(n, -1)
        values, steps = operator.apply(block)
        spectra[:, r : r + rows] = values.reshape(values.shape[0], -1, nx)
        step[r : r + rows] = steps.reshape(-1, nx)
    return NormalizedStack(operator.fit_energy, spectra, e0, step, mask)


def timed(label: str, rows: list, function, *args, **kwargs):
    t0 = time.perf_counter()
    out = function(*args, **kwargs)
    rows.append((label, time.perf_counter() - t0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="frame side (multiple of 512)")
    parser.add_argument("--n-train", type=int, default=3000)
    args = parser.parse_args()

    energies = energies_100()
    od, refs = tiled_stack(args.size)
    stack_bytes = od.nbytes
    print(f"stack {od.shape} float32, {od.nbytes / 1e9:.2f} GB")
    analyze(np.ascontiguousarray(od[:, :16]), energies, refs, mode="absorbance", settings=SETTINGS)
    rows: list[tuple[str, float]] = []
    maps = timed(
        "analyze (fit and maps, for reference)",
        rows,
        analyze,
        od,
        energies,
        refs,
        mode="absorbance",
        settings=SETTINGS,
    )
    e0 = maps.metadata["normalization"]["e0"]
    normalized = timed(
        "normalized stack (stand-in for normalize_stack)",
        rows,
        normalized_stack,
        od,
        energies,
        e0,
        maps.mask,
    )

    particle_settings = particles.ParticleSettings(enabled=True)
    product = timed(
        "particles: labels + table", rows, particles.run, normalized, maps, particle_settings, refs
    )
    n_particles = product.metadata["n_particles"]
    timed(
        "fronts: contours (3 windows)",
        rows,
        fronts.run,
        normalized,
        maps,
        fronts.FrontSettings(enabled=True),
        refs,
    )
    summary = SeriesSummary("bench")
    timed("series: add one scan", rows, summary.add, "uid", 0.0, maps)

    x, y = timed(
        f"ml: training set ({args.n_train} spectra)",
        rows,
        learn.training_set,
        refs,
        normalized.energies,
        args.n_train,
        0.03,
        0,
    )
    names = [r.name for r in refs]
    model = timed(
        "ml: train MLP (standard)",
        rows,
        learn.train,
        x,
        y,
        energies=normalized.energies,
        targets=names,
    )
    predicted = timed(
        "ml: predict every pixel (1 Mpx)" if args.size == 1024 else "ml: predict",
        rows,
        learn.predict_maps,
        model,
        normalized.spectra,
        None,
        simplex=True,
    )
    forest = learn.train(x, y, "forest", "pca", energies=normalized.energies, targets=names)
    timed(
        "ml: predict every pixel, forest (pca)",
        rows,
        learn.predict_maps,
        forest,
        normalized.spectra,
        None,
        simplex=True,
    )
    inside = maps.mask
    difference = float(np.median(np.abs(predicted[:, inside] - maps.fractions[:, inside])))
    timed(
        "ml: run() (train 3000 + predict in mask)",
        rows,
        ml.run,
        normalized,
        maps,
        ml.MLSettings(enabled=True),
        refs,
    )
    del normalized

    rows3 = [int(np.argmin(np.abs(energies - e))) for e in (8290.0, 8344.0, 8351.0)]
    few = np.ascontiguousarray(od[rows3])
    timed(
        f"few-energy scan: analyze 3 x {args.size}^2 (registered, two-energy)",
        rows,
        analyze,
        few,
        energies[rows3],
        refs,
        mode="absorbance",
    )
    del few

    half = args.size // 2
    volume = np.stack(
        [od[:, y0 : y0 + half, x0 : x0 + half] for y0 in (0, half) for x0 in (0, half)], axis=1
    )
    del od
    analyze_volume(volume[:, :1, :64, :64], energies, refs, progress=False)
    timed(
        f"3D: analyze_volume {volume.shape[1]} x {half}^2 (same voxels)",
        rows,
        analyze_volume,
        volume,
        energies,
        refs,
        progress=False,
        chunk_slices=2,
    )

    width = max(len(label) for label, _ in rows)
    print(f"{'analysis':<{width}}  seconds")
    for label, seconds in rows:
        print(f"{label:<{width}}  {seconds:7.2f}")
    print(f"particles found: {n_particles}; median |ML - fit| in mask: {difference:.3f}")
    print(peak_memory(stack_bytes))


if __name__ == "__main__":
    main()
