"""``xanes-stream example-tomo`` then ``analyze`` on its projections file: the truth comes back."""

import h5py
import numpy as np
import pytest
from scipy import ndimage as ndi

from xanes_stream.cli import main
from xanes_stream.errors import StackFileError
from xanes_stream.io.maps_file import read_maps
from xanes_stream.io.projections import is_projections_file, open_projections


def test_analyze_reconstructs_a_projections_file(tmp_path, capsys):
    scan, out, settings = tmp_path / "tomo.h5", tmp_path / "maps.h5", tmp_path / "s.yaml"
    assert main(["example-tomo", str(scan), "--size", "24", "--angles", "45",
                 "--center-offset", "-1.6", "--seed", "3"]) == 0  # fmt: skip
    assert is_projections_file(scan)
    settings.write_text("tomography:\n  method: sart\n")
    code = main(["analyze", str(scan), "-r", "NiO", "-r", "LiNiO2", "-o", str(out),
                 "--settings", str(settings)])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "sart about centre 10.4" in printed  # 24 // 2 - 1.6
    maps = read_maps(out)
    with h5py.File(scan) as f:
        truth, labels = f["truth/fractions"][()], f["truth/labels"][()]
    assert maps.fractions.shape == truth.shape == (2, 24, 24, 24)
    inner = ndi.binary_erosion(labels > 0)
    assert np.abs(maps.fractions[:, inner] - truth[:, inner]).mean() < 0.1


def test_radians_are_read_as_degrees_and_missing_angles_refused(tmp_path):
    good, bad = tmp_path / "good.h5", tmp_path / "bad.h5"
    with h5py.File(good, "w") as f:
        f["exchange/data"] = np.ones((2, 5, 3, 4), np.float32)
        f["exchange/theta"] = np.linspace(0, np.pi, 5)
        f["exchange/energy"] = [8.3, 8.4]
    with open_projections(good) as p:
        np.testing.assert_allclose(p.angles, np.linspace(0, 180, 5))
        assert p.mode == "transmission" and p.notes and p.data.shape == (2, 5, 3, 4)
    with h5py.File(bad, "w") as f:
        f["exchange/data"] = np.ones((2, 5, 3, 4), np.float32)
    with pytest.raises(StackFileError, match="no rotation angles"), open_projections(bad):
        pass
