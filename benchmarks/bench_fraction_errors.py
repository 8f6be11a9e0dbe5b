"""The cost of ``fraction_errors`` (``fit.errors``) and of the optical-density model: analyze
on an (n_energy, n, n) Poisson stack of two references with each setting, in alternation.

    PYTHONPATH=src python benchmarks/bench_fraction_errors.py [n_energy] [n] [repeats]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers.od_phantom import od_phantom

from xanes_stream import analyze


def main(n_energy: int = 100, n: int = 1024, repeats: int = 2) -> None:
    energies = np.linspace(8250.0, 8450.0, n_energy)
    p = od_phantom((n, n), counts=20_000, energies=energies, constant=0.1, victoreen=0.3)
    base = {"registration": {"method": "none"}}
    cases = {
        "normalized, errors off": {"errors": False},
        "normalized, errors on": {"errors": True},
        "optical_density, errors off": {"model": "optical_density", "errors": False},
        "optical_density, errors on": {"model": "optical_density", "errors": True},
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fit in cases.items():
            t0 = time.perf_counter()
            maps = analyze(
                p.od, energies, p.references, mode="absorbance", settings={**base, "fit": fit}
            )
            times[name].append(time.perf_counter() - t0)
            del maps
    for name, values in times.items():
        print(f"{name:32s} best {min(values):7.2f} s  all {[round(v, 2) for v in values]}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
