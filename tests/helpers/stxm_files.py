"""Small STXM stack files written as the microscopes' software writes them: an SDF ``.hdr``
with ``_aNNN.xim`` images and an ``.xsp`` I0, an aXis2000 ``.ncb`` + ``.dat``, and an NXstxm
NeXus file (following the NXstxm definition: entry/definition, entry/counter0 NXdata with
data, energy, sample_y, sample_x, count_time, entry/control NXmonitor data)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np


@dataclass
class Truth:
    """A raw-count stack of known optical density: counts = i0 * exp(-od)."""

    energies: np.ndarray  # eV
    od: np.ndarray  # (n, ny, nx)
    i0: np.ndarray  # (n,)
    x: np.ndarray  # um
    y: np.ndarray  # um

    @property
    def counts(self) -> np.ndarray:
        return self.i0[:, None, None] * np.exp(-self.od)


def li_k_truth(ny: int = 12, nx: int = 16, n: int = 21) -> Truth:
    """A Li K-edge (55 eV) stack: an edge step in the left half, I0 falling linearly, and the
    two right columns empty (OD 0)."""
    energies = np.linspace(50.0, 60.0, n)
    step = 1.0 / (1.0 + np.exp(-(energies - 55.0) / 0.5))
    thickness = np.zeros((ny, nx))
    thickness[:, : nx // 2] = np.linspace(0.5, 1.5, ny)[:, None]
    od = 0.2 * thickness[None] + step[:, None, None] * thickness[None]
    i0 = 2000.0 - 10.0 * (energies - 50.0)
    x = -10.0 + 0.05 * np.arange(nx)
    y = 3.0 + 0.05 * np.arange(ny)
    return Truth(energies, od, i0, x, y)


def _points(values: np.ndarray) -> str:
    return f"({values.size}, " + ", ".join(f"{v:.3f}" for v in values) + ")"


def write_sdf(folder: Path, name: str, truth: Truth, *, unit: str = "eV") -> Path:
    """``name.hdr`` and ``name_a000.xim`` ...; returns the header's path."""
    folder.mkdir(parents=True, exist_ok=True)
    header = (
        f'ScanDefinition = {{ Label = "{name}.hdr"; Type = "NEXAFS Image Scan"; '
        'Flags = "Image Stack"; Dwell = 1.5;\n\tRegions = (1,\n{\n'
        f'\t\t\tPAxis = {{ Name = "Sample X"; Unit = "um"; Min = {truth.x[0]}; '
        f"Max = {truth.x[-1]}; Dir = 1;\n\t\t\t\tPoints = {_points(truth.x)};\n}};\n\n"
        f'\t\t\tQAxis = {{ Name = "Sample Y"; Unit = "um"; Min = {truth.y[0]}; '
        f"Max = {truth.y[-1]}; Dir = 1;\n\t\t\t\tPoints = {_points(truth.y)};\n}};\n}});\n\n"
        f'\tStackAxis = {{ Name = "Energy"; Unit = "{unit}"; Min = {truth.energies[0]}; '
        f"Max = {truth.energies[-1]}; Dir = 1;\n\t\tPoints = {_points(truth.energies)};\n}};\n\n"
        '\tChannels = (1,\n{ Name = "counter1"; Unit = "counts";});\n};\n'
        ' Time = "2026 December 4 10:00:00"; BeamFeedback = true;\n'
        'Image2 = {StorageRingCurrent = 255.26; Time = "2026 December 4 10:00:30";};\n'
    )
    path = folder / f"{name}.hdr"
    path.write_text(header)
    for k, image in enumerate(truth.counts):
        lines = ["\t".join(f"{v:.6f}" for v in row) for row in image]
        (folder / f"{name}_a{k:03d}.xim").write_text("\n".join(lines) + "\n")
    return path


def write_xsp(path: Path, energies: np.ndarray, counts: np.ndarray) -> Path:
    path.write_text("".join(f"{e:.7E} {c:.7E}\n" for e, c in zip(energies, counts, strict=True)))
    return path


def write_ncb(path: Path, truth: Truth, scale: float = 10.0) -> Path:
    """``path`` (.ncb: int16 of counts * scale) and its ``.dat``."""
    n, ny, nx = truth.od.shape
    values = np.round(truth.counts * scale).astype("<i2")
    values.tofile(path)
    lines = [f"{nx} {ny} {scale}", f"{truth.x[0]} {truth.x[-1]}", f"{truth.y[0]} {truth.y[-1]}"]
    lines += [str(n), *(f"{e:.4f}" for e in truth.energies)]
    lines += [f"image_{k:03d}.xim {e:.4f} 1.5" for k, e in enumerate(truth.energies)]
    path.with_suffix(".dat").write_text("\n".join(lines) + "\n")
    return path


def write_nxstxm(path: Path, truth: Truth, *, units: str | None = "eV", control=True) -> Path:
    """An NXstxm file: data (energy, sample_y, sample_x) with axes attributes, control I0."""
    with h5py.File(path, "w") as f:
        entry = f.create_group("entry0")
        entry.attrs["NX_class"] = "NXentry"
        entry["definition"] = "NXstxm"
        data = entry.create_group("counter0")
        data.attrs.update(NX_class="NXdata", signal="data", axes=["energy", "sample_y", "sample_x"])
        data["data"] = truth.counts.astype(np.float32)
        energy = data.create_dataset("energy", data=truth.energies)
        if units is not None:
            energy.attrs["units"] = units
        data["sample_y"] = truth.y
        data["sample_x"] = truth.x
        data["count_time"] = np.full(truth.energies.size, 0.0015)
        data["stxm_scan_type"] = "sample image stack"
        if control:
            monitor = entry.create_group("control")
            monitor.attrs["NX_class"] = "NXmonitor"
            monitor["data"] = truth.i0
    return path
