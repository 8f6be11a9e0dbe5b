"""The simulated TXM beamline and its XANES plans.

``xanes_scan`` makes one run: a ``dark`` stream (shutter closed), a ``flat`` stream (sample out
of the beam) and the ``primary`` stream, one event per energy with the camera image and the
energy readback. Its start document carries ``md["xanes"]``: what a live analysis needs to fit
the run (reference names, energies, the image data key and the stream names).
``in_operando_series`` runs several scans while the sample reacts, sharing one series id.
Any other plan (e.g. ``bluesky.plans.count``) works with the same devices.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from pydantic import ValidationError

from xanes_stream.pipeline.settings import describe_validation_error
from xanes_stream.sim.devices import (
    CLOSED,
    IN_BEAM_TOLERANCE,
    OPEN,
    HDF5Camera,
    InlineCamera,
    SimAxis,
)
from xanes_stream.sim.phantom import ni_edge_energies
from xanes_stream.sim.txm import BeamlineError, ScanTruth, SimSettings, TXMSimulator

__all__ = [
    "MD_VERSION",
    "Beamline",
    "in_operando_series",
    "make_beamline",
    "xanes_scan",
]

#: Version of the ``md["xanes"]`` layout.
MD_VERSION = 1
#: How far (um) the sample stage moves the sample out of the beam for flat frames.
SAMPLE_OUT_OFFSET = 10 * IN_BEAM_TOLERANCE

Plan = Generator[Any, Any, Any]


def _energy_list(energies: Sequence[float] | np.ndarray) -> list[float]:
    values = np.asarray(energies, dtype=float).ravel()
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise BeamlineError("energies must be a non-empty list of finite numbers (eV)")
    return [float(e) for e in values]


def _image_key(camera: Any) -> str:
    key = getattr(camera, "image_key", None)
    if key:
        return key
    for name, desc in camera.describe().items():
        if len(desc.get("shape") or ()) >= 2:
            return name
    raise BeamlineError(f"{camera.name} describes no image (no data key of 2 or more dims)")


def xanes_scan(
    camera: Any,
    energy: Any,
    energies: Sequence[float] | np.ndarray,
    *,
    dark_frames: int = 1,
    flat_frames: int = 1,
    md: Mapping[str, Any] | None = None,
    references: Sequence[str] | None = None,
    sample: str | None = None,
    shutter: Any = None,
    sample_stage: Any = None,
) -> Plan:
    """One XANES run: ``dark`` and ``flat`` streams at the first energy, then ``primary``.

    ``references`` (names), ``sample``, ``shutter`` and ``sample_stage`` default to
    ``md["xanes"]`` and then to the camera's attributes of those names (the simulated cameras
    have them). Returns the run uid.
    """
    energy_list = _energy_list(energies)
    if dark_frames < 0 or flat_frames < 0:
        raise BeamlineError("dark_frames and flat_frames must be >= 0")
    user_md = dict(md or {})
    user_xanes = dict(user_md.pop("xanes", None) or {})
    refs = references or user_xanes.get("references") or getattr(camera, "references", None)
    if not refs:
        raise BeamlineError("xanes_scan needs the names of the reference spectra (references=)")
    sample = (
        sample
        or user_md.get("sample")
        or user_xanes.get("sample")
        or getattr(camera, "sample_name", None)
        or "unknown"
    )
    shutter = shutter if shutter is not None else getattr(camera, "shutter", None)
    stage = sample_stage if sample_stage is not None else getattr(camera, "sample_stage", None)
    if dark_frames and shutter is None:
        raise BeamlineError("dark frames need a shutter (shutter=)")
    if flat_frames and stage is None:
        raise BeamlineError("flat frames need a sample stage to move the sample out")
    image_key = _image_key(camera)
    energy_key = energy.hints.get("fields", [energy.name])[0]
    xanes = {
        "series": None,
        **user_xanes,
        "version": MD_VERSION,
        "references": [str(r) for r in refs],
        "sample": str(sample),
        "energies": energy_list,
        "energy_units": "eV",
        "mode": "transmission",
        "image_key": image_key,
        "energy_key": energy_key,
        "streams": {"primary": "primary", "dark": "dark", "flat": "flat"},
        "dark_frames": int(dark_frames),
        "flat_frames": int(flat_frames),
    }
    _md = {
        "detectors": [camera.name],
        "motors": [energy.name],
        "num_points": len(energy_list),
        "num_intervals": len(energy_list) - 1,
        "plan_args": {
            "camera": repr(camera),
            "energy": repr(energy),
            "energies": energy_list,
            "dark_frames": int(dark_frames),
            "flat_frames": int(flat_frames),
        },
        "plan_name": "xanes_scan",
        "hints": {"dimensions": [[[energy_key], "primary"]]},
        **user_md,
        "sample": str(sample),
        "xanes": xanes,
    }
    devices = [camera, energy]
    restore: list[tuple[Any, float]] = []

    def restore_state() -> Plan:
        for device, position in reversed(restore):
            yield from bps.mv(device, position)

    @bpp.stage_decorator([camera])
    @bpp.run_decorator(md=_md)
    def inner() -> Plan:
        yield from bps.mv(energy, energy_list[0])
        if dark_frames:
            restore.append((shutter, OPEN))
            yield from bps.mv(shutter, CLOSED)
            for _ in range(dark_frames):
                yield from bps.trigger_and_read(devices, name="dark")
            yield from bps.mv(shutter, OPEN)
        if flat_frames:
            position = yield from bps.rd(stage)
            restore.append((stage, position))
            yield from bps.mv(stage, position + SAMPLE_OUT_OFFSET)
            for _ in range(flat_frames):
                yield from bps.trigger_and_read(devices, name="flat")
            yield from bps.mv(stage, position)
        restore.clear()
        for e in energy_list:
            yield from bps.mv(energy, e)
            yield from bps.trigger_and_read(devices, name="primary")

    return (yield from bpp.finalize_wrapper(inner(), restore_state()))


def in_operando_series(
    n_scans: int,
    *,
    camera: Any,
    energy: Any,
    cell: Any,
    energies: Sequence[float] | np.ndarray,
    progress: Sequence[float] | None = None,
    series_id: str | None = None,
    md: Mapping[str, Any] | None = None,
    **scan_kwargs: Any,
) -> Plan:
    """``n_scans`` XANES runs; before each, the cell's reaction moves to the next ``progress``.

    ``progress`` defaults to ``n_scans`` steps from 0 to 1. Every run's ``md["xanes"]`` holds
    ``series`` (shared id), ``series_index`` and ``series_length``. Returns the run uids.
    """
    if n_scans < 1:
        raise BeamlineError("n_scans must be >= 1")
    steps = list(np.linspace(0.0, 1.0, n_scans)) if progress is None else list(progress)
    if len(steps) != n_scans:
        raise BeamlineError(f"progress has {len(steps)} values for {n_scans} scans")
    series_id = series_id or uuid.uuid4().hex
    user_md = dict(md or {})
    user_xanes = dict(user_md.pop("xanes", None) or {})
    uids = []
    for index, value in enumerate(steps):
        yield from bps.mv(cell, float(value))
        xanes = {
            **user_xanes,
            "series": series_id,
            "series_index": index,
            "series_length": n_scans,
        }
        uid = yield from xanes_scan(
            camera, energy, energies, md={**user_md, "xanes": xanes}, **scan_kwargs
        )
        uids.append(uid)
    return uids


@dataclass
class Beamline:
    """Devices of the simulated TXM, the simulator behind them, and the ground truth."""

    settings: SimSettings
    sim: TXMSimulator
    energy: SimAxis
    shutter: SimAxis
    sample_stage: SimAxis
    cell: SimAxis
    camera: InlineCamera | HDF5Camera
    data_dir: Path | None

    @property
    def truths(self) -> list[ScanTruth]:
        """One record per staging of the camera (per run), in order."""
        return self.sim.truths

    def truth(self, scan_index: int) -> ScanTruth:
        """Ground truth of the ``scan_index``-th run that used the camera (0-based)."""
        try:
            return self.sim.truths[scan_index]
        except IndexError:
            raise BeamlineError(
                f"no scan {scan_index}: {len(self.sim.truths)} scans so far"
            ) from None

    def xanes_scan(self, energies: Sequence[float] | None = None, **kwargs: Any) -> Plan:
        """:func:`xanes_scan` with this beamline's camera and energy (default energies:
        :func:`~xanes_stream.sim.phantom.ni_edge_energies`)."""
        energies = ni_edge_energies() if energies is None else energies
        return xanes_scan(self.camera, self.energy, energies, **kwargs)

    def in_operando_series(
        self, n_scans: int, energies: Sequence[float] | None = None, **kwargs: Any
    ) -> Plan:
        """:func:`in_operando_series` on this beamline."""
        energies = ni_edge_energies() if energies is None else energies
        return in_operando_series(
            n_scans,
            camera=self.camera,
            energy=self.energy,
            cell=self.cell,
            energies=energies,
            **kwargs,
        )


def _settings(source: Any, overrides: Mapping[str, Any]) -> SimSettings:
    if source is None:
        values: dict[str, Any] = {}
    elif isinstance(source, SimSettings):
        values = source.model_dump()
    elif isinstance(source, Mapping):
        values = dict(source)
    elif hasattr(source, "model_dump"):
        values = source.model_dump()
    else:
        raise BeamlineError(f"cannot make simulation settings from {type(source).__name__}")
    try:
        return SimSettings.model_validate({**values, **overrides})
    except ValidationError as exc:
        raise BeamlineError(
            f"invalid simulation settings: {describe_validation_error(exc)}"
        ) from None


def make_beamline(
    settings: SimSettings | Mapping[str, Any] | None = None,
    data_dir: str | Path | None = None,
    **overrides: Any,
) -> Beamline:
    """A simulated TXM from settings (a :class:`SimSettings`, a mapping or keywords).

    ``data_dir`` is where the HDF5 camera writes its files (required for ``detector="hdf5"``).
    """
    s = _settings(settings, overrides)
    if s.detector == "hdf5" and data_dir is None:
        raise BeamlineError("the hdf5 camera needs a data_dir to write its files")
    sim = TXMSimulator(s)
    energy = SimAxis(name="energy", value=8300.0, egu="eV")
    shutter = SimAxis(name="shutter", value=OPEN)
    sample_stage = SimAxis(name="sample_x", value=0.0, egu="um")
    cell = SimAxis(name="reaction", value=0.0)
    wiring = {
        "name": s.camera_name,
        "sim": sim,
        "energy": energy,
        "shutter": shutter,
        "sample_stage": sample_stage,
        "cell": cell,
    }
    path = Path(data_dir).resolve() if data_dir is not None else None
    camera = (
        HDF5Camera(**wiring, directory=path) if s.detector == "hdf5" else InlineCamera(**wiring)
    )
    return Beamline(s, sim, energy, shutter, sample_stage, cell, camera, path)
