"""Seconds per analysis beyond the fit on a 100 x 1024^2 stack (prints a table; no asserts).

    python benchmarks/bench_products.py [--size 1024] [--n-energy 100] [--tile 256]

The stack is a ``make_phantom`` of ``tile`` x ``tile`` pixels (three Ni references, noise, no
drift) with ``n_energy`` energies, tiled up to ``size`` x ``size``. Rows: ``normalize_stack``
(registration off), then every analysis on the normalized stack with its mask: decomposition
(NMF and PCA, k from the scree), k-means (elbow over k = 1..8, and k = 3), combinatorial
fitting over the 10-entry test library (sets of up to 3 on the mean spectrum; up to 5 on
16 x 16 binned spectra), two-energy maps. One-off imports are warmed up on a small stack first.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from library10 import library10  # noqa: E402

from xanes_stream.pipeline.normalized import normalize_stack  # noqa: E402
from xanes_stream.sim.phantom import make_phantom  # noqa: E402
from xanes_stream.spectra.clustering import cluster_spectra  # noqa: E402
from xanes_stream.spectra.combinatorial import combinatorial_fit  # noqa: E402
from xanes_stream.spectra.decomposition import decompose  # noqa: E402
from xanes_stream.spectra.two_energy import two_energy_maps  # noqa: E402

REFS = ("NiO", "LiNiO2", "Ni")


def energies(n: int) -> np.ndarray:
    """``n`` energies: coarse pre- and post-edge, fine across the Ni K edge."""
    pre, post = 14, max(n // 6, 3)
    return np.concatenate(
        [
            np.linspace(8250, 8318, pre),
            np.linspace(8320, 8385, n - pre - post),
            np.linspace(8390, 8450, post),
        ]
    )


def stack(size: int, n_energy: int, tile: int):
    p = make_phantom((tile, tile), energies=energies(n_energy), references=REFS, drift=0, seed=1)
    reps = (1, size // tile, size // tile)
    return p, np.tile(p.frames, reps), np.tile(p.flat, reps), np.tile(p.dark, reps[1:])


def run_all(p, frames, flat, dark, library) -> list[tuple[str, float, str]]:
    rows = []

    def timed(name, call, describe):
        t0 = time.perf_counter()
        result = call()
        rows.append((name, time.perf_counter() - t0, describe(result)))
        return result

    settings = {"registration": {"method": "none"}}
    normalized = timed(
        "normalize_stack",
        lambda: normalize_stack(frames, p.energies, dark=dark, flat=flat, settings=settings),
        lambda s: f"{int(s.mask.sum())} masked pixels",
    )
    for method in ("nmf", "pca"):
        timed(
            f"decompose {method}",
            lambda m=method: decompose(normalized, m),
            lambda r: f"k={r.metadata['n_components']}",
        )
    timed(
        "cluster_spectra elbow 1..8",
        lambda: cluster_spectra(normalized),
        lambda r: f"k={r.metadata['k']}",
    )
    timed("cluster_spectra k=3", lambda: cluster_spectra(normalized, 3), lambda r: "")
    timed(
        "combinatorial_fit <=3 of 10 (mean)",
        lambda: combinatorial_fit(normalized, library, 3),
        lambda r: f"{r.metadata['n_combinations']} sets, best {r.metadata['references']}",
    )
    timed(
        "combinatorial_fit <=5 of 10 (16x16 bins)",
        lambda: combinatorial_fit(normalized, library, 5, binning=16),
        lambda r: f"{r.metadata['n_combinations']} sets x {r.metadata['fitted_spectra']} spectra",
    )
    od = normalized.spectra * normalized.edge_step[None]
    timed(
        "two_energy_maps",
        lambda: two_energy_maps(od, normalized.energies, p.references[0], p.references[1]),
        lambda r: f"E1={r.metadata['e1']:.0f} E2={r.metadata['e2']:.0f}",
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--n-energy", type=int, default=100)
    parser.add_argument("--tile", type=int, default=256)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    library = library10()
    run_all(*stack(128, args.n_energy, 64), library)  # warm-up: imports, first calls
    p, frames, flat, dark = stack(args.size, args.n_energy, args.tile)
    print(f"stack {frames.shape[0]} x {frames.shape[1]} x {frames.shape[2]} float32")
    print(f"{'analysis':42s} {'seconds':>8s}  result")
    for name, seconds, note in run_all(p, frames, flat, dark, library):
        print(f"{name:42s} {seconds:8.2f}  {note}")
    print(peak_memory(frames.nbytes))


def peak_memory(stack_bytes: int) -> str:
    """The process's peak resident memory, in GB and as a multiple of the stack's size."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kB
    return f"peak resident memory {peak / 1e9:.2f} GB = {peak / stack_bytes:.1f} x the stack"


if __name__ == "__main__":
    main()
