"""``xanes-stream export`` as a user runs it: the console script in a subprocess, on a maps file
that ``analyze`` wrote and on a scan uid whose maps are in a real Tiled."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import tifffile

from xanes_stream.io.maps_file import read_maps

SCRIPT = str(Path(sys.executable).parent / "xanes-stream")
TIMEOUT = 120


def run(*args, env=None):
    return subprocess.run(
        [SCRIPT, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def maps_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    stack, out = folder / "stack.h5", folder / "maps.h5"
    result = run("example-stack", stack, "--size", "64", "--seed", "3")
    assert result.returncode == 0, result.stderr
    result = run("analyze", stack, "-r", "NiO", "-r", "LiNiO2", "--out", out)
    assert result.returncode == 0, result.stderr
    return out


def _tiff_matches(path, maps, labels):
    with tifffile.TiffFile(path) as tif:
        assert tif.imagej_metadata["Labels"] == labels
        pages = tif.asarray()
    np.testing.assert_array_equal(pages[0], maps.fractions[0].astype(np.float32))
    np.testing.assert_array_equal(pages[labels.index("thickness")], maps.thickness)


def test_export_of_a_maps_file_to_tiff(maps_file, tmp_path):
    out = tmp_path / "maps.tif"
    result = run("export", maps_file, "--format", "tiff", "-o", out, "--pixel-size", "0.03")
    assert result.returncode == 0, result.stderr
    assert f"maps written to {out}" in result.stdout
    maps = read_maps(maps_file)
    labels = ["fraction_NiO", "fraction_LiNiO2", "thickness", "error", "r_factor"]
    labels += ["chi2_red", "edge_energy", "peak_energy", "mask", "clusters"]
    _tiff_matches(out, maps, labels)
    with tifffile.TiffFile(out) as tif:
        num, den = tif.pages[0].tags["XResolution"].value
        assert num / den == pytest.approx(1 / 0.03)

    bad = run("export", maps_file, "--format", "tiff", "--maps", "Fe2O3", "-o", out)
    assert bad.returncode == 2 and "no map 'Fe2O3'" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("registered", [False, True], ids=["uploaded", "registered"])
def test_export_of_a_scan_in_tiled(tiled, maps_file, tmp_path, registered):
    """Maps a service wrote (uploaded map by map, or registered as one file) come back from
    the uid as the maps file has them: the TIFF's pages and the XDI's mean spectrum."""
    from xanes_stream.store.tiled_store import TiledResultStore

    maps = read_maps(maps_file)
    uid = str(uuid.uuid4())
    results_dir = tiled.results_dir if registered else None
    store = TiledResultStore(tiled.client(), root="bl/xanes", results_dir=results_dir)
    store.write_maps(uid, maps, {"sample": "NMC-811", "scan_id": 12})
    options = ["--tiled-uri", tiled.uri, "--root", "bl/xanes"]
    env = {"XANES_TILED_API_KEY": tiled.api_key}

    tif = tmp_path / "scan.tif"
    result = run(
        "export", uid, "-f", "tiff", "-o", tif, "--maps", "NiO,thickness", *options, env=env
    )
    assert result.returncode == 0, result.stderr
    _tiff_matches(tif, maps, ["fraction_NiO", "thickness"])

    xdi = tmp_path / "scan.xdi"
    result = run("export", uid, "-f", "xdi", "-o", xdi, *options, env=env)
    assert result.returncode == 0, result.stderr
    text = xdi.read_text()
    assert "# Sample.name: NMC-811" in text and "# XANES_Stream.scan_id: 12" in text
    data = np.loadtxt(xdi, comments="#")
    np.testing.assert_allclose(data[:, 0], maps.fit_energies)
    np.testing.assert_allclose(data[:, 1], maps.mean_spectrum, rtol=1e-6)
    np.testing.assert_allclose(data[:, 2], maps.mean_fit, rtol=1e-6)


def test_export_of_a_failed_or_missing_scan_says_why(tiled, tmp_path):
    from xanes_stream.store.tiled_store import TiledResultStore

    uid = str(uuid.uuid4())
    TiledResultStore(tiled.client()).write_failure(uid, "no flat field frames", {})
    options = ["--tiled-uri", tiled.uri, "--api-key", tiled.api_key, "-o", tmp_path / "x.csv"]
    failed = run("export", uid, "-f", "csv", *options)
    assert failed.returncode == 2, failed.stderr
    assert "analysis failed (no flat field frames)" in failed.stderr
    missing = run("export", str(uuid.uuid4()), "-f", "csv", *options)
    assert missing.returncode == 2 and "neither a maps file nor a scan" in missing.stderr
    assert "Traceback" not in failed.stderr + missing.stderr
