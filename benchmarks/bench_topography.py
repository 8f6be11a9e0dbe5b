"""Cost of the topography product on an N^3 edge-energy volume.

    python benchmarks/bench_topography.py [--size 128] [--levels 3] [--repeats 3]

The volume is a ball (radius 0.43 N) in a masked-off background whose E0 rises from 8342 to
8346 eV across a spherical front of radius 0.25 N, roughened by a smooth random field (1 eV rms,
correlation 4 voxels) so the isosurfaces are wrinkled rather than spheres, plus 0.05 eV voxel
noise. Prints the product's time (best of ``repeats``, after one warm-up), the vertices per
level and the peak memory added (tracemalloc).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
from scipy import ndimage as ndi

from xanes_stream.pipeline.products.topography import TopographySettings, run
from xanes_stream.pipeline.results import Maps


def volume(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, n, n) E0 (float32, NaN outside the mask) and the mask."""
    rng = np.random.default_rng(seed)
    c = (n - 1) / 2
    z, y, x = np.ogrid[:n, :n, :n]
    r = np.sqrt((z - c) ** 2 + (y - c) ** 2 + (x - c) ** 2)
    rough = ndi.gaussian_filter(rng.standard_normal((n, n, n)), 4.0)
    rough *= 1.0 / rough.std()
    e0 = 8344 + 2 * np.tanh((r - 0.25 * n) / (0.05 * n)) + rough
    e0 += rng.normal(0, 0.05, e0.shape)
    mask = r < 0.43 * n
    return np.where(mask, e0, np.nan).astype(np.float32), mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    e0, mask = volume(args.size)
    nan = np.full_like(e0, np.nan)
    maps = Maps(
        reference_names=["a"],
        fractions=nan[None],
        thickness=nan,
        error=nan,
        r_factor=nan,
        chi2_red=nan,
        edge_energy=e0,
        peak_energy=nan,
        mask=mask,
        clusters=np.zeros(e0.shape, np.int8),
        shifts=np.zeros((1, 2)),
        energies=np.zeros(1),
        mean_spectrum=np.zeros(1),
        mean_fit=np.zeros(1),
        fit_energies=np.zeros(1),
    )
    settings = TopographySettings(enabled=True, n_levels=args.levels)
    small = TopographySettings(enabled=True, n_levels=1)
    run(None, maps, small, [])  # warm-up: imports
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        product = run(None, maps, settings, [])
        times.append(time.perf_counter() - started)
    tracemalloc.start()
    run(None, maps, settings, [])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    table = product.tables["topography/levels"]
    print(f"volume {args.size}^3, {args.levels} levels: best {min(times):.2f} s of {times}")
    print(f"peak memory added {peak / 2**20:.0f} MiB")
    for i, level in enumerate(table["level"]):
        print(
            f"  level {level:.2f} eV: {table['n_points'][i]} vertices, area {table['size'][i]:.0f},"
            f" <H> {table['mean_curvature'][i]:+.4f}, P+ {table['p_positive'][i]:.2f},"
            f" P- {table['p_negative'][i]:.2f}, P(saddle) {table['p_saddle'][i]:.2f}"
        )


if __name__ == "__main__":
    main()
