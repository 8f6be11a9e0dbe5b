"""``xanes-stream references add`` run as a user runs it, against a real Tiled: the entries are
named by the files' headers or names, and a clash is refused before anything is written."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from xanes_stream.io.references import name_candidates

SCRIPT = str(Path(sys.executable).parent / "xanes-stream")
SHARED = Path("/work/shared/data/references")
BUNDLED = Path(__file__).parents[2] / "src" / "xanes_stream" / "data" / "references"
REFERENCES = SHARED if SHARED.is_dir() else BUNDLED


def run(tiled, *args):
    return subprocess.run(
        [SCRIPT, "references", *map(str, args), "--tiled-uri", tiled.uri],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "XANES_TILED_API_KEY": tiled.api_key},
    )


def test_add_names_entries_from_headers_and_file_names(tiled, tmp_path):
    from tiled.client import from_uri

    paths = [
        Path(shutil.copy(REFERENCES / name, tmp_path))
        for name in ("ni_metal_rt.xdi", "ref_LiNiO2.txt")
    ]
    norm = Path(shutil.copy(REFERENCES / "ref_NiO.txt", tmp_path / "norm_NiO.txt"))
    result = run(tiled, "add", *paths, norm)
    assert result.returncode == 0, result.stderr
    expected = {path: name_candidates(path)[0] for path in [*paths, norm]}
    for path, (name, origin) in expected.items():
        assert f"added {name} from {path.name} ({origin})" in result.stdout
    library = from_uri(tiled.uri, api_key=tiled.api_key)["references"]
    assert {name for name, _ in expected.values()} <= set(library)

    clash = Path(shutil.copy(REFERENCES / "ref_NiO.txt", tmp_path))
    result = run(tiled, "add", clash, norm)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "ref_NiO.txt" in result.stderr and "norm_NiO.txt" in result.stderr

    result = run(tiled, "add", clash, norm, "--name", "NiO_b")
    assert result.returncode == 2 and "--name names one file" in result.stderr
    result = run(tiled, "add", clash, "--name", "NiO_b")
    assert result.returncode == 0 and "added NiO_b from ref_NiO.txt (--name)" in result.stdout
    assert "NiO_b" in from_uri(tiled.uri, api_key=tiled.api_key)["references"]
