"""The command line, run as a user runs it: the installed console script in a subprocess."""

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

SCRIPT = str(Path(sys.executable).parent / "xanes-stream")
TIMEOUT = 120


def run(*args, cwd=None):
    return subprocess.run(
        [SCRIPT, *map(str, args)], capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd
    )


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "stack.h5"
    result = run("example-stack", path, "--size", "96", "--seed", "3")
    assert result.returncode == 0, result.stderr
    return path


def test_analyze_writes_every_map(example, tmp_path):
    out, plot = tmp_path / "maps.h5", tmp_path / "maps.png"
    result = run(
        "analyze", example, "-r", "NiO", "-r", "LiNiO2", "-r", "Ni", "--out", out, "--plot", plot
    )
    assert result.returncode == 0, result.stderr
    assert "mean fraction in mask" in result.stdout and "median R-factor" in result.stdout
    assert plot.stat().st_size > 10_000
    with h5py.File(out) as maps, h5py.File(example) as stack:
        for name in (
            "thickness",
            "error",
            "r_factor",
            "chi2_red",
            "edge_energy",
            "peak_energy",
            "mask",
            "clusters",
            "shifts",
            "energies",
        ):
            assert name in maps, name
        names = list(maps["fractions"].attrs["reference_names"])
        assert names == ["NiO", "LiNiO2", "Ni"]
        truth = stack["truth/fractions"][()]
        thickness = stack["truth/thickness"][()]
        thick = thickness > 0.4 * thickness.max()
        # the fitted maps are NaN outside the mask: thick pixels the drift (up to ~20 px here)
        # took out of the field in some frames, and which then do not fit, are not in it
        mask = maps["mask"][()].astype(bool)
        assert mask[thick].mean() > 0.9
        inside = thick & mask
        fitted = maps["fractions"][()]
        assert np.median(np.abs(fitted - truth)[:, inside]) < 0.04
        np.testing.assert_allclose(maps["energies"][()], stack["X_eng"][()] * 1000)
        assert json.loads(maps.attrs["metadata"])["settings"]["fit"]["method"] == "nnls"


def test_settings_file_is_used_and_checked(example, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("fit:\n  method: lstsq\nmask:\n  n_clusters: 2\n")
    out = tmp_path / "maps.h5"
    assert (
        run(
            "analyze", example, "-r", "NiO", "-r", "LiNiO2", "--out", out, "--settings", good
        ).returncode
        == 0
    )
    with h5py.File(out) as maps:
        assert maps["clusters"][()].max() == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("fit:\n  method: magic\n")
    result = run("analyze", example, "-r", "NiO", "--out", out, "--settings", bad)
    assert result.returncode == 2
    assert "fit.method" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda d, ex: ["analyze", d / "missing.h5", "-r", "NiO"], "does not exist"),
        (lambda d, ex: ["analyze", ex, "-r", "NiO=" + str(d / "nope.txt")], "cannot read"),
        (lambda d, ex: ["analyze", ex, "-r", "NiO", "--energies", "8300,8310"], "energies for"),
        (lambda d, ex: ["analyze", _flat_h5(d), "-r", "NiO"], "(n_energy, ny, nx)"),
        (lambda d, ex: ["analyze", ex, "-r", "Xx"], "no bundled reference"),
    ],
)
def test_bad_input_is_one_clear_line(example, tmp_path, make_args, message):
    result = run(*make_args(tmp_path, example), "--out", tmp_path / "m.h5")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _flat_h5(folder):
    path = folder / "flat.h5"
    with h5py.File(path, "w") as f:
        f["img_xanes"] = np.ones((10, 10), dtype=np.float32)
        f["X_eng"] = np.linspace(8.3, 8.4, 10)
    return path


def test_tiff_stack_with_energy_list(example, tmp_path):
    import tifffile

    with h5py.File(example) as f:
        frames, energies = f["img_xanes"][()], f["X_eng"][()] * 1000
    tif, energy_file = tmp_path / "stack.tif", tmp_path / "energies.txt"
    tifffile.imwrite(tif, frames)
    np.savetxt(energy_file, energies)
    result = run(
        "analyze",
        tif,
        "--energies",
        energy_file,
        "-r",
        "NiO",
        "-r",
        "LiNiO2",
        "-r",
        "Ni",
        "--out",
        tmp_path / "m.h5",
    )
    assert result.returncode == 0, result.stderr
