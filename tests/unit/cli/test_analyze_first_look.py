"""``xanes-stream analyze STACK -o maps.h5`` without --reference: a first look, its maps file
and one candidate-reference file per cluster, which --reference then takes."""

import subprocess
import sys

from xanes_stream.io import read_maps
from xanes_stream.sim.example import write_example_stack

_CLI = "import sys; from xanes_stream.cli import main; sys.exit(main())"


def _run(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _CLI, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_analyze_without_references(tmp_path):
    stack = write_example_stack(tmp_path / "stack.h5", shape=(48, 48), seed=1)
    done = _run("analyze", str(stack), "-o", "maps.h5", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    maps = read_maps(tmp_path / "maps.h5")
    assert maps.metadata["method"] == "first_look"
    assert maps.reference_names == []
    k = int(maps.clusters.max())
    files = sorted((tmp_path / "maps_references").glob("*.xdi"))
    assert [f.stem for f in files] == [f"cluster{c}" for c in range(1, k + 1)]
    assert "no references: a first look" in done.stdout

    # the candidates as references, into a folder of one's choosing
    refs = [arg for f in files[:2] for arg in ("-r", f"{f.stem}={f}")]
    again = _run("analyze", str(stack), *refs, "-o", "fit.h5", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert read_maps(tmp_path / "fit.h5").reference_names == ["cluster1", "cluster2"]
    other = _run("analyze", str(stack), "-o", "m2.h5", "--out-references", "cands", cwd=tmp_path)
    assert other.returncode == 0, other.stderr
    assert sorted(f.stem for f in (tmp_path / "cands").glob("*.xdi")) == [f.stem for f in files]
