"""``xanes-stream analyze`` on STXM stacks, run as the installed console script: the measured
ALS Fe L-edge stack (SDF .hdr) with references taken from two of its regions, as its authors
did, and a soft X-ray stack whose energies cannot tell their unit."""

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
from helpers.measured import measured

from xanes_stream.io.stacks import read_stack

SCRIPT = str(Path(sys.executable).parent / "xanes-stream")
#: The two regions (rows, columns) whose mean OD spectra are the references: a particle whose
#: L3 white line peaks at ~708.0 eV and one whose peaks at ~709.7 eV.
REGIONS = {"low": (slice(10, 30), slice(35, 55)), "high": (slice(70, 90), slice(10, 30))}


def run(*args):
    return subprocess.run([SCRIPT, *map(str, args)], capture_output=True, text=True, timeout=300)


def test_analyze_the_measured_als_stack(tmp_path):
    hdr = measured("als-stxm-fe-l-71214098", "71214098.hdr")
    stack = read_stack(hdr)
    od = -np.log(stack.frames / stack.i0[:, None, None])
    args = []
    for name, (ys, xs) in REGIONS.items():
        np.savetxt(tmp_path / f"{name}.txt", np.c_[stack.energies, od[:, ys, xs].mean((1, 2))])
        args += ["-r", f"{name}={tmp_path / f'{name}.txt'}"]
    out = tmp_path / "maps.h5"
    result = run("analyze", hdr, *args, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "I0 from i0.xsp" in result.stderr and "mean fraction in mask" in result.stdout
    with h5py.File(out) as maps:
        np.testing.assert_allclose(maps["energies"][()], stack.energies)  # eV as read
        low = maps["fractions"][0]
        in_low, in_high = (np.nanmean(low[ys, xs]) for ys, xs in REGIONS.values())
    # each region is mostly the reference made from it
    assert in_low > 0.6 and in_high < 0.4


def test_ambiguous_energies_without_units_say_how_to_give_them(tmp_path):
    stack = tmp_path / "lik.tif"
    tifffile.imwrite(stack, np.full((11, 8, 8), 0.5, dtype=np.float32))
    energies = " ".join(f"{e:g}" for e in np.linspace(50, 60, 11))
    result = run("analyze", stack, "--energies", energies, "-r", "NiO", "--out", tmp_path / "m.h5")
    assert result.returncode != 0
    assert "could be eV" in result.stderr and "--energy-units eV|keV" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("units", ["eV", "keV"])
def test_energy_units_option_is_taken(tmp_path, units):
    stack = tmp_path / "flat.tif"
    tifffile.imwrite(stack, np.full((11, 8, 8), 0.5, dtype=np.float32))
    energies = " ".join(f"{e:g}" for e in np.linspace(50, 60, 11))
    result = run(
        "analyze", stack, "--energies", energies, "--energy-units", units, "-r", "NiO",
        "--out", tmp_path / "m.h5",
    )  # fmt: skip
    # the unit is taken (no ambiguity error): the flat stack then fails its normalization,
    # whose message shows the energies in eV as the unit made them
    assert "could be eV" not in result.stderr
    assert {"eV": "window 51.0-", "keV": "window 51000.0-"}[units] in result.stderr
