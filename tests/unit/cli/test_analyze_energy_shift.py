"""``xanes-stream analyze`` with references whose energy scale is 2 eV off: the settings file's
fit.energy_shift finds the offset, and a limit it exceeds is a clear error."""

import numpy as np
import yaml

from xanes_stream.cli import main
from xanes_stream.io import read_maps
from xanes_stream.io.references import bundled_reference
from xanes_stream.sim.example import write_example_stack

NAMES = ("NiO", "LiNiO2", "Ni")


def _inputs(tmp_path, **fit):
    stack = write_example_stack(tmp_path / "stack.h5", shape=(48, 48), seed=3, references=NAMES)
    args = []
    for name in NAMES:
        ref = bundled_reference(name)
        path = tmp_path / f"{name}.txt"
        np.savetxt(path, np.column_stack([ref.energy + 2.0, ref.mu]), header="energy mu")
        args += ["-r", f"{name}={path}"]
    settings = tmp_path / "settings.yaml"
    settings.write_text(yaml.safe_dump({"fit": fit}))
    return [str(stack), *args, "--settings", str(settings), "-o", str(tmp_path / "maps.h5")]


def test_energy_shift_from_the_settings_file(tmp_path, capsys):
    assert main(["analyze", *_inputs(tmp_path, energy_shift="data")]) == 0
    maps = read_maps(tmp_path / "maps.h5")
    assert abs(maps.metadata["energy_shifts"]["data"] + 2.0) < 0.2
    assert "energy calibration (data)" in capsys.readouterr().out


def test_energy_offset_option(tmp_path):
    assert main(["analyze", *_inputs(tmp_path), "--energy-offset", "-1.5"]) == 0
    assert read_maps(tmp_path / "maps.h5").metadata["energy_shifts"] == {"foil": -1.5}


def test_shift_beyond_the_limit_is_a_clear_error(tmp_path, capsys):
    inputs = _inputs(tmp_path, energy_shift="references", max_energy_shift=1.0)
    assert main(["analyze", *inputs]) == 2
    assert "reached fit.max_energy_shift = 1 eV" in capsys.readouterr().err
