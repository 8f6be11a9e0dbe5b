"""Speed of ``analyze`` beside PyXAS 1.0 and the memory-bandwidth floor, on the same stacks.

    python benchmarks/bench_analyze.py [--sizes 1024 2048] [--n-energy 100] [--skip-pyxas]

For each size, one float32 optical-density stack (n_energy x N x N, two Ni references mixed with
known fractions, thickness gradient, sloping background, noise) is written to a temporary .npy
file. Every measurement then runs in a fresh Python process that loads that stack, so its peak
resident memory (ru_maxrss) is its own: it includes the loaded stack itself.

Rows:
- floor: one read of the stack in memory (``stack.max()``), the memory-bandwidth floor;
- xanes-stream analyze: normalization, NNLS fit and every map (registration off: the live
  service registers frames as they arrive) in the fused, compiled block pass (the default
  ``compute.kernel: fused``), after a warm-up call on a 16-row strip so that one-off imports
  and the compiled code's load (~2 s, paid once by a running service) are not counted, as
  PyXAS's are not;
- xanes-stream analyze, numpy pass: the same with ``compute.kernel: numpy`` (the reference
  implementation the tests compare the fused pass with);
- xanes-stream analyze (ADMM): the fused pass with the iterative fit;
- PyXAS normalize + fit: ``normalize_2D_xanes2`` then ``fit_2D_xanes_non_iter``, as its GUI
  calls them (benchmarks/pyxas_peer.py);
- PyXAS ADMM: ``fit_2D_xanes_iter2`` on the normalized stack (fit only, GUI defaults);
- whole tools (sizes in ``--tool-sizes``, default 1024), both reading the same FXI/PyXAS-layout
  HDF5 file (``img_xanes``, ``X_eng``) and writing the fraction maps to an HDF5 file, timed
  from the shell (interpreter start, imports and all), registration off:
  ``xanes-stream analyze`` (every map, clusters, the maps file), and PyXAS's pipeline
  (h5py read, ``normalize_2D_xanes2``, ``fit_2D_xanes_non_iter``, h5py write of the fractions);
- register one 1024^2 frame: ``FrameRegistrar.add`` (phase correlation and the shift).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _core_error(fractions: np.ndarray, truth: np.ndarray) -> float:
    inner = (slice(None), slice(4, -4), slice(4, -4))
    return float(np.nanmedian(np.abs(fractions[inner] - truth[inner])))


def child(what: str, folder: Path) -> dict:
    """One measurement in this (fresh) process."""
    if what == "register":
        return {"what": what, **_register_frames(), "peak_rss": _peak_rss_bytes()}
    if what in ("cli", "pyxas_tool"):
        return {"what": what, **_whole_tool(what, folder)}
    stack = np.load(folder / "stack.npy")
    energies = np.load(folder / "energies.npy")
    truth = np.load(folder / "truth.npy")
    result: dict = {"what": what}
    if what == "floor":
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            stack.max()
            times.append(time.perf_counter() - t0)
        result["seconds"] = min(times)
    elif what in ("ours", "ours_numpy", "ours_admm"):
        from xanes_stream import analyze
        from xanes_stream.io.references import bundled_reference

        refs = [bundled_reference("NiO"), bundled_reference("LiNiO2")]
        settings = {"registration": {"method": "none"}}
        if what == "ours_admm":
            settings["fit"] = {"method": "admm"}
        if what == "ours_numpy":
            settings["compute"] = {"kernel": "numpy"}
        # warm up on a strip, as a running service is: imports (sklearn alone ~2 s) are once
        analyze(
            np.ascontiguousarray(stack[:, :16]),
            energies,
            refs,
            mode="absorbance",
            settings=settings,
        )
        t0 = time.perf_counter()
        maps = analyze(stack, energies, refs, mode="absorbance", settings=settings)
        result["seconds"] = time.perf_counter() - t0
        result["error"] = _core_error(maps.fractions, truth)
        result["stages"] = maps.metadata["timings"]
        result["kernel"] = maps.metadata["kernel"]
    elif what in ("pyxas", "pyxas_admm"):
        import pyxas_peer

        refs = pyxas_peer.load_ni_references(energies)
        if what == "pyxas":
            fractions, seconds = pyxas_peer.pyxas_normalize_fit(
                stack, energies, refs, pyxas_peer.PRE_EDGE_EV, pyxas_peer.POST_EDGE_EV
            )
        else:
            normalized = _normalized(stack, energies)
            del stack
            fractions, seconds = pyxas_peer.pyxas_admm_fit(normalized, refs, energies_ev=energies)
        result["seconds"] = seconds
        result["error"] = _core_error(fractions, truth)
    else:
        raise SystemExit(f"unknown measurement {what}")
    result["peak_rss"] = _peak_rss_bytes()
    return result


_PYXAS_TOOL = """
import sys, h5py, numpy as np
sys.path.insert(0, {here!r})
import pyxas_peer
with h5py.File({stack!r}, "r") as f:
    stack, energies = f["img_xanes"][()], f["X_eng"][()] * 1000.0
