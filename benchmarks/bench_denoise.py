"""What denoising costs ``analyze``: PCA projection and spike removal on and off, same stack.

    python benchmarks/bench_denoise.py [--size 1024] [--n-energy 100]

One float32 optical-density stack (n_energy x N x N, the synthetic stack of
bench_analyze.py: two Ni references, known fractions, noise 0.01) is written to a temporary
.npy file; each row runs in a fresh Python process that loads it (so its peak resident memory
is its own, the loaded stack included), warms up on a 16-row strip, then times one
``analyze`` (mode absorbance, registration off, as the live service calls it).

Rows: off (today's analysis), ``denoise.components: auto``, ``denoise.spikes: true``, both.
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

from bench_analyze import _core_error, _peak_rss_bytes, make_stack  # noqa: E402

VARIANTS = {
    "off": {},
    "pca_auto": {"components": "auto"},
    "spikes": {"spikes": True},
    "both": {"components": "auto", "spikes": True},
}


def child(what: str, folder: Path) -> dict:
    """One measurement in this (fresh) process."""
    from xanes_stream import analyze
    from xanes_stream.io.references import bundled_reference

    stack = np.load(folder / "stack.npy")
    energies = np.load(folder / "energies.npy")
    truth = np.load(folder / "truth.npy")
    refs = [bundled_reference("NiO"), bundled_reference("LiNiO2")]
    settings = {"registration": {"method": "none"}, "denoise": VARIANTS[what]}
    strip = np.ascontiguousarray(stack[:, :16])
    analyze(strip, energies, refs, mode="absorbance", settings=settings)
    t0 = time.perf_counter()
    maps = analyze(stack, energies, refs, mode="absorbance", settings=settings)
    seconds = time.perf_counter() - t0
    pca = maps.metadata.get("denoise", {}).get("pca", {})
    return {
        "what": what,
        "seconds": seconds,
        "error": _core_error(maps.fractions, truth),
        "k": pca.get("components"),
        "peak_rss": _peak_rss_bytes(),
        "stages": maps.metadata["timings"],
    }


def main() -> int:
    import subprocess

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--n-energy", type=int, default=100)
    parser.add_argument("--child")
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.folder)))
        return 0
    with tempfile.TemporaryDirectory(prefix="xanes-bench-") as tmp:
        folder = Path(tmp)
        make_stack(args.size, args.n_energy, folder)
        print(f"{args.n_energy} x {args.size} x {args.size} float32")
        print(f"{'variant':10s} {'seconds':>8s} {'peak RSS GB':>12s} {'error':>8s} {'k':>3s}")
        for what in VARIANTS:
            out = subprocess.run(
                [sys.executable, __file__, "--child", what, "--folder", str(folder)],
                capture_output=True,
                text=True,
                timeout=1800,
            )
            if out.returncode != 0:
                print(what, "failed:", out.stderr.strip().splitlines()[-1:])
                continue
            row = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{what:10s} {row['seconds']:8.2f} {row['peak_rss'] / 1e9:12.2f} "
                f"{row['error']:8.4f} {row['k'] or '-':>3}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
