"""FXI's ``xanes_scan2`` on the simulated TXM, with FXI's devices and names.

The plan follows ``xanes_scan2`` of NSLS2/fxi-profile-collection (``startup/41-scans.py``):
the detectors are the camera (``KinetixU``), ``ic3`` and ``ic4``, the motors ``XEng`` (keV)
and ``zps.sx/sy/sz/pi_r``, and all of them are read in every event. One ``dark`` event at the
start (shutter closed), then at every energy a ``primary`` event (sample in) and a ``flat``
event (sample moved out by ``out_x``/``out_y``...), each event ``chunk_size`` frames. The
camera is staged once, so dark, sample and flat frames share one resource and ``point_number``
runs 0 (dark), 1 (primary), 2 (flat), 3 (primary) ... The start document carries FXI's keys
(``plan_name``, ``num_eng``, ``eng_list``, ``XEng``, ``chunk_size``, ``num_bkg_images``,
``num_dark_images``, ``out_x``, ``exposure_time``, ``plan_args`` ..., ``hints: {}``) and the
beamline's ``RE.md`` keys; ``md["xanes"]`` only if ``references`` are given, and then only
what FXI has no key for. The ``baseline`` stream stands in for FXI's ``sd.baseline``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp

from xanes_stream.sim.beamline import MD_VERSION, SAMPLE_OUT_OFFSET, Plan, _settings
from xanes_stream.sim.devices import CLOSED, OPEN, SimAxis
from xanes_stream.sim.fxi_devices import IonChamber, KinetixHDF5, KinetixTIFF, SampleStage, SimMotor
from xanes_stream.sim.phantom import ni_edge_energies
from xanes_stream.sim.txm import BeamlineError, ScanTruth, SimSettings, TXMSimulator

__all__ = [
    "FXI_DETECTORS",
    "FXI_RE_MD",
    "FXIBeamline",
    "make_fxi_beamline",
    "xanes_scan2",
]

#: The cameras an FXI beamline can have here.
FXI_DETECTORS = ("ad_hdf5", "ad_tiff", "async_hdf5", "async_tiff")
#: What NSLS-II's ``RE.md`` adds to every start document (``nslsii.configure_base`` and the
#: data-session sync), with simulated values.
FXI_RE_MD: dict[str, Any] = {
    "beamline_id": "FXI",
    "facility": "NSLS-II",
    "cycle": "2026-1",
    "data_session": "pass-000000",
    "proposal": {"proposal_id": "000000", "type": "Commissioning", "title": "simulated"},
}
#: FXI's zone plate (``ZONE_PLATE`` in its profile), as the start document names it.
ZONE_PLATE = "Xradia_zp"
#: The simulated beamline's defaults that differ from :class:`SimSettings`'s: a 16-bit camera
#: and an incident beam that changes a little with energy and between exposures.
FXI_SIM_DEFAULTS: dict[str, Any] = {
    "camera_name": "KinetixU",
    "dtype": "uint16",
    "beam_slope": 0.03,
    "beam_jitter": 0.01,
}
#: Ion-chamber currents (A) at the nominal incident beam.
IC3_GAIN, IC4_GAIN = 1.5e-9, 0.9e-9


@dataclass
class FXIBeamline:
    """FXI's devices over the simulated TXM, and the ground truth."""

    settings: SimSettings
    sim: TXMSimulator
    XEng: SimMotor
    zps: SampleStage
    shutter: SimAxis
    cell: SimAxis
    camera: Any
    ic3: IonChamber
    ic4: IonChamber
    data_dir: Path

    @property
    def truths(self) -> list[ScanTruth]:
        """One record per staging of the camera (per run), in order."""
        return self.sim.truths

    def truth(self, scan_index: int) -> ScanTruth:
        """Ground truth of the ``scan_index``-th run (0-based)."""
        try:
            return self.sim.truths[scan_index]
        except IndexError:
            raise BeamlineError(f"no scan {scan_index}: {len(self.sim.truths)} so far") from None

    def xanes_scan2(self, eng_list: Sequence[float] | None = None, **kwargs: Any) -> Plan:
        """:func:`xanes_scan2` on this beamline (default energies: the Ni edge, in keV)."""
        if eng_list is None:
            eng_list = [e / 1000.0 for e in ni_edge_energies()]
        return xanes_scan2(self, eng_list, **kwargs)

    def series(self, n_scans: int, eng_list: Sequence[float] | None = None, **kwargs) -> Plan:
        """``n_scans`` runs of :meth:`xanes_scan2` while the sample reacts from 0 to 1."""
        uids = []
        for value in np.linspace(0.0, 1.0, n_scans) if n_scans > 1 else [0.0]:
            yield from bps.mv(self.cell, float(value))
            uids.append((yield from self.xanes_scan2(eng_list, **kwargs)))
        return uids