refs = pyxas_peer.load_ni_references(energies)
fractions, _ = pyxas_peer.pyxas_normalize_fit(
    stack, energies, refs, pyxas_peer.PRE_EDGE_EV, pyxas_peer.POST_EDGE_EV
)
with h5py.File({out!r}, "w") as f:
    f["fractions"] = fractions.astype(np.float32)
"""


def _whole_tool(what: str, folder: Path) -> dict:
    """A whole tool run from the shell on ``folder/stack.h5``: wall seconds and its peak
    resident memory (this process only waits)."""
    stack, out = folder / "stack.h5", folder / f"{what}-maps.h5"
    if what == "cli":
        settings = folder / "settings.yml"
        settings.write_text("registration:\n  method: none\n")
        tool = Path(sys.executable).with_name("xanes-stream")
        command = [str(tool), "analyze", str(stack), "-r", "NiO", "-r", "LiNiO2"]
        command += ["--mode", "absorbance", "--settings", str(settings), "--out", str(out)]
    else:
        script = _PYXAS_TOOL.format(here=str(HERE), stack=str(stack), out=str(out))
        command = [sys.executable, "-c", script]
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{what} failed: {done.stderr.strip().splitlines()[-1:]}")
    import h5py

    with h5py.File(out, "r") as f:
        fractions = f["fractions"][()]
    truth = np.load(folder / "truth.npy")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {"seconds": seconds, "error": _core_error(fractions, truth), "peak_rss": peak}


def _write_h5(folder: Path) -> None:
    """The stack in the FXI/PyXAS layout (energies in keV), for the whole tools."""
    import h5py

    stack = np.load(folder / "stack.npy", mmap_mode="r")
    with h5py.File(folder / "stack.h5", "w") as f:
        f["img_xanes"] = stack
        f["X_eng"] = np.load(folder / "energies.npy") / 1000.0


def _normalized(stack: np.ndarray, energies: np.ndarray) -> np.ndarray:
    """The stack edge-normalized (input of PyXAS's ADMM), computed in place, untimed."""
    from xanes_stream.spectra.normalize import EdgeOperator, edge_windows, find_e0

    flat = stack.reshape(stack.shape[0], -1)
    e0 = find_e0(energies, flat[:, ::97].mean(axis=1))
    op = EdgeOperator.build(energies, edge_windows(energies, e0))
    for start in range(0, flat.shape[1], 65536):
        block = flat[:, start : start + 65536]
        norm, _ = op.apply(block)
        block[...] = norm
    return stack


def _register_frames() -> dict:
    from scipy import ndimage as ndi

    from xanes_stream.imaging.registration import FrameRegistrar

    rng = np.random.default_rng(0)
    scene = ndi.gaussian_filter(rng.random((1024, 1024)), 4).astype(np.float32)
    drift = np.cumsum(rng.normal(0, 0.7, (31, 2)), axis=0)
    frames = [ndi.shift(scene, d, order=1, mode="nearest") for d in drift]
    registrar = FrameRegistrar()
    times = []
    for frame in frames:
        t0 = time.perf_counter()
        registrar.add(frame)
        times.append(time.perf_counter() - t0)
    return {"seconds": float(np.median(times[1:])), "p90": float(np.percentile(times[1:], 90))}


def run_child(what: str, folder: Path, script: str = __file__) -> dict:
    """Measurement ``what`` of ``script`` (``--child what --folder folder``) in a fresh process."""
    out = subprocess.run(
        [sys.executable, script, "--child", what, "--folder", str(folder)],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    if out.returncode != 0:
        return {"what": what, "failed": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_stack(size: int, n_energy: int, folder: Path) -> int:
    import pyxas_peer

    stack, energies, _refs, truth = pyxas_peer.synthetic_stack(
        size, size, n_energy=n_energy, noise=0.01, seed=1
    )
    np.save(folder / "stack.npy", stack)
    np.save(folder / "energies.npy", energies)
    np.save(folder / "truth.npy", truth.astype(np.float32))
    return stack.nbytes


LABELS = {
    "floor": "one read of the stack (floor)",
    "ours": "xanes-stream analyze (NNLS, all maps)",
    "ours_numpy": "  the same, numpy block pass",
    "ours_admm": "xanes-stream analyze (ADMM, all maps)",
    "pyxas": "PyXAS normalize + fit",
    "pyxas_admm": "PyXAS ADMM fit",
    "cli": "xanes-stream analyze, whole tool (shell)",
    "pyxas_tool": "PyXAS pipeline, whole tool (shell)",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--n-energy", type=int, default=100)
    parser.add_argument("--skip-pyxas", action="store_true")
    parser.add_argument(
        "--tool-sizes",
        type=int,
        nargs="*",
        default=[1024],
        help="sizes at which the whole tools run from the shell, on an HDF5 file",
    )
    parser.add_argument("--json", type=Path, default=HERE / "results" / "bench_analyze.json")
    parser.add_argument("--child")
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.folder)))
        return 0

    if not args.skip_pyxas:
        import pyxas_peer

        pyxas_peer.ensure_installed()
    report = {"machine": {"cpus": os.cpu_count()}, "sizes": {}}
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="xanes-bench-") as tmp:
            folder = Path(tmp)
            print(f"\n== {args.n_energy} x {size} x {size} float32 ==", flush=True)
            stack_bytes = make_stack(size, args.n_energy, folder)
            rows = {}
            kinds = ["floor", "ours", "ours_numpy", "ours_admm"]
            if not args.skip_pyxas:
                kinds += ["pyxas", "pyxas_admm"]
            if size in args.tool_sizes:
                _write_h5(folder)
                kinds += ["cli"] + ([] if args.skip_pyxas else ["pyxas_tool"])
            for what in kinds:
                rows[what] = run_child(what, folder)
                print(f"  {what}: {rows[what]}", flush=True)
            report["sizes"][size] = {"stack_bytes": stack_bytes, "rows": rows}
            _print_table(size, args.n_energy, stack_bytes, rows)
    registration = run_child("register", Path("."))
    print(
        f"\nregister one 1024^2 frame (phase correlation + shift): "
        f"median {registration['seconds'] * 1000:.1f} ms, p90 {registration['p90'] * 1000:.1f} ms"
    )
    report["register_1024"] = registration
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    print(f"\nresults written to {args.json}")
    return 0


