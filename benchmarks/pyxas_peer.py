"""Peer adapter: time PyXAS's own 2D-XANES fit beside xanes-stream's.

PyXAS (PyPI ``pyxas==1.0``, Mingyuan Ge, NSLS-II FXI, BSD-3) is NOT a project
dependency.  It lives in the benchmark's own folder ``benchmarks/.peers``
(git-ignored), installed with::

    python -m pip install --no-deps --target benchmarks/.peers pyxas==1.0

``--no-deps`` because its declared deps include the PyQt5 GUI.  ``ensure_installed()``
runs exactly that (with ``sys.executable``) when the folder is missing; the loader
calls it, so a fresh clone sets itself up on first use.

What is imported
----------------
All three functions we need live in ``pyxas/xanes_util.py`` (non-GUI):
``normalize_2D_xanes2``, ``fit_2D_xanes_non_iter`` and ``fit_2D_xanes_iter2``
(ADMM itself is ``pyxas/lsq_fit.py::admm_iter``).  ``pyxas/__init__.py`` star-imports
*every* submodule (alignment, tomography, skimage.io, h5py, ...), so we do not run
it: we register a bare package object for ``pyxas`` in ``sys.modules`` whose
``__path__`` points at the installed folder and import ``pyxas.xanes_util`` alone
(it pulls in ``pyxas.lsq_fit`` and ``pyxas.image_util``).  Those modules import
``matplotlib.pyplot``, ``pystackreg``, ``PIL`` and the deprecated
``scipy.ndimage.interpolation`` at top level but none of them is used by the three
functions (only ``scipy.signal.medfilt2d`` is, via ``img_smooth``); a module that
is missing is replaced by an inert stub before import.  With the project's venv
nothing needs stubbing today.  The GUI (``bin/pyxas_gui``, PyQt5) is never imported;
it was only read to copy its default arguments.

How PyXAS's own GUI calls them (bin/pyxas_gui, ``fit_edge_img`` / ``fit_2d_xanes`` /
``fit_2d_xanes_iter``), reproduced here
--------------------------------------------------------------------------------
* Energies are in keV (FXI's ``XEng``; GUI windows default to first/last energy
  +/- 0.010 keV).  We convert eV -> keV (values and windows).
* ``normalize_2D_xanes2(img, eng, [pre_s, pre_e], [post_s, post_e], pre_edge_only_flag)``
  with the GUI default ``pre_edge_only_flag=0`` (checkbox "pre-edge only" unchecked).
* fit region: ``np.arange(find_nearest(eng, eng[0]), find_nearest(eng, eng[-1]))``
  limited to the reference's energy span (GUI default fit range = first..last energy,
  so the last energy is dropped: a GUI quirk we keep).
* ``fit_2D_xanes_non_iter(img_norm[fit_region], eng[fit_region], spectrum_ref)`` where
  ``spectrum_ref = {'ref0': (E, mu) 2-column array, 'ref1': ...}``; PyXAS interpolates
  each reference onto ``eng`` with a cubic ``InterpolatedUnivariateSpline``; since we
  hand it the references already on the stack's energies, that is the identity.
* ``fit_2D_xanes_iter2(img[fit_region], eng[fit_region], spectrum_ref, coef0=None,
  offset=None, lamda=0.01, rho=0.01, n_iter=5, bounds=[], method=2)``: GUI radio
  "ADMM" -> ``fitting_method=3`` -> ``method=2``; GUI defaults "# iter." = 5,
  "L1 Norm lamda" = 0.01, "rho" = 0.01, "Bounds to [0, 1]" unchecked -> ``bounds=[]``;
  "Update existing fitting" unchecked -> coef0/offset None (start at ones / zeros).
  (The function's own signature defaults differ: n_iter=10, bounds=[0,1], method=1 =
  coordinate descent.)
* Fractions = the GUI's "XANES Fit (ratio, summed to 1)":
  ``s = coef.sum(0); s[|s| < 1e-6] = 1e6; rm_abnormal(coef / s)`` (negatives -> 0).
  The GUI's ``self.smooth`` (off by default) and ``* self.mask`` (all-ones by default)
  are GUI-only and skipped.

Run ``python benchmarks/pyxas_peer.py`` for the numerical check against known
fractions, ``python benchmarks/pyxas_peer.py --measure normalize --size 1024`` (or
``admm``) for time + peak RSS of one call in this (fresh) process.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import os
import subprocess
import sys
import time
import types
import warnings

import numpy as np

PYXAS_VERSION = "1.0"
HERE = os.path.dirname(os.path.abspath(__file__))
PEERS_DIR = os.path.join(HERE, ".peers")

# PyXAS GUI defaults for the ADMM ("fit 2D (iter)") path, see module docstring.
GUI_ADMM_N_ITER = 5
GUI_ADMM_LAMDA = 0.01
GUI_ADMM_RHO = 0.01

_XU = None  # cached pyxas.xanes_util


def ensure_installed() -> str:
    """Install pyxas==1.0 into benchmarks/.peers if it is not there; return the folder."""
    if not os.path.isfile(os.path.join(PEERS_DIR, "pyxas", "xanes_util.py")):
        subprocess.check_call(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--no-deps",
                "--target",
                PEERS_DIR,
                f"pyxas=={PYXAS_VERSION}",
            ]
        )
    return PEERS_DIR


def _stub_module(name: str) -> None:
    """Insert an inert module (any attribute is a dummy that fails only if *called*)."""

    def _missing(*_a, **_k):
        raise ImportError(f"{name} is stubbed by benchmarks/pyxas_peer.py (not installed)")

    mod = types.ModuleType(name)
    mod.__path__ = []  # lets "import name.sub" resolve to further stubs
    mod.__getattr__ = lambda attr: _missing  # PEP 562
    sys.modules[name] = mod
    parent, _, child = name.rpartition(".")
    if parent and parent in sys.modules:
        setattr(sys.modules[parent], child, mod)


def _have(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _load_pyxas():
    """Import pyxas.xanes_util only (not the package __init__), stubbing missing imports."""
    global _XU
    if _XU is not None:
        return _XU
    ensure_installed()
    if PEERS_DIR not in sys.path:
        sys.path.insert(0, PEERS_DIR)
    pkg_dir = os.path.join(PEERS_DIR, "pyxas")
    if "pyxas" not in sys.modules:
        # Bare package: skips pyxas/__init__.py, which star-imports every submodule.
        pkg = types.ModuleType("pyxas")
        pkg.__path__ = [pkg_dir]
        pkg.__file__ = os.path.join(pkg_dir, "__init__.py")
        pkg.__package__ = "pyxas"
        sys.modules["pyxas"] = pkg
    os.environ.setdefault("MPLBACKEND", "Agg")  # never try a GUI backend for pyplot
    # Top-level imports of xanes_util / lsq_fit / image_util that the three functions
    # never use: stub them only if missing.
    for name in ("matplotlib", "matplotlib.pyplot", "pystackreg", "PIL", "PIL.Image"):
        if name not in sys.modules and not _have(name):
            _stub_module(name)
    if not _have("scipy.ndimage.interpolation"):  # removed in SciPy 2.0
        import scipy.ndimage

        shim = types.ModuleType("scipy.ndimage.interpolation")
        shim.shift = scipy.ndimage.shift
        sys.modules["scipy.ndimage.interpolation"] = shim
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        _XU = importlib.import_module("pyxas.xanes_util")
    return _XU


def _spectrum_ref(eng: np.ndarray, references: np.ndarray) -> dict:
    refs = np.asarray(references, dtype=np.float64)
    if refs.ndim != 2 or refs.shape[0] != eng.shape[0]:
        raise ValueError(f"references must be (n_energy={eng.shape[0]}, k), got {refs.shape}")
    return {f"ref{i}": np.column_stack([eng, refs[:, i]]) for i in range(refs.shape[1])}


def _gui_fit_region(xu, eng: np.ndarray, spectrum_ref: dict) -> np.ndarray:
    # bin/pyxas_gui fit_2d_xanes / fit_2d_xanes_iter with the default fit range
    # tx_fit2d_s = eng[0], tx_fit2d_e = eng[-1].
    s, e = xu.find_nearest(eng, eng[0]), xu.find_nearest(eng, eng[-1])
    ref0 = spectrum_ref["ref0"]
    inside = (eng[s:e] >= ref0[0, 0]) & (eng[s:e] <= ref0[-1, 0])
    return np.arange(s, e)[inside]


def _gui_ratio(xu, coef: np.ndarray) -> np.ndarray:
    # bin/pyxas_gui update_canvas_img, 'XANES Fit (ratio, summed to 1)'
    img_sum = np.sum(coef, axis=0, keepdims=True)
    img_sum[np.abs(img_sum) < 1e-6] = 1e6
    return xu.rm_abnormal(coef / img_sum)


def pyxas_normalize_fit(
    stack, energies_ev, references, pre_edge, post_edge, *, sum_to_one: bool = True
):
    """PyXAS normalize_2D_xanes2 + fit_2D_xanes_non_iter, as its GUI runs them.

    stack: (n_energy, ny, nx) optical density (already -ln), float32.
    energies_ev: (n_energy,) ascending, eV.  references: (n_energy, k), on those energies.
    pre_edge, post_edge: (lo, hi) in eV; PyXAS uses indices find_nearest(lo) to
    find_nearest(hi) *exclusive* (at least one energy).
    Returns (fractions (k, ny, nx) float64, wall seconds).  With sum_to_one (default,
    what PyXAS shows) fractions are the GUI's ratio map; otherwise the raw coefficients.
    """
    xu = _load_pyxas()
    stack = np.ascontiguousarray(stack, dtype=np.float32)
    eng = np.asarray(energies_ev, dtype=np.float64) / 1000.0  # PyXAS/FXI work in keV
    pre = [float(pre_edge[0]) / 1000.0, float(pre_edge[1]) / 1000.0]
    post = [float(post_edge[0]) / 1000.0, float(post_edge[1]) / 1000.0]
    t0 = time.perf_counter()
    spectrum_ref = _spectrum_ref(eng, references)
    img_norm, _thickness = xu.normalize_2D_xanes2(stack, eng, pre, post, 0)
    region = _gui_fit_region(xu, eng, spectrum_ref)
    coef, _offset, _cost = xu.fit_2D_xanes_non_iter(img_norm[region], eng[region], spectrum_ref)
    del img_norm, _offset, _cost
    fractions = _gui_ratio(xu, coef) if sum_to_one else coef
    return fractions, time.perf_counter() - t0


def pyxas_admm_fit(
    normalized_stack,
    references,
    n_iter: int = GUI_ADMM_N_ITER,
    *,
    lamda: float = GUI_ADMM_LAMDA,
    rho: float = GUI_ADMM_RHO,
    bounds=(),
    energies_ev=None,
    sum_to_one: bool = True,
):
    """PyXAS fit_2D_xanes_iter2(method=2, ADMM) on an edge-normalized stack.

    Defaults are the GUI's: n_iter=5, lamda=0.01, rho=0.01, bounds=[] (unchecked
    "Bounds to [0, 1]"; pass (0, 1) for the checked box), no initial guess.
    energies_ev is only used to place the references for PyXAS's spline (identity on
    the same grid), so it may be omitted.  Returns (fractions (k, ny, nx), seconds).
    """
    xu = _load_pyxas()
    normalized_stack = np.ascontiguousarray(normalized_stack, dtype=np.float32)
    n = normalized_stack.shape[0]
    if energies_ev is None:
        eng = np.arange(n, dtype=np.float64)  # any increasing grid gives the same fit
    else:
        eng = np.asarray(energies_ev, dtype=np.float64) / 1000.0
    t0 = time.perf_counter()
    spectrum_ref = _spectrum_ref(eng, references)
    region = _gui_fit_region(xu, eng, spectrum_ref)
    with contextlib.redirect_stdout(io.StringIO()):  # admm_iter prints 'iter #i'
        coef, _offset, _cost = xu.fit_2D_xanes_iter2(
            normalized_stack[region],
            eng[region],
            spectrum_ref,
            None,
            None,
            lamda,
            rho,
            int(n_iter),
            bounds=list(bounds),
            method=2,
        )
    del _offset, _cost
    fractions = _gui_ratio(xu, coef) if sum_to_one else coef
    return fractions, time.perf_counter() - t0


# --------------------------------------------------------------------------------------
# validation / measurement helpers (only used from the command line)


def _reference_dir() -> str:
    cands = [
        os.path.join(HERE, "..", "src", "xanes_stream", "data", "references"),
        os.path.join(HERE, "..", "..", "shared", "data", "references"),
        "/work/shared/data/references",
    ]
    for c in cands:
        if os.path.isfile(os.path.join(c, "ref_NiO.txt")):
            return os.path.abspath(c)
    raise FileNotFoundError("ref_NiO.txt / ref_LiNiO2.txt not found in " + ", ".join(cands))


def load_ni_references(energies_ev: np.ndarray) -> np.ndarray:
    """NiO (Ni2+) and LiNiO2 (Ni3+) normalized spectra (keV files) on energies_ev: (n, 2)."""
    d = _reference_dir()
    cols = []
    for fn in ("ref_NiO.txt", "ref_LiNiO2.txt"):
        e_kev, mu = np.loadtxt(os.path.join(d, fn), unpack=True)
        cols.append(np.interp(energies_ev, e_kev * 1000.0, mu))
    return np.stack(cols, axis=1)


def fxi_like_energies(n_energy: int) -> np.ndarray:
    """A Ni K-edge scan as FXI takes them (eV): coarse pre-edge, fine edge, coarse post."""
    n_pre, n_post = max(3, round(0.15 * n_energy)), max(3, round(0.2 * n_energy))
    n_edge = n_energy - n_pre - n_post
    return np.concatenate(
        [
            np.linspace(8250.0, 8320.0, n_pre),
            np.linspace(8322.0, 8420.0, n_edge),
            np.linspace(8430.0, 8600.0, n_post),
        ]
    )


PRE_EDGE_EV = (8250.0, 8320.0)
POST_EDGE_EV = (8480.0, 8600.0)


def synthetic_stack(
    ny: int,
    nx: int,
    n_energy: int = 60,
    noise: float = 0.0,
    seed: int = 0,
    slope_per_ev: float = -5e-4,
):
    """OD stack = thickness * (f*NiO + (1-f)*LiNiO2) + a(y,x) + slope*(E - E0).

    f (NiO fraction) runs 0.1 -> 0.9 along x with 16-px checker blocks at 0.5; the
    edge step (thickness) runs 0.5 -> 2 along y; a(y,x) is a smooth 0.1-0.5 offset.
    Returns stack (float32), energies (eV), references (n, 2), true fractions (2, ny, nx).
    Built one energy at a time in float32 so large stacks cost ~1x their size.
    """
    rng = np.random.default_rng(seed)
    eng = fxi_like_energies(n_energy)
    refs = load_ni_references(eng)
    f, _ = _fraction_map(ny, nx)
    yy = np.arange(ny, dtype=np.float32)[:, None]
    xx = np.arange(nx, dtype=np.float32)[None, :]
    thick = np.float32(0.5) + np.float32(1.5) * yy / max(ny - 1, 1)
    a = (0.3 + 0.2 * np.sin(xx / 37.0) * np.cos(yy / 23.0)).astype(np.float32)
    stack = np.empty((n_energy, ny, nx), dtype=np.float32)
    for i in range(n_energy):
        s = thick * (f * np.float32(refs[i, 0]) + (1 - f) * np.float32(refs[i, 1]))
        s += a + np.float32(slope_per_ev * (eng[i] - eng[0]))
        if noise:
            s += rng.normal(0.0, noise, size=(ny, nx)).astype(np.float32)
        stack[i] = s
    return stack, eng, refs, np.stack([f, 1 - f]).astype(np.float64)


def _fraction_map(ny: int, nx: int):
    yy, xx = np.mgrid[0:ny, 0:nx]
    f = (0.1 + 0.8 * xx / max(nx - 1, 1)).astype(np.float32)
    f[(yy // 16 + xx // 16) % 2 == 1] = 0.5
    return f, 1 - f


def synthetic_normalized(ny: int, nx: int, n_energy: int = 60, noise: float = 0.0, seed: int = 0):
    """Already edge-normalized stack f*NiO + (1-f)*LiNiO2 (input of the ADMM path)."""
    rng = np.random.default_rng(seed)
    eng = fxi_like_energies(n_energy)
    refs = load_ni_references(eng)
    f, _ = _fraction_map(ny, nx)
    stack = np.empty((n_energy, ny, nx), dtype=np.float32)
    for i in range(n_energy):
        s = f * np.float32(refs[i, 0]) + (1 - f) * np.float32(refs[i, 1])
        if noise:
            s += rng.normal(0.0, noise, size=(ny, nx)).astype(np.float32)
        stack[i] = s
    return stack, eng, refs, np.stack([f, 1 - f]).astype(np.float64)


def _validate() -> int:
    print(f"pyxas {PYXAS_VERSION} from {os.path.join(PEERS_DIR, 'pyxas')}")
    ok = True
    for noise in (0.0, 0.01):
        stack, eng, refs, truth = synthetic_stack(128, 128, 60, noise=noise)
        fr, sec = pyxas_normalize_fit(stack, eng, refs, PRE_EDGE_EV, POST_EDGE_EV)
        err = np.abs(fr - truth)
        # PyXAS median-filters (5x5, zero padded) the post-edge map, so the 2-px image
        # border (corners worst) is wrong by construction: report it apart.
        inner = err[:, 2:-2, 2:-2]
        print(
            f"normalize_fit  noise={noise:<5} 60x128x128: mean|err|={err.mean():.4f} "
            f"interior mean|err|={inner.mean():.4f} max={inner.max():.4f} "
            f"(all-pixel max {err.max():.3f}) {sec:.3f} s"
        )
        ok &= bool(inner.mean() < (0.01 if noise == 0 else 0.02))

        nstack, _eng, nrefs, ntruth = synthetic_normalized(128, 128, 60, noise=noise)
        fr, sec = pyxas_admm_fit(nstack, nrefs)
        err = np.abs(fr - ntruth)
        print(
            f"admm_fit       noise={noise:<5} 60x128x128: mean|err|={err.mean():.4f} "
            f"max={err.max():.4f} (n_iter={GUI_ADMM_N_ITER}) {sec:.3f} s"
        )
        ok &= bool(err.mean() < (0.01 if noise == 0 else 0.02))
    print("OK" if ok else "FAILED: PyXAS fractions far from truth")
    return 0 if ok else 1


def _measure(which: str, size: int, n_energy: int) -> int:
    """One call in this process; prints JSON with seconds and peak RSS (ru_maxrss)."""
    import json
    import resource

    _load_pyxas()
    if which == "normalize":
        stack, eng, refs, truth = synthetic_stack(size, size, n_energy)
    else:
        stack, eng, refs, truth = synthetic_normalized(size, size, n_energy)
    rss_input = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if which == "normalize":
        fr, sec = pyxas_normalize_fit(stack, eng, refs, PRE_EDGE_EV, POST_EDGE_EV)
    else:
        fr, sec = pyxas_admm_fit(stack, refs)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(
        json.dumps(
            {
                "which": which,
                "shape": [n_energy, size, size],
                "seconds": round(sec, 3),
                "peak_rss_mib": round(peak, 1),
                "rss_after_input_mib": round(rss_input, 1),
                "stack_mib": round(stack.nbytes / 2**20, 1),
                "mean_abs_err": float(np.abs(fr - truth).mean()),
            }
        )
    )
    return 0


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--measure",
        choices=["normalize", "admm"],
        help="time one call on a synthetic size x size stack in this process",
    )
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--n-energy", type=int, default=100)
    args = ap.parse_args()
    sys.exit(_measure(args.measure, args.size, args.n_energy) if args.measure else _validate())
