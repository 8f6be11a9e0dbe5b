"""Reference spectra: reading them from files and putting them on a scan's energies."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from xanes_stream.errors import ReferenceError
from xanes_stream.spectra.normalize import edge_windows, find_e0, normalize

#: Column names that hold a measured absorption, most preferred first.
_MU_COLUMNS = ("norm", "flat", "mu", "mutrans", "mufluor", "murefer")
#: Energies below this are taken to be in keV.
_KEV_LIMIT = 200.0


@dataclass(frozen=True)
class Reference:
    """One reference spectrum: energies in eV (sorted, unique) and its absorption."""

    name: str
    energy: np.ndarray
    mu: np.ndarray
    normalized: bool
    source: str = ""
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        energy = np.asarray(self.energy, dtype=np.float64)
        mu = np.asarray(self.mu, dtype=np.float64)
        if energy.ndim != 1 or energy.shape != mu.shape or energy.size < 3:
            raise ReferenceError(
                f"reference {self.name!r}: energy and mu must be 1-D of equal length >= 3"
            )
        good = np.isfinite(energy) & np.isfinite(mu)
        order = np.argsort(energy[good], kind="stable")
        energy, mu = energy[good][order], mu[good][order]
        energy, first = np.unique(energy, return_index=True)
        object.__setattr__(self, "energy", energy)
        object.__setattr__(self, "mu", mu[first])

    @property
    def energy_range(self) -> tuple[float, float]:
        return float(self.energy[0]), float(self.energy[-1])


def looks_normalized(energy: np.ndarray, mu: np.ndarray) -> bool:
    """Guess whether a spectrum is edge-normalized: ~0 before the edge and ~1 well after."""
    n = mu.size
    head = np.median(mu[: max(3, n // 20)])
    tail = np.median(mu[-max(3, n // 10) :])
    return abs(head) < 0.1 and abs(tail - 1.0) < 0.25


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
    energy = table[:, 0]
    if np.nanmax(energy) < _KEV_LIMIT:
        energy = energy * 1000.0
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


def unit_step(reference: Reference) -> Reference:
    """The reference edge-normalized over its own measured range, with Larch's defaults.

    A reference's edge step is best measured over its full range (a XANES scan's short
    post-edge window holds white-line tails and oscillations), so raw references are
    normalized here, once, and the scan's pixels carry any window bias as a common factor.
    """
    if reference.normalized:
        return reference
    e0 = find_e0(reference.energy, reference.mu)
    norm = normalize(reference.energy, reference.mu, edge_windows(reference.energy, e0)).norm
    return Reference(
        reference.name, reference.energy, norm, True, reference.source, reference.metadata
    )


def reference_matrix(
    references: list[Reference], energies: np.ndarray, fit_range: tuple[float, float]
) -> np.ndarray:
    """The edge-normalized references on ``energies`` as columns of an (n_energy, k) matrix.

    Raises :class:`ReferenceError` when a reference does not cover ``fit_range`` (eV).
    """
    energies = np.asarray(energies, dtype=np.float64)
    names = [r.name for r in references]
    if len(set(names)) != len(names):
        raise ReferenceError(f"reference names must be unique, got {names}")
    columns = []
    for ref in references:
        lo, hi = ref.energy_range
        tolerance = 0.5
        if lo > fit_range[0] + tolerance or hi < fit_range[1] - tolerance:
            raise ReferenceError(
                f"reference {ref.name!r} covers {lo:.1f}-{hi:.1f} eV but the fit needs "
                f"{fit_range[0]:.1f}-{fit_range[1]:.1f} eV; give a wider reference or a "
                "narrower fit.energy_range"
            )
        normalized = unit_step(ref)
        columns.append(np.interp(energies, normalized.energy, normalized.mu))
    return np.stack(columns, axis=1)