def _start_md(bl: FXIBeamline, eng_list: list[float], detectors, motors, args: dict) -> dict:
    out_x, out_y, chunk_size = args["out_x"], args["out_y"], args["chunk_size"]
    return {
        **FXI_RE_MD,
        "detectors": [d.name for d in detectors],
        "motors": [m.name for m in motors],
        "num_eng": len(eng_list),
        "num_bkg_images": chunk_size,
        "num_dark_images": chunk_size,
        "chunk_size": chunk_size,
        "out_x": out_x,
        "out_y": out_y,
        "exposure_time": args["exposure_time"],
        "eng_list": eng_list,
        "XEng": bl.XEng.position,
        "mag": args["mag"],
        "plan_args": {
            "eng_list": "eng_list",
            "exposure_time": args["exposure_time"],
            "chunk_size": chunk_size,
            "out_x": out_x,
            "out_y": out_y,
            "out_z": args["out_z"],
            "our_r": args["out_r"],  # sic: FXI's key
            "relative_move_flag": args["relative_move_flag"],
            "note": args["note"] or "None",
            "filters": "None",
            "zone_plate": ZONE_PLATE,
        },
        "plan_name": "xanes_scan2",
        "hints": {},  # FXI's plan looks up hints on a list of motors: none are set
        "operator": "FXI",
        "zone_plate": ZONE_PLATE,
        "note": args["note"] or "None",
    }


def _set_cam_param(camera: Any, exposure_time: float, chunk_size: int) -> Plan:
    """FXI's ``_set_cam_param``: ``chunk_size`` images per trigger (classic ophyd camera)."""
    if not hasattr(camera, "cam"):
        return
    period = max(exposure_time if exposure_time >= 0.05 else 0.05, exposure_time + 0.024)
    yield from bps.mv(camera.cam.acquire, 0)
    yield from bps.mv(camera.cam.image_mode, 1)
    yield from bps.mv(camera.cam.num_images, int(chunk_size))
    yield from bps.mv(camera.cam.acquire_time, exposure_time)
    yield from bps.mv(camera.cam.acquire_period, period)


def xanes_scan2(
    beamline: FXIBeamline,
    eng_list: Sequence[float],
    exposure_time: float = 0.1,
    chunk_size: int = 5,
    out_x: float | None = SAMPLE_OUT_OFFSET,
    out_y: float | None = None,
    out_z: float | None = None,
    out_r: float | None = None,
    relative_move_flag: int = 1,
    note: str = "",
    return_ini: bool = True,
    mag: float | None = None,
    md: Mapping[str, Any] | None = None,
    *,
    references: Sequence[str] | None = None,
    baseline: bool = True,
) -> Plan:
    """FXI's ``xanes_scan2``: ``eng_list`` in keV, a flat at every energy, ``chunk_size``
    frames per event. ``out_x`` ... move the sample out for the flats (relative moves with
    ``relative_move_flag``; FXI's default ``None`` would not move it, so here ``out_x``
    defaults to moving it out of the field of view). ``references`` (names of the reference
    spectra) add ``md["xanes"] = {"version", "references"}``. Returns the run uid.
    """
    bl = beamline
    energies = [float(e) for e in np.asarray(eng_list, dtype=float).ravel()]
    if not energies or not all(np.isfinite(energies)):
        raise BeamlineError("eng_list must be a non-empty list of finite energies (keV)")
    if max(energies) > 100:
        raise BeamlineError(f"eng_list is in keV (FXI's XEng); got {max(energies):g}")
    if int(chunk_size) < 1:
        raise BeamlineError("chunk_size must be >= 1")
    detectors = [bl.camera, bl.ic3, bl.ic4]
    zps = bl.zps
    motors = [bl.XEng, zps.sx, zps.sy, zps.sz, zps.pi_r]
    args = dict(locals())
    _md = _start_md(bl, energies, detectors, motors, args)
    if references:
        _md["xanes"] = {"version": MD_VERSION, "references": [str(r) for r in references]}
    _md.update(md or {})
    eng_ini = bl.XEng.position
    start = {m: m.position for m in (zps.sx, zps.sy, zps.sz, zps.pi_r)}
    offsets = dict(
        zip((zps.sx, zps.sy, zps.sz, zps.pi_r), (out_x, out_y, out_z, out_r), strict=True)
    )
    out = {
        m: start[m] if off is None else (start[m] + off if relative_move_flag else off)
        for m, off in offsets.items()
    }

    def move(positions: dict) -> Plan:
        if abs(positions[zps.pi_r] - zps.pi_r.position) > 0.5:
            yield from bps.mv(zps.pi_r, positions[zps.pi_r])
        yield from bps.mv(zps.sx, positions[zps.sx], zps.sy, positions[zps.sy])
        yield from bps.mv(zps.sz, positions[zps.sz])

    @bpp.stage_decorator(detectors + motors)
    @bpp.run_decorator(md=_md)
    def inner() -> Plan:
        if hasattr(bl.camera, "step_trigger_info"):  # ophyd-async: frames per event
            info = bl.camera.step_trigger_info(int(chunk_size), exposure_time)
            yield from bps.prepare(bl.camera, info, wait=True)
        yield from bps.mv(bl.shutter, CLOSED)
        yield from bps.trigger_and_read(detectors + motors, name="dark")
        yield from bps.mv(bl.shutter, OPEN)
        for eng in energies:
            yield from bps.mv(bl.XEng, eng)
            yield from bps.trigger_and_read(detectors + motors, name="primary")
            yield from move(out)
            yield from bps.trigger_and_read(detectors + motors, name="flat")
            yield from move(start)
        if return_ini:
            yield from bps.mv(bl.XEng, eng_ini)
        yield from bps.mv(bl.shutter, CLOSED)

    if hasattr(bl.camera, "step_trigger_info"):
        from ophyd_async.plan_stubs import ensure_connected

        yield from ensure_connected(bl.camera)
    yield from _set_cam_param(bl.camera, exposure_time, int(chunk_size))
    plan = bpp.baseline_wrapper(inner(), [bl.XEng, zps]) if baseline else inner()
    uid = yield from bpp.finalize_wrapper(plan, bps.mv(bl.shutter, OPEN))
    return uid


