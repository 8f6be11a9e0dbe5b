"""Reading reference spectra: XDI or column text files, the bundled spectra, and a folder of them
as a library."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import numpy as np

from xanes_stream.errors import AnalysisError, ReferenceError
from xanes_stream.spectra.energies import Units, to_ev
from xanes_stream.spectra.references import Reference, looks_normalized

#: Column names that hold a measured absorption, most preferred first.
_MU_COLUMNS = ("norm", "flat", "mu", "mutrans", "mufluor", "murefer")


def read_reference(
    path: str | Path,
    name: str | None = None,
    *,
    normalized: bool | None = None,
    units: Units = "auto",
) -> Reference:
    """Read a reference spectrum from an XDI file or a two-column text file.

    Parameters
    ----------
    path : str or Path
        The file.
    name : str, optional
        The reference's name; None: the file's stem.
    normalized : bool, optional
        Whether the spectrum is edge-normalized; None: guessed from the data.
    units : {"auto", "eV", "keV"}
        The energy column's unit; ``"auto"``: the one the header states (XDI's
        ``# Column.1: energy eV``, or a first column named like ``energy(keV)``), else the
        values' (:func:`~xanes_stream.spectra.energies.to_ev`: an error where they cannot
        tell, as for 20-200).

    Returns
    -------
    Reference
        Energies in eV, sorted.
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
    stated = _stated_units(comments)
    units = stated if units == "auto" and stated else units
    try:
        energy = to_ev(table[:, 0], units)
    except AnalysisError as exc:
        raise ReferenceError(
            f"reference {name!r} ({path.name}): {exc}; for a reference file: state it in the "
            "header ('# Column.1: energy eV'), or give --reference-units eV|keV (analyze) or "
            "--units eV|keV (references add)"
        ) from None
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


def _stated_units(comments: list[str]) -> Units | None:
    """The energy unit a header states: XDI's ``# Column.1: energy eV``, else the first name
    of the header's last line when it says it (``# energy(eV) mu``, ``# E_keV norm``)."""
    unit = re.compile(r"(?<![a-z])(k?ev)(?![a-z])", re.IGNORECASE)
    labels = [c for c in comments if re.match(r"#\s*Column\.1\s*:", c, re.IGNORECASE)]
    if not labels and comments:
        names = comments[-1].lstrip("#").split()
        labels = names[:1] if names and not _is_number(names[0]) else []
    found = unit.search(labels[0].split(":", 1)[-1]) if labels else None
    if found is None:
        return None
    return "keV" if found.group(1).lower() == "kev" else "eV"


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
    library = [read_reference(p, name_from_file(p)) for p in paths]
    return sorted(library, key=lambda r: r.name)


#: Header keys (``# Key: value``, case-insensitive) that name the sample, most trusted first:
#: XDI's ``Sample.name`` and ``Sample.formula``, then plain ``name`` / ``sample`` lines.
HEADER_NAME_KEYS = ("Sample.name", "Sample.formula", "name", "sample", "sample name", "sample_name")
_HEADER_FIELD = re.compile(r"#\s*([A-Za-z][\w. ]*?)\s*:\s*(.*\S)\s*$")
_ATHENA_SAVING = re.compile(r"#\s*Saving\s+(.+?)\s+as\s+\S", re.IGNORECASE)
#: Words around a spectrum's name in file names (``ref_NiO``, ``NiO_norm``), stripped.
_NAME_AFFIXES = ("reference", "ref", "normalized", "norm", "nor", "std")
_AFFIX = "|".join(_NAME_AFFIXES)
_PREFIX = re.compile(rf"^(?:{_AFFIX})[_-](?=.)", re.IGNORECASE)
_SUFFIX = re.compile(rf"(?<=.)[_-](?:{_AFFIX})$", re.IGNORECASE)


def name_from_file(path: str | Path) -> str:
    """A reference's name from its file name: the stem without ``ref_``, ``norm_``, ``nor_``,
    ``std_``, ``reference_``, ``normalized_`` before it or ``_ref``, ``_norm``, ... after it
    (``-`` as well as ``_``; any case), the rest's case kept.

    Parameters
    ----------
    path : str or Path
        The spectrum's file.

    Returns
    -------
    str
        e.g. ``NiO`` for ``ref_NiO.txt`` or ``norm_NiO_ref.dat``; a stem that is nothing but
        such words is kept whole.
    """
    name = _one_word(Path(path).stem)
    while True:
        stripped = _SUFFIX.sub("", _PREFIX.sub("", name, count=1), count=1)
        if stripped == name:
            return name
        name = stripped


def name_candidates(path: str | Path) -> list[tuple[str, str]]:
    """Names a reference file gives itself, best first, each with where it came from.

    The header's sample name comes first (the :data:`HEADER_NAME_KEYS` in their order, then
    Athena's ``# Saving NAME as normalized mu(E)``), then :func:`name_from_file`. Spaces in a
    header's value become ``_`` (``Ni metal foil`` -> ``Ni_metal_foil``). The names are not yet
    checked as library names: the caller takes the first that passes its check.

    Parameters
    ----------
    path : str or Path
        The spectrum's file (XDI, Athena or column text).

    Returns
    -------
    list of (str, str)
        ``(name, origin)``, e.g. ``("Cu", "header Sample.name")``, the file name's last.

    Raises
    ------
    ReferenceError
        The file cannot be read.
    """
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise ReferenceError(f"cannot read {path}: {exc.strerror}") from None
    _, comments = _parse_columns(text)
    fields: dict[str, tuple[str, str]] = {}
    athena = None
    for line in comments:
        match = _HEADER_FIELD.match(line)
        if match:
            fields.setdefault(match.group(1).lower(), (match.group(1), match.group(2)))
        saving = _ATHENA_SAVING.match(line)
        if saving and athena is None:
            athena = saving.group(1)
    candidates = []
    for key in HEADER_NAME_KEYS:
        if key.lower() in fields:
            written, value = fields[key.lower()]
            candidates.append((_one_word(value), f"header {written}"))
    if athena is not None:
        candidates.append((_one_word(athena), "Athena header 'Saving ... as'"))
    candidates.append((name_from_file(path), "file name"))
    return [(name, origin) for name, origin in candidates if name]


def _one_word(text: str) -> str:
    return "_".join(text.strip().strip("\"'").split())