def _print_table(size: int, n_energy: int, stack_bytes: int, rows: dict) -> None:
    floor = rows["floor"].get("seconds")
    ours = rows["ours"].get("seconds")
    print(f"\n{n_energy} x {size}^2 float32 ({stack_bytes / 1e9:.2f} GB)")
    print(
        f"{'':40s} {'seconds':>8s} {'x floor':>8s} {'peer/ours':>9s} {'peak GB':>8s} "
        f"{'peak/stack':>10s} {'frac err':>8s}"
    )
    for what, row in rows.items():
        if "failed" in row:
            print(f"{LABELS[what]:40s} failed: {row['failed']}")
            continue
        seconds = row["seconds"]
        mine = {"pyxas_admm": "ours_admm", "pyxas_tool": "cli"}.get(what, "ours")
        mine = rows.get(mine, {}).get("seconds")
        speedup = f"{seconds / mine:9.1f}" if what.startswith("pyxas") and mine else " " * 9
        error = f"{row['error']:8.4f}" if "error" in row else " " * 8
        print(
            f"{LABELS[what]:40s} {seconds:8.2f} {seconds / floor:8.1f} {speedup} "
            f"{row['peak_rss'] / 1e9:8.2f} {row['peak_rss'] / stack_bytes:10.2f} {error}"
        )
    numpy_pass = rows.get("ours_numpy", {}).get("seconds")
    if ours and numpy_pass:
        print(f"fused pass {numpy_pass / ours:.1f}x faster than the numpy pass")
    for what in ("ours", "ours_numpy"):
        if rows.get(what, {}).get("stages"):
            stages = {k: round(v, 3) for k, v in rows[what]["stages"].items()}
            print(f"analyze stages ({rows[what].get('kernel')}): {stages}")


if __name__ == "__main__":
    sys.exit(main())