def make_fxi_beamline(
    settings: SimSettings | Mapping[str, Any] | None = None,
    data_dir: str | Path | None = None,
    **overrides: Any,
) -> FXIBeamline:
    """FXI's devices over a simulated TXM; ``settings.detector`` picks the camera:
    ``ad_hdf5`` (default), ``ad_tiff``, ``async_hdf5`` or ``async_tiff``.
    :data:`FXI_SIM_DEFAULTS` apply unless the settings say otherwise."""
    given = settings.model_dump() if isinstance(settings, SimSettings) else dict(settings or {})
    values = {**FXI_SIM_DEFAULTS, "detector": "ad_hdf5", **given, **overrides}
    if values["detector"].startswith("async_") and "camera_name" not in {**given, **overrides}:
        values["camera_name"] = "kinetix"  # FXI's ophyd-async Kinetix (10-kinetix-async.py)
    s = _settings(values, {})
    if s.detector not in FXI_DETECTORS:
        raise BeamlineError(f"FXI's camera is one of {FXI_DETECTORS}, not {s.detector!r}")
    if data_dir is None:
        raise BeamlineError("FXI's camera writes files: give a data_dir")
    path = Path(data_dir).resolve()
    sim = TXMSimulator(s)
    XEng = SimMotor(name="XEng", value=8.3, egu="keV")
    zps = SampleStage(name="zps")
    shutter = SimAxis(name="shutter", value=OPEN)
    cell = SimAxis(name="reaction", value=0.0)
    wiring = dict(sim=sim, energy=XEng, shutter=shutter, sample_stage=zps, cell=cell)
    if s.detector == "async_hdf5":
        from xanes_stream.sim.async_detector import TXMAsyncDetector

        camera = TXMAsyncDetector(name=s.camera_name, directory=path, **wiring)
    elif s.detector == "async_tiff":
        from xanes_stream.sim.async_tiff import TXMAsyncTiffDetector

        camera = TXMAsyncTiffDetector(name=s.camera_name, directory=path, **wiring)
    else:
        cls = KinetixHDF5 if s.detector == "ad_hdf5" else KinetixTIFF
        camera = cls("XF:18ID1-ES{Kinetix-Det:1}", name=s.camera_name, directory=path, **wiring)
    ic3 = IonChamber(name="ic3", sim=sim, gain=IC3_GAIN)
    ic4 = IonChamber(name="ic4", sim=sim, gain=IC4_GAIN)
    return FXIBeamline(s, sim, XEng, zps, shutter, cell, camera, ic3, ic4, path)
