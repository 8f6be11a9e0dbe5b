"""The devices of FXI (NSLS-II 18-ID) as its profile collection defines them, over the
simulated TXM.

- :class:`SimMotor`: an ``EpicsMotor``-like positioner (readback ``<name>``, setpoint
  ``<name>_user_setpoint``) for ``XEng`` (keV) and the sample stage ``zps`` (``zps_sx`` ...).
- :class:`IonChamber`: ``ic3``/``ic4``, the i404 electrometer currents (A), proportional to the
  incident beam of the camera's last exposure (0 with the shutter closed).
- :class:`KinetixHDF5` / :class:`KinetixTIFF`: ``SingleTrigger`` + ``DetectorBase`` like
  FXI's ``KinetixKlass``, with the soft areaDetector of :mod:`xanes_stream.sim.areadetector`;
  the HDF5 one carries FXI's ``HDF5PluginWithFileStore`` extra: a second resource
  (``AD_HDF5_TS``) over the same file and a ``<name>_timestamps`` datum per trigger.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path, PurePath
from typing import Any

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.areadetector.detectors import DetectorBase
from ophyd.areadetector.filestore_mixins import resource_factory
from ophyd.areadetector.trigger_mixins import SingleTrigger
from ophyd.status import StatusBase

from xanes_stream.sim.areadetector import SoftCam, SoftHDF5Plugin, SoftTIFFPlugin
from xanes_stream.sim.devices import IN_BEAM_TOLERANCE
from xanes_stream.sim.txm import FrameKind, TXMSimulator

__all__ = [
    "AD_PATH_TEMPLATE",
    "IonChamber",
    "KinetixHDF5",
    "KinetixTIFF",
    "SampleStage",
    "SimMotor",
]

#: FXI's ``FXIHDF5PluginWithFileStore.path_template_str``: folders under the root by date.
AD_PATH_TEMPLATE = "%Y/%m/%d/"


class SimMotor(Device):
    """A soft motor with ``EpicsMotor``'s names; arrives at once; carries ``egu``."""

    user_readback = Cpt(Signal, value=0.0, kind="hinted")
    user_setpoint = Cpt(Signal, value=0.0, kind="normal")

    def __init__(self, *, name: str, value: float = 0.0, egu: str = "", **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.user_readback.name = self.name
        self.egu = egu
        self.user_readback.put(float(value))
        self.user_setpoint.put(float(value))

    @property
    def position(self) -> float:
        return float(self.user_readback.get())

    def set(self, value: float) -> StatusBase:
        self.user_setpoint.put(float(value))
        self.user_readback.put(float(value))
        status = StatusBase()
        status.set_finished()
        return status

    def describe(self) -> dict[str, dict]:
        description = super().describe()
        for key in description:
            description[key]["units"] = self.egu
        return description


class SampleStage(Device):
    """FXI's ``TXMSampleStage`` ``zps``: the sample's x, y, z (um) and rotation (deg)."""

    sx = Cpt(SimMotor, egu="um")
    sy = Cpt(SimMotor, egu="um")
    sz = Cpt(SimMotor, egu="um")
    pi_r = Cpt(SimMotor, egu="deg")

    def in_beam(self) -> bool:
        """The simulated sample sits at (0, 0): in the field of view within the tolerance."""
        return max(abs(self.sx.position), abs(self.sy.position)) <= IN_BEAM_TOLERANCE


class IonChamber(Signal):
    """An ion-chamber current (A): ``gain`` times the incident beam of the last exposure."""

    def __init__(self, *, name: str, sim: TXMSimulator, gain: float, **kwargs: Any):
        super().__init__(name=name, value=0.0, kind="hinted", **kwargs)
        self.sim, self.gain = sim, float(gain)

    def get(self, **kwargs: Any) -> float:
        return self.gain * float(self.sim.incident)

    def read(self) -> dict[str, dict]:
        return {self.name: {"value": self.get(), "timestamp": time.time()}}

    def describe(self) -> dict[str, dict]:
        description = super().describe()
        description[self.name].update(units="A", precision=6)
        return description


class _TXMAreaDetector(SingleTrigger, DetectorBase):
    """What the camera of the simulated TXM images, through an areaDetector's ``cam``."""

    cam = Cpt(SoftCam, "cam1:")
    _plugin_attr = ""

    def __init__(
        self,
        prefix: str,
        *,
        name: str,
        sim: TXMSimulator,
        energy: SimMotor,
        shutter: Any,
        sample_stage: SampleStage,
        cell: Any,
        directory: str | Path,
        **kwargs: Any,
    ):
        super().__init__(prefix, name=name, **kwargs)
        self.sim, self.energy, self.shutter, self.sample_stage, self.cell = (
            sim,
            energy,
            shutter,
            sample_stage,
            cell,
        )
        plugin = self.plugin
        plugin.reg_root = str(Path(directory).resolve())
        plugin.write_path_template = AD_PATH_TEMPLATE
        self.read_attrs = [self._plugin_attr]
        shape = sim.settings.shape
        self.cam.array_size.array_size_y.put(shape[0])
        self.cam.array_size.array_size_x.put(shape[1])
        self.cam.data_type.put({"uint16": "UInt16", "float32": "Float32"}[sim.settings.dtype])
        self.cam.acquire.subscribe(self._acquire_started, run=False)

    @property
    def plugin(self) -> SoftHDF5Plugin | SoftTIFFPlugin:
        """The file plugin (``hdf5`` or ``tiff``)."""
        return getattr(self, self._plugin_attr)

    @property
    def image_key(self) -> str:
        """The data key of the image in events (``<name>_image``, ``SingleTrigger``'s)."""
        return self._image_name

    @property
    def references(self) -> tuple[str, ...]:
        return self.sim.reference_names

    @property
    def sample_name(self) -> str:
        return self.sim.settings.sample

    def frame_kind(self) -> FrameKind:
        if self.shutter.position < 0.5:
            return "dark"
        return "sample" if self.sample_stage.in_beam() else "flat"

    def stage(self) -> list:
        self.sim.begin_scan(self.cell.position)
        staged = super().stage()
        scan = self.sim.current_scan
        if scan is not None and self.plugin._fn:
            scan.files.append(str(self.plugin._fn))
        return staged

    def trigger(self) -> StatusBase:
        """``SingleTrigger.trigger`` (``Acquire`` 1, then the datum); then the camera goes
        idle (``Acquire`` 0), which finishes the trigger's status."""
        status = super().trigger()
        self.cam.acquire.put(0)
        return status

    def _acquire_started(self, value: int = 0, old_value: int = 0, **_: Any) -> None:
        """The camera's part: on ``Acquire`` 1, take ``NumImages`` frames and hand them to
        the file plugin, which writes them before the datum is made."""
        if not value or old_value:
            return
        n = int(self.cam.num_images.get())
        energy_ev = self.energy.position * (1000.0 if self.energy.egu == "keV" else 1.0)
        frames = self.sim.expose(self.frame_kind(), energy_ev, self.cell.position, n)
        self.plugin.write_frames(frames, time.time())
        self.cam.array_counter.put(self.cam.array_counter.get() + n)


class FXIHDF5Plugin(SoftHDF5Plugin):
    """FXI's ``HDF5PluginWithFileStore``: ``FileStoreHDF5IterativeWrite`` plus a timestamp
    resource (spec ``AD_HDF5_TS``, same file and ``frame_per_point``) whose datum id goes into
    ``time_stamp`` (data key ``<camera>_timestamps``) at every trigger."""

    time_stamp = Cpt(Signal, value="", kind="normal")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._ts_datum_factory = None
        self._ts_counter = None

    def stage(self) -> list:
        self._ts_counter = itertools.count()
        return super().stage()

    def _generate_resource(self, resource_kwargs: dict) -> None:
        super()._generate_resource(resource_kwargs)
        resource, self._ts_datum_factory = resource_factory(
            spec="AD_HDF5_TS",
            root=str(self.reg_root),
            resource_path=str(PurePath(self._fn).relative_to(self.reg_root)),
            resource_kwargs=resource_kwargs,
            path_semantics=self.path_semantics,
        )
        self._asset_docs_cache.append(("resource", resource))

    def generate_datum(self, key: str, timestamp: float, datum_kwargs: dict) -> str:
        ret = super().generate_datum(key, timestamp, datum_kwargs)
        datum = self._ts_datum_factory({"point_number": next(self._ts_counter)})
        self._asset_docs_cache.append(("datum", datum))
        self.time_stamp.put(datum["datum_id"])
        return ret

    def describe(self) -> dict[str, dict]:
        description = super().describe()
        if self.time_stamp.name in description:
            description[self.time_stamp.name].update(
                external="FILESTORE:",
                dtype="array",
                shape=[int(self.get_frames_per_point())],
                dtype_numpy=np.dtype("<f8").str,
            )
        return description


class KinetixHDF5(_TXMAreaDetector):
    """FXI's ``KinetixKlass`` (``KinetixU``): frames to one HDF5 file per run, ``AD_HDF5``."""

    hdf5 = Cpt(FXIHDF5Plugin, "HDF1:", write_path_template="/", root="/")
    _plugin_attr = "hdf5"

    def __init__(self, prefix: str, *, name: str, **kwargs: Any):
        super().__init__(prefix, name=name, **kwargs)
        self.hdf5.read_attrs = ["time_stamp"]
        self.hdf5.time_stamp.name = f"{self.name}_timestamps"


class KinetixTIFF(_TXMAreaDetector):
    """The same camera with areaDetector's TIFF plugin: a file per frame, ``AD_TIFF``."""

    tiff = Cpt(SoftTIFFPlugin, "TIFF1:", write_path_template="/", root="/")
    _plugin_attr = "tiff"

    def __init__(self, prefix: str, *, name: str, **kwargs: Any):
        super().__init__(prefix, name=name, **kwargs)
        self.tiff.read_attrs = []
