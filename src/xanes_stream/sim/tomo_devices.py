"""A simulated tomographic XANES measurement on ophyd devices, and its Bluesky plan.

:class:`TomoCamera` records, at the energy and rotation angle its motors are at, the projection
that a :class:`~xanes_stream.sim.tomography.TomoPhantom` holds for them (flat-corrected
transmission, inline in the event); :class:`TomoAreaDetector` records the same projections as a
classic areaDetector does at FXI, into one HDF5 file per run (``resource``/``datum``, several
exposures per angle if ``num_images`` says so), and :class:`TomoAsyncDetector` as an ophyd-async
``StandardDetector`` does (``stream_resource``/``stream_datum``). :func:`tomo_xanes_scan`
measures every angle
at each energy in turn and says in its start document what a consumer needs to reconstruct
as it goes:
``md["xanes"]["tomography"] = {"angles": [...], "angle_key": ..., "energy_key": ...,
"image_key": ..., "mode": "transmission"}``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from ophyd import Component as Cpt
from ophyd import Device
from ophyd.areadetector.detectors import DetectorBase
from ophyd.areadetector.trigger_mixins import SingleTrigger
from ophyd.status import StatusBase

from xanes_stream.sim.areadetector import SoftCam, SoftHDF5Plugin
from xanes_stream.sim.async_detector import FileAsyncDetector, FileCamera
from xanes_stream.sim.devices import SimAxis, _finished, _ImageSignal
from xanes_stream.sim.tomography import TomoPhantom
from xanes_stream.sim.txm import BeamlineError

__all__ = ["TomoAreaDetector", "TomoAsyncDetector", "TomoCamera", "tomo_xanes_scan"]


def _index(values: np.ndarray, value: float, what: str) -> int:
    i = int(np.argmin(np.abs(values - value)))
    if abs(values[i] - value) > 1e-6 * max(1.0, abs(value)):
        raise BeamlineError(f"the phantom has no projection at {what} {value}")
    return i


def _projection(phantom: TomoPhantom, energy: SimAxis, rotation: SimAxis) -> np.ndarray:
    """The phantom's projection at the motors' energy and angle."""
    e = _index(phantom.energies, energy.position, "energy")
    return phantom.projections[e, _index(phantom.angles, rotation.position, "angle")]


class TomoCamera(Device):
    """Inline projections of a phantom at the ``energy`` and ``rotation`` motors' positions."""

    image = Cpt(_ImageSignal, kind="hinted")

    def __init__(self, *, name: str, phantom: TomoPhantom, energy: SimAxis, rotation: SimAxis):
        super().__init__(name=name)
        self.phantom, self.energy, self.rotation = phantom, energy, rotation
        self.image.put(np.zeros(phantom.projections.shape[2:], dtype=np.float32))

    @property
    def image_key(self) -> str:
        return f"{self.name}_image"

    def trigger(self) -> StatusBase:
        self.image.put(_projection(self.phantom, self.energy, self.rotation))
        return _finished()


