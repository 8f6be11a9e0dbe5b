"""What each science option costs ``analyze``, on one stack, in one run of this script.

    python benchmarks/bench_science.py [--size 1024] [--n-energy 100] [--only NAME ...]

One float32 optical-density stack (n_energy x N x N, the synthetic stack of
bench_analyze.py: two Ni references, known fractions, noise 0.01) is written to a temporary
.npy file. Each row runs in a fresh Python process that loads it (so its peak resident memory
is its own, the loaded stack included), warms up on a 16-row strip, then times ``analyze_scan``
(``analyze`` and the enabled products, as the CLI and the service run them) three times (the
median; mode absorbance, registration off, as the live service calls it)
with that row's settings. ``region`` and ``export_*`` time the step after a plain analysis.

The added cost of a row is its time less the ``off`` row's. Self-absorption (fluorescence
only) has its own benchmark: bench_self_absorption.py; the 3-D pieces theirs:
bench_topography.py and bench_tomography.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_analyze import _core_error, _peak_rss_bytes, make_stack, run_child  # noqa: E402

#: Timed analyses per row: the median is reported (a noisy 2-core machine).
REPEATS = 3
#: Row name -> (what it is, the settings it adds).
VARIANTS = {
    "off": ("defaults (fit.model auto: normalized here; signal-to-noise mask)", {}),
    "shift_data": ("fit.energy_shift: data (item 1)", {"fit": {"energy_shift": "data"}}),
    "shift_refs": (
        "fit.energy_shift: references (item 1)",
        {"fit": {"energy_shift": "references"}},
    ),
    "errors": ("fit.errors: fraction_errors (item 2)", {"fit": {"errors": True}}),
    "od_model": ("fit.model: optical_density (item 3)", {"fit": {"model": "optical_density"}}),
    "normalized": (
        "fit.model: normalized (no model check; issue 19)",
        {"fit": {"model": "normalized"}},
    ),
    "otsu_mask": ("mask.method: otsu (the former mask; issue 19)", {"mask": {"method": "otsu"}}),
    "pca": ("denoise.components: auto (item 5)", {"denoise": {"components": "auto"}}),
    "spikes": ("denoise.spikes (item 5)", {"denoise": {"spikes": True}}),
    "topography": (
        "products.topography, 2-D level lines (item 8)",
        {"products": {"topography": {"enabled": True}}},
    ),
    "region": ("region_spectrum of a 200 x 200 rectangle (item 6)", {}),
    "export_tiff": ("export maps as a multi-page TIFF (item 7)", {}),
    "export_png": ("export maps as a PNG figure (item 7)", {}),
}


def child(what: str, folder: Path) -> dict:
    """One measurement in this (fresh) process."""
    from xanes_stream.io.references import bundled_reference
    from xanes_stream.pipeline.scan import analyze_scan  # analyze and the products

    stack = np.load(folder / "stack.npy")
    energies = np.load(folder / "energies.npy")
    truth = np.load(folder / "truth.npy")
    refs = [bundled_reference("NiO"), bundled_reference("LiNiO2")]
    settings = {"registration": {"method": "none"}, **VARIANTS[what][1]}
    strip = np.ascontiguousarray(stack[:, :16])
    analyze_scan(strip, energies, refs, mode="absorbance", settings=settings)  # imports, compiles
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        maps = analyze_scan(stack, energies, refs, mode="absorbance", settings=settings)
        times.append(time.perf_counter() - t0)
    seconds = float(np.median(times))
    result = {"what": what, "analyze_s": seconds, "error": _core_error(maps.fractions, truth)}
    if what == "region":
        from xanes_stream.pipeline.regions import region_spectrum

        region = np.zeros(maps.thickness.shape, bool)
        region[100:300, 100:300] = True
        t0 = time.perf_counter()
        region_spectrum(
            stack, energies, region, refs, maps.metadata["normalization"], settings=settings
        )
        result["step_s"] = time.perf_counter() - t0
    elif what.startswith("export_"):
        from xanes_stream.io.exports import export_maps

        suffix = what.split("_", 1)[1]
        t0 = time.perf_counter()
        export_maps(folder / f"maps.{suffix}", maps, suffix)
        result["step_s"] = time.perf_counter() - t0
    result["peak_rss"] = _peak_rss_bytes()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--n-energy", type=int, default=100)
    parser.add_argument("--only", nargs="*", choices=list(VARIANTS), default=None)
    parser.add_argument("--child", choices=list(VARIANTS))
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.folder)))
        return 0
    names = ["off", *(n for n in (args.only or VARIANTS) if n != "off")]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        stack_bytes = make_stack(args.size, args.n_energy, folder)
        print(f"{args.n_energy} x {args.size}^2 float32 ({stack_bytes / 2**30:.2f} GiB)")
        rows = {name: run_child(name, folder, script=__file__) for name in names}
    base = rows["off"].get("analyze_s", float("nan"))
    print("| option | analyze (s) | added (s) | step (s) | fraction error | peak RSS / stack |")
    print("|---|---|---|---|---|---|")
    for name, row in rows.items():
        if "failed" in row:
            print(f"| {VARIANTS[name][0]} | failed: {row['failed']} | | | | |")
            continue
        added = "" if name == "off" else f"{row['analyze_s'] - base:+.2f}"
        step = f"{row['step_s']:.2f}" if "step_s" in row else ""
        print(
            f"| {VARIANTS[name][0]} | {row['analyze_s']:.2f} | {added} | {step} | "
            f"{row['error']:.4f} | {row['peak_rss'] / stack_bytes:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
