"""Reading reference spectra: XDI or column text files, the bundled spectra, and a folder of them
as a library."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import numpy as np

from xanes_stream.errors import ReferenceError
from xanes_stream.spectra.energies import to_ev
from xanes_stream.spectra.references import Reference, looks_normalized

#: Column names that hold a measured absorption, most preferred first.
_MU_COLUMNS = ("norm", "flat", "mu", "mutrans", "mufluor", "murefer")


def read_reference(
    path: str | Path, name: str | None = None, *, normalized: bool | None = None
) -> Reference:
    """Read a reference spectrum from an XDI file or a two-column text file.

    Energies in keV are detected and converted to eV. ``normalized=None`` guesses from the data
    whether the spectrum is already edge-normalized.
    """
    path = Path(path)
    name = name or path.stem
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise ReferenceError(f"reference {name!r}: cannot read {path}: {exc.strerror}") from None
    columns, comments = _parse_columns(text)
    try:
        table = np.loadtxt(
            [line for line in text.splitlines() if line.strip() and line.lstrip()[0] not in "#;!"],
            ndmin=2,
        )
    except ValueError as exc:
        raise ReferenceError(f"reference {name!r}: {path} is not a numeric table: {exc}") from None
    if table.shape[1] < 2 or table.shape[0] < 3:
        raise ReferenceError(f"reference {name!r}: {path} needs two columns and 3+ rows")
    mu_column = _choose_mu_column(columns, table.shape[1])
    energy = to_ev(table[:, 0])
    mu = table[:, mu_column]
    order = np.argsort(energy, kind="stable")
    energy, mu = energy[order], mu[order]
    if normalized is None:
        normalized = looks_normalized(energy, mu)
    return Reference(
        name=name,
        energy=energy,
        mu=mu,
        normalized=normalized,
        source=str(path),
        metadata={"column": columns.get(mu_column, str(mu_column)), "header": comments[:40]},
    )


def _parse_columns(text: str) -> tuple[dict[int, str], list[str]]:
    """Column names (0-based index -> lower-case name) from an XDI or commented header."""
    columns: dict[int, str] = {}
    comments = []
    last_comment = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            if stripped:
                break
            continue
        comments.append(stripped)
        match = re.match(r"#\s*Column\.(\d+)\s*:\s*(\S+)", stripped, re.IGNORECASE)
        if match:
            columns[int(match.group(1)) - 1] = match.group(2).lower()
        last_comment = stripped
    if not columns and last_comment:
        names = last_comment.lstrip("#").split()
        if len(names) >= 2 and not any(_is_number(n) for n in names):
            columns = {i: n.lower() for i, n in enumerate(names)}
    return columns, comments


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _choose_mu_column(columns: dict[int, str], n_columns: int) -> int:
    for wanted in _MU_COLUMNS:
        for index, name in columns.items():
            if name == wanted and index < n_columns:
                return index
    return 1


def bundled_reference(name: str) -> Reference:
    """One of the reference spectra shipped with xanes-stream, e.g. ``"NiO"`` or ``"Ni"``."""
    files = {
        "NiO": "ref_NiO.txt",
        "LiNiO2": "ref_LiNiO2.txt",
        "Ni": "ni_metal_rt.xdi",
        "Cu": "cu_metal_rt.xdi",
    }
    if name not in files:
        raise ReferenceError(f"no bundled reference {name!r}; have {sorted(files)}")
    folder = resources.files("xanes_stream") / "data" / "references"
    with resources.as_file(folder / files[name]) as path:
        return read_reference(path, name)


#: File endings read as spectra by :func:`load_library`.
SPECTRUM_SUFFIXES = (".xdi", ".txt", ".dat", ".csv", ".nor", ".xmu")
_SKIP = ("readme", "license")


def load_library(folder: str | Path) -> list[Reference]:
    """Every reference spectrum in ``folder`` (XDI or two-column text), sorted by name.

    README and LICENSE files are skipped; a file that cannot be read raises
    :class:`ReferenceError` naming it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ReferenceError(f"reference library {folder} is not a folder")
    paths = sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and p.suffix.lower() in SPECTRUM_SUFFIXES
        and not p.name.lower().startswith(_SKIP)
    )
    if not paths:
        raise ReferenceError(f"reference library {folder} holds no spectra ({SPECTRUM_SUFFIXES})")
    library = [read_reference(p, _name(p)) for p in paths]
    return sorted(library, key=lambda r: r.name)


def _name(path: Path) -> str:
    stem = path.stem
    return stem[4:] if stem.lower().startswith("ref_") else stem
