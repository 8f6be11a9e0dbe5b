"""Cost of the self-absorption correction: ``analyze`` of a fluorescence stack, off and on.

    python benchmarks/bench_self_absorption.py [--size 512] [--n-energy 100] [--repeats 2]

One float32 fluorescence stack (n_energy x size x size: two Ni references mixed with known
fractions, damped by the FLUO forward model of a thick NiO sample, Poisson noise) is analysed
with the correction off and on (registration off, as the live service registers frames as
they arrive), alternately, after a warm-up on a strip; the best of ``repeats`` is reported,
with the extra seconds per megapixel and the peak of Python-tracked memory (tracemalloc) of
each, beyond the stack. The correction is per block, so its cost scales with the pixels:
100 x 1024^2 costs (1024 / size)^2 times the figures at ``size``.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from xanes_stream import analyze
from xanes_stream.io.references import bundled_reference
from xanes_stream.pipeline.self_absorption import SelfAbsorptionSettings, sample_alpha
from xanes_stream.sim.phantom import ni_edge_energies, unit_step_spectrum
from xanes_stream.spectra.self_absorption import self_absorbed

SAMPLE = {"enabled": True, "formula": "NiO", "element": "Ni"}


def stack(size: int, n_energy: int) -> tuple[np.ndarray, np.ndarray, list, np.ndarray]:
    rng = np.random.default_rng(0)
    grid = ni_edge_energies()
    energies = np.linspace(grid[0], grid[-1], n_energy)
    refs = [bundled_reference("NiO"), bundled_reference("LiNiO2")]
    unit = np.stack([unit_step_spectrum(r, energies) for r in refs], axis=1)
    f = np.linspace(0, 1, size, dtype=np.float32)[None, :].repeat(size, 0)
    amplitude = np.linspace(0.5, 1.0, size, dtype=np.float32)[:, None]
    alpha, _ = sample_alpha(SelfAbsorptionSettings(**SAMPLE))
    i0 = 20_000.0 * np.linspace(1.0, 0.9, n_energy)
    frames = np.empty((n_energy, size, size), dtype=np.float32)
    for e in range(n_energy):
        true = unit[e, 0] * f + unit[e, 1] * (1 - f)
        signal = 0.02 + amplitude * self_absorbed(true, alpha)
        frames[e] = rng.poisson(signal * i0[e])
    return frames, energies, refs, i0


def run(frames, energies, refs, i0, on: bool):
    settings = {"registration": {"method": "none"}, "mask": {"n_clusters": 0}}
    if on:
        settings["self_absorption"] = SAMPLE
    return analyze(frames, energies, refs, i0=i0, mode="fluorescence", settings=settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--n-energy", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    frames, energies, refs, i0 = stack(args.size, args.n_energy)
    for on in (False, True):
        run(frames[:, :16], energies, refs, i0, on)  # warm-up: imports, xraydb's tables
    best = {False: np.inf, True: np.inf}
    for _ in range(args.repeats):
        for on in (False, True):
            t0 = time.perf_counter()
            run(frames, energies, refs, i0, on)
            best[on] = min(best[on], time.perf_counter() - t0)
    peak = {}
    for on in (False, True):
        tracemalloc.start()
        run(frames, energies, refs, i0, on)
        peak[on] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    mpix = args.size**2 / 1e6
    print(f"stack {args.n_energy} x {args.size}^2 float32 ({frames.nbytes / 1e6:.0f} MB)")
    for on in (False, True):
        print(
            f"  correction {'on ' if on else 'off'}: {best[on]:7.2f} s "
            f"({best[on] / mpix:.2f} s/Mpx), peak traced {peak[on] / 1e6:7.1f} MB"
        )
    extra = best[True] - best[False]
    print(
        f"  extra: {extra:.2f} s ({100 * extra / best[False]:.0f}%), {extra / mpix:.2f} s/Mpx; "
        f"at 100 x 1024^2: ~{extra / mpix * 1.048576 * args.n_energy / 100:.1f} s"
    )


if __name__ == "__main__":
    main()
