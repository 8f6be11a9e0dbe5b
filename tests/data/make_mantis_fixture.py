"""Regenerate mantis_als_71214098.npz: MANTiS's target-spectrum fit of the measured ALS stack.

How the peer's result the tests compare with was made (MANTiS is not a project dependency: it
needs PyQt5; the tests only read the fixture):

python3 -m venv /tmp/mantis-venv && /tmp/mantis-venv/bin/pip install mantis-xray==3.3.0
/tmp/mantis-venv/bin/python tests/data/make_mantis_fixture.py [DATA_DIR]

``DATA_DIR`` holds the ALS 11.0.2.2 Fe L-edge stack (``71214098.hdr``, its ``.xim`` images and
``i0.xsp``; default ``/work/shared/data/measured/als-stxm-fe-l-71214098``). Everything is done by
MANTiS's own code as its GUI does it:

- the stack is read by its SDF plugin (``file_plugins.load``, region 0, channel 0); that
  reader allocates and parses the images as int32, which fails on these aXis2000-aligned
  images (non-integer counts such as ``299.099812``) and leaves the stack uninitialised, so
  the plugin is run with its int32 read as float64, nothing else changed;
- the I0 spectrum of ``i0.xsp`` (energy, counts per line; MANTiS reads I0 only from ``.hdr`` or
  comma-separated text) is given to ``data.set_i0``, which computes the optical density
  (``calculate_optical_density``: cubic-interpolated I0, -ln(I / I0));
- the two target spectra are the mean OD of the regions ``ALS_REGIONS`` of
  ``tests/helpers/measured.py`` (the references of the tests on this stack), written by MANTiS's
  ``write_csv`` and read back by ``analyze.read_target_spectrum`` (which maps them onto the
  stack's energies), plus the flat spectrum (``read_target_spectrum(flat=True)``): the constant
  STXM practice fits with the references;
- the fit is ``analyze.calc_svd_maps`` (the least squares of every pixel's OD on the targets,
  as MANTiS's spectral maps page shows them).

Recorded: per-pixel fractions ``t_i / (t_low + t_high)`` (2, ny, nx) float16 in the stack's
(row, column) order, the target spectra, the energies and MANTiS's version.
"""

from __future__ import annotations

import sys
import tempfile
import types
from importlib.metadata import version
from pathlib import Path

import numpy as np
from mantis_xray import file_plugins
from mantis_xray.analysis import analyze, data_stack, data_struct

here = Path(__file__).parent
default = Path("/work/shared/data/measured/als-stxm-fe-l-71214098")
data = Path(sys.argv[1]) if len(sys.argv) > 1 else default
#: rows, columns of each region: tests/helpers/measured.py ALS_REGIONS
REGIONS = {"low": (slice(10, 30), slice(35, 55)), "high": (slice(70, 90), slice(10, 30))}

stack = data_stack.data(data_struct.h5())
header = str(data / "71214098.hdr")
sdf = file_plugins.identify(header)  # the plugin module file_plugins loaded (file_sdf)
assert sdf.title == "SDF", sdf.title
real_numpy = sdf.numpy
sdf.numpy = types.SimpleNamespace(**{**vars(real_numpy), "int32": real_numpy.float64})
try:
    file_plugins.load(header, stack_object=stack, plugin=sdf, selection=[(0, 0)])
finally:
    sdf.numpy = real_numpy
i0_energy, i0 = np.loadtxt(data / "i0.xsp", unpack=True)
stack.set_i0(i0, i0_energy)
od = stack.od3d  # (n_cols, n_rows, n_ev): x, y, energy

fit = analyze.analyze(stack)
with tempfile.TemporaryDirectory() as tmp:
    for name, (rows, cols) in REGIONS.items():
        spectrum = od[cols, rows, :].mean(axis=(0, 1))
        path = Path(tmp) / f"{name}.csv"
        stack.write_csv(str(path), stack.ev, spectrum, cname=name)
        fit.read_target_spectrum(filename=str(path))
fit.read_target_spectrum(flat=True)
assert fit.tspec_names == ["low", "high", "Flat"], fit.tspec_names
maps = fit.target_svd_maps  # (n_cols, n_rows, 3)
amounts = np.moveaxis(maps[:, :, :2], (0, 1, 2), (2, 1, 0))  # (2, rows, cols)
with np.errstate(invalid="ignore", divide="ignore"):
    fractions = amounts / amounts.sum(axis=0)
out = here / "mantis_als_71214098.npz"
np.savez_compressed(
    out,
    fractions=fractions.astype(np.float16),
    names=np.array(["low", "high"]),
    targets=fit.target_spectra[:2].astype(np.float32),
    energies=np.asarray(stack.ev, dtype=np.float64),
    mantis_version=np.array(version("mantis-xray")),
)
print("wrote", out, out.stat().st_size, "bytes; mantis-xray", version("mantis-xray"))
