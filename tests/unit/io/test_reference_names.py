"""The names reference files give themselves: the header's sample name, else the file name
without its ref_/norm_ words. Real files from the shared reference data, and synthetic
headers."""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from xanes_stream.errors import ReferenceError
from xanes_stream.io.references import name_candidates, name_from_file

SHARED = Path("/work/shared/data/references")
BUNDLED = Path(__file__).parents[3] / "src" / "xanes_stream" / "data" / "references"
REFERENCES = SHARED if SHARED.is_dir() else BUNDLED


def _header_value(path: Path, key: str) -> str:
    """``# key: value`` as the file writes it, read here independently of the code under test."""
    for line in path.read_text().splitlines():
        match = re.match(rf"#\s*{re.escape(key)}\s*:\s*(.*\S)", line)
        if match:
            return match.group(1)
    raise AssertionError(f"{path.name} has no {key}")


def _spectrum(path: Path, header: str) -> Path:
    energy = np.linspace(8.2, 8.6, 20)
    np.savetxt(path, np.column_stack([energy, np.clip((energy - 8.33) * 40, 0, 1)]))
    path.write_text(header + path.read_text())
    return path


@pytest.mark.parametrize("file", ["cu_metal_rt.xdi", "ni_metal_rt.xdi"])
def test_xdi_files_are_named_by_their_sample_name(tmp_path, file):
    path = Path(shutil.copy(REFERENCES / file, tmp_path))
    sample = _header_value(path, "Sample.name")
    candidates = name_candidates(path)
    assert candidates[0] == ("_".join(sample.split()), "header Sample.name")
    assert candidates[-1] == (path.stem, "file name")  # no ref_/norm_ in these stems


@pytest.mark.parametrize("file", ["ref_NiO.txt", "ref_LiNiO2.txt"])
def test_headerless_pyxas_files_are_named_by_their_file_name(tmp_path, file):
    path = Path(shutil.copy(REFERENCES / file, tmp_path))
    assert not path.read_text().lstrip().startswith("#")  # PyXAS's files: two bare columns
    assert name_candidates(path) == [(path.stem.removeprefix("ref_"), "file name")]
    renamed = path.rename(tmp_path / f"norm_{path.stem.removeprefix('ref_')}_ref.txt")
    assert name_from_file(renamed) == path.stem.removeprefix("ref_")


@pytest.mark.parametrize(
    ("file", "name"),
    [
        ("ref_NiO.txt", "NiO"),
        ("norm_LiNiO2.dat", "LiNiO2"),
        ("nor_Ni-foil.nor", "Ni-foil"),
        ("NiO_norm.txt", "NiO"),
        ("REF-Co3O4_Ref.xdi", "Co3O4"),
        ("ref_norm_NiO.txt", "NiO"),
        ("my ref file.txt", "my_ref_file"),  # words inside a name stay
        ("ref.txt", "ref"),  # nothing but the word: kept
        ("Normal_spinel.txt", "Normal_spinel"),
    ],
)
def test_file_name_words_stripped_case_kept(file, name):
    assert name_from_file(file) == name


def test_header_keys_in_order_of_trust(tmp_path):
    both = _spectrum(
        tmp_path / "ref_x.txt", "# XDI/1.0\n# Sample.formula: NiO\n# Sample.name: NiO rock salt\n"
    )
    assert [origin for _, origin in name_candidates(both)] == [
        "header Sample.name",
        "header Sample.formula",
        "file name",
    ]
    assert name_candidates(both)[0][0] == "NiO_rock_salt"
    plain = _spectrum(tmp_path / "s.dat", "# name: LiNiO2\n# energy norm\n")
    assert name_candidates(plain)[0] == ("LiNiO2", "header name")
    sample = _spectrum(tmp_path / "t.dat", "# Sample: 'Ni(OH)2'\n")
    assert name_candidates(sample)[0] == ("Ni(OH)2", "header Sample")


def test_athena_saving_line(tmp_path):
    path = _spectrum(
        tmp_path / "export.nor",
        "# Athena data file -- Athena version 0.8.056\n"
        "# Saving Aegirine as normalized mu(E)\n# .  Element=Fe   Edge=K\n",
    )
    assert name_candidates(path)[0] == ("Aegirine", "Athena header 'Saving ... as'")


def test_element_symbol_and_titles_do_not_name_the_sample(tmp_path):
    path = _spectrum(
        tmp_path / "ref_NiO.txt", "# Element.symbol: Ni\n# title: Ni K-edge of NiO\n# ///\n"
    )
    assert name_candidates(path) == [("NiO", "file name")]


def test_unreadable_file(tmp_path):
    with pytest.raises(ReferenceError, match="cannot read"):
        name_candidates(tmp_path / "missing.xdi")
