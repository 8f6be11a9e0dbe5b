"""``references add``: the names chosen for the files, and the errors a person gets, before
anything is written to Tiled."""

import shutil
from pathlib import Path

import pytest

from xanes_stream.cli.references import named_references
from xanes_stream.documents.identifiers import check_name
from xanes_stream.errors import XanesStreamError
from xanes_stream.io.references import name_candidates

SHARED = Path("/work/shared/data/references")
BUNDLED = Path(__file__).parents[3] / "src" / "xanes_stream" / "data" / "references"
REFERENCES = SHARED if SHARED.is_dir() else BUNDLED


@pytest.fixture
def files(tmp_path):
    for name in ("cu_metal_rt.xdi", "ni_metal_rt.xdi", "ref_NiO.txt"):
        shutil.copy(REFERENCES / name, tmp_path)
    return tmp_path


def test_each_file_named_as_it_names_itself(files):
    paths = sorted(files.iterdir())
    added = named_references([str(p) for p in paths])
    for path, (reference, origin, passed_over) in zip(paths, added, strict=True):
        assert (reference.name, origin) == name_candidates(path)[0]
        assert check_name(reference.name) and passed_over == []
        assert Path(reference.source) == path


def test_name_only_with_one_file(files):
    ((reference, origin, _),) = named_references([str(files / "ref_NiO.txt")], "NiO_FXI")
    assert (reference.name, origin) == ("NiO_FXI", "--name")
    with pytest.raises(XanesStreamError, match="--name names one file, but 2 were given"):
        named_references([str(files / "ref_NiO.txt"), str(files / "cu_metal_rt.xdi")], "X")
    with pytest.raises(XanesStreamError, match="--name"):
        named_references([str(files / "ref_NiO.txt")], "../etc")


def test_two_files_giving_one_name_is_an_error_naming_both(files):
    copy = Path(shutil.copy(files / "ref_NiO.txt", files / "norm_NiO.txt"))
    with pytest.raises(XanesStreamError) as error:
        named_references([str(files / "ref_NiO.txt"), str(copy)])
    assert "ref_NiO.txt" in str(error.value) and "norm_NiO.txt" in str(error.value)
    assert "'NiO'" in str(error.value) and "--name" in str(error.value)


def test_invalid_header_name_passed_over_for_the_file_name(files):
    path = files / "ref_Co.txt"
    path.write_text("# Sample.name: Co/Ni foil\n" + (files / "ref_NiO.txt").read_text())
    ((reference, origin, passed_over),) = named_references([str(path)])
    assert (reference.name, origin) == ("Co", "file name")
    assert passed_over == ["header Sample.name 'Co/Ni_foil'"]
    bad = files / "..hidden.txt"
    bad.write_text("# Sample.name: a/b\n" + (files / "ref_NiO.txt").read_text())
    with pytest.raises(XanesStreamError, match="no usable name.*give one with --name"):
        named_references([str(bad)])