class TomoAreaDetector(SingleTrigger, DetectorBase):
    """The projections of :class:`TomoCamera` through a classic areaDetector (the soft one of
    :mod:`xanes_stream.sim.areadetector`): one HDF5 file per run under ``directory``, an
    ``AD_HDF5`` resource and a datum per trigger; ``cam.num_images`` exposures per angle."""

    cam = Cpt(SoftCam, "cam1:")
    hdf5 = Cpt(SoftHDF5Plugin, "HDF1:", write_path_template="/", root="/")

    def __init__(
        self,
        prefix: str = "TOMO:",
        *,
        name: str,
        phantom: TomoPhantom,
        energy: SimAxis,
        rotation: SimAxis,
        directory: str | Path,
        **kwargs: Any,
    ):
        super().__init__(prefix, name=name, **kwargs)
        self.phantom, self.energy, self.rotation = phantom, energy, rotation
        self.hdf5.reg_root = str(Path(directory).resolve())
        self.hdf5.write_path_template = "tomo/"
        self.read_attrs = ["hdf5"]
        ny, nx = phantom.projections.shape[2:]
        self.cam.array_size.array_size_y.put(ny)
        self.cam.array_size.array_size_x.put(nx)
        self.cam.data_type.put("Float32")
        self.cam.acquire.subscribe(self._acquire_started, run=False)

    @property
    def image_key(self) -> str:
        """The data key of the image in events (``<name>_image``, ``SingleTrigger``'s)."""
        return self._image_name

    def trigger(self) -> StatusBase:
        """``SingleTrigger.trigger``; the camera then goes idle, which finishes it."""
        status = super().trigger()
        self.cam.acquire.put(0)
        return status

    def _acquire_started(self, value: int = 0, old_value: int = 0, **_: Any) -> None:
        """On ``Acquire`` 1: ``NumImages`` exposures of the projection, to the file plugin."""
        if not value or old_value:
            return
        n = int(self.cam.num_images.get())
        frames = np.repeat(_projection(self.phantom, self.energy, self.rotation)[None], n, 0)
        self.hdf5.write_frames(frames.astype(np.float32), time.time())
        self.cam.array_counter.put(self.cam.array_counter.get() + n)


class _TomoFileCamera(FileCamera):
    """``frames_per_trigger`` exposures of the projection at the motors' energy and angle."""

    def __init__(self, phantom: TomoPhantom, energy: SimAxis, rotation: SimAxis):
        super().__init__()
        self.phantom, self.energy, self.rotation = phantom, energy, rotation
        self.frame_shape = tuple(phantom.projections.shape[2:])

    async def acquire(self) -> None:
        frame = _projection(self.phantom, self.energy, self.rotation).astype(np.float32)
        await self.store(np.repeat(frame[None], self.frames_per_trigger, 0))


class TomoAsyncDetector(FileAsyncDetector):
    """The projections of :class:`TomoCamera` through an ophyd-async ``StandardDetector``:
    one HDF5 file per run under ``directory``; ``exposures`` frames per event."""

    def __init__(
        self,
        *,
        name: str,
        phantom: TomoPhantom,
        energy: SimAxis,
        rotation: SimAxis,
        directory: str | Path,
        exposures: int = 1,
    ):
        camera = _TomoFileCamera(phantom, energy, rotation)
        super().__init__(name=name, directory=directory, camera=camera)
        self.phantom, self.exposures = phantom, int(exposures)


def tomo_xanes_scan(
    camera: TomoCamera, energy: SimAxis, rotation: SimAxis, *, md: dict[str, Any] | None = None
):
    """Every angle of the camera's phantom at each of its energies, one event per projection
    (``camera`` a :class:`TomoCamera`, :class:`TomoAreaDetector` or :class:`TomoAsyncDetector`).

    Parameters
    ----------
    camera, energy, rotation : the devices (motors in eV and degrees).
    md : more start-document metadata (merged; ``xanes`` merged key by key).
    """
    phantom = camera.phantom
    md = dict(md or {})
    xanes = {
        **md.pop("xanes", {}),
        "references": [r.name for r in phantom.references],
        "tomography": {
            "angles": [float(a) for a in phantom.angles],
            "angle_key": rotation.name,
            "energy_key": energy.name,
            "image_key": camera.image_key,
            "mode": "transmission",
        },
    }
    n = phantom.energies.size * phantom.angles.size
    start = {"plan_name": "tomo_xanes_scan", "num_points": n, "xanes": xanes, **md}

    @bpp.stage_decorator([camera])
    @bpp.run_decorator(md=start)
    def inner():
        if isinstance(camera, FileAsyncDetector):  # ophyd-async: exposures per event
            info = camera.step_trigger_info(camera.exposures)
            yield from bps.prepare(camera, info, wait=True)
        for e in phantom.energies:
            yield from bps.mv(energy, float(e))
            for a in phantom.angles:
                yield from bps.mv(rotation, float(a))
                yield from bps.trigger_and_read([camera, energy, rotation])

    if isinstance(camera, FileAsyncDetector):
        from ophyd_async.plan_stubs import ensure_connected

        yield from ensure_connected(camera)
    return (yield from inner())
