"""``xanes-stream analyze`` on a 3D XANES stack file, run as a user runs it."""

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
from helpers import core
from helpers.phantoms import VOLUME_SHAPE as SHAPE
from helpers.phantoms import volume_od

from xanes_stream.pipeline.volume import VOLUME_MAPS


def test_cli_analyzes_a_volume_file(tmp_path):
    """``xanes-stream analyze`` on a 4-D img_xanes: the volume maps in the --out file."""
    od, phantoms = volume_od(3)
    stack, out = tmp_path / "volume.h5", tmp_path / "maps.h5"
    with h5py.File(stack, "w") as f:
        f.create_dataset("img_xanes", data=od)
        f.create_dataset("X_eng", data=phantoms[0].energies / 1000.0)  # keV, as at FXI
    result = subprocess.run(
        [str(Path(sys.executable).parent / "xanes-stream"), "analyze", stack, "--out", out,
         "-r", "NiO", "-r", "LiNiO2"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "3D XANES" in result.stderr  # the progress bar
    with h5py.File(out) as f:
        assert list(f.attrs["reference_names"]) == ["NiO", "LiNiO2"]
        assert set(VOLUME_MAPS) <= set(f) and f["mask"].shape == (3, *SHAPE)
        assert list(f["fractions"].attrs["reference_names"]) == ["NiO", "LiNiO2"]
        fitted = np.moveaxis(f["fractions"][()], 0, 1)  # (nz, k, ny, nx)
    errors = np.concatenate(
        [np.abs(fitted[z] - p.fractions)[:, core(p)].ravel() for z, p in enumerate(phantoms)]
    )
    assert np.median(errors) < 0.03
