"""An ophyd-async camera over the simulated TXM, built as ``ophyd_async.sim.SimBlobDetector``
is: a ``StandardDetector`` with trigger, acquire and data logics, the data logic returning
ophyd-async's own ``StreamResourceDataProvider`` (which composes the ``stream_resource`` and
``stream_datum`` documents with event-model).

Staged and prepared once per run (``TriggerInfo(collections_per_event=chunk_size)``), it writes
every frame of the run to one HDF5 file (``/entry/data/data``), so one ``stream_resource`` serves
the dark, primary and flat streams, and each event's ``stream_datum`` covers one index of
``chunk_size`` frames (data key shape ``[chunk_size, ny, nx]``), the indices running across the
streams: dark 0, primary 1, flat 2 ... as ophyd-async's areaDetector HDF writer does at FXI
(``10-kinetix-async.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
from ophyd_async.core import (
    DetectorAcquireLogic,
    DetectorDataLogic,
    DetectorTriggerLogic,
    StandardDetector,
    StaticPathProvider,
    StreamableDataProvider,
    StreamResourceDataProvider,
    StreamResourceInfo,
    TriggerInfo,
    UUIDFilenameProvider,
    soft_signal_r_and_setter,
)

from xanes_stream.sim.areadetector import AD_DATASET
from xanes_stream.sim.txm import FrameKind, TXMSimulator

__all__ = ["FileAsyncDetector", "FileCamera", "TXMAsyncDetector"]


class FileCamera:
    """What a camera behind the logics does: take ``frames_per_trigger`` frames on
    :meth:`acquire` and append them to the run's HDF5 file (``/entry/data/data``), counting
    them in ``frames_written``. Subclasses say what is imaged: :meth:`acquire`,
    :attr:`frame_shape`, :attr:`dtype`, and :meth:`begin` (the run's start) if they need it."""

    frame_shape: tuple[int, ...] = ()
    dtype: np.dtype = np.dtype(np.float32)

    def __init__(self) -> None:
        self.frames_per_trigger = 1
        self.frames_written, self._set_frames_written = soft_signal_r_and_setter(int)
        self._h5: h5py.File | None = None

    def begin(self) -> None:
        """The detector is staged for a run."""

    def open(self, path: Path) -> None:
        self.close()
        self._h5 = h5py.File(path, "w", libver="latest")
        self._h5.create_dataset(
            AD_DATASET,
            shape=(0, *self.frame_shape),
            maxshape=(None, *self.frame_shape),
            chunks=(1, *self.frame_shape),
            dtype=self.dtype,
        )
        self._h5.swmr_mode = True
        self._set_frames_written(0)

    async def acquire(self) -> None:
        raise NotImplementedError

    async def store(self, frames: np.ndarray) -> None:
        """Append ``frames`` to the run's HDF5 file."""
        n = len(frames)
        data = self._h5[AD_DATASET]
        start = data.shape[0]
        data.resize(start + n, axis=0)
        data[start:] = frames
        data.flush()
        self._set_frames_written(start + n)

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()
        self._h5 = None


class _TXMCamera(FileCamera):
    """The simulated TXM's camera: what it sees and the file it fills."""

    def __init__(self, sim: TXMSimulator, energy, shutter, sample_stage, cell):
        super().__init__()
        self.sim, self.energy, self.shutter = sim, energy, shutter
        self.sample_stage, self.cell = sample_stage, cell
        self.frame_shape = tuple(sim.settings.frame_shape)
        self.dtype = np.dtype(sim.settings.dtype)

    def frame_kind(self) -> FrameKind:
        if self.shutter.position < 0.5:
            return "dark"
        return "sample" if self.sample_stage.in_beam() else "flat"

    def begin(self) -> None:
        self.sim.begin_scan(self.cell.position)

    def open(self, path: Path) -> None:
        super().open(path)
        if self.sim.current_scan is not None:
            self.sim.current_scan.files.append(str(path))

    async def acquire(self) -> None:
        n = self.frames_per_trigger
        energy_ev = self.energy.position * (1000.0 if self.energy.egu == "keV" else 1.0)
        await self.store(self.sim.expose(self.frame_kind(), energy_ev, self.cell.position, n))


class _TriggerLogic(DetectorTriggerLogic):
    def __init__(self, camera: FileCamera):
        self.camera = camera

    async def prepare_internal(self, num: int, livetime: float, deadtime: float) -> None:
        self.camera.frames_per_trigger = max(int(num), 1)

    async def default_trigger_info(self) -> TriggerInfo:
        return TriggerInfo()


class _AcquireLogic(DetectorAcquireLogic):
    def __init__(self, camera: FileCamera):
        self.camera = camera

    async def start_acquiring(self) -> None:
        await self.camera.acquire()

    async def wait_for_idle(self) -> None:
        return None

    async def ensure_stopped(self) -> None:
        return None


class _DataLogic(DetectorDataLogic):
    def __init__(self, camera: FileCamera, path_provider: StaticPathProvider):
        self.camera, self.path_provider = camera, path_provider

    async def prepare_unbounded(self, datakey_name: str) -> StreamableDataProvider:
        info = self.path_provider(datakey_name)
        Path(info.directory_path).mkdir(parents=True, exist_ok=True)
        self.camera.open(Path(info.directory_path) / f"{info.filename}.h5")
        shape = tuple(self.camera.frame_shape)
        return StreamResourceDataProvider(
            uri=f"{info.directory_uri}{info.filename}.h5",
            resources=[
                StreamResourceInfo(
                    data_key=datakey_name,
                    shape=shape,
                    chunk_shape=(1, *shape),
                    dtype_numpy=np.dtype(self.camera.dtype).str,
                    parameters={"dataset": AD_DATASET},
                )
            ],
            mimetype="application/x-hdf5",
            collections_written_signal=self.camera.frames_written,
        )

    async def stop(self) -> None:
        self.camera.close()

    def get_hinted_fields(self, datakey_name: str) -> list[str]:
        return [datakey_name]


class FileAsyncDetector(StandardDetector):
    """An ophyd-async ``StandardDetector`` whose :class:`FileCamera` writes HDF5 files under
    ``directory`` (data key: the detector's name). Connect it in the RunEngine's loop
    (``ophyd_async.core.init_devices``, or ``ophyd_async.plan_stubs.ensure_connected``);
    plans prepare it with :meth:`step_trigger_info`."""

    def __init__(self, *, name: str, directory: str | Path, camera: FileCamera):
        self.camera = camera
        provider = StaticPathProvider(UUIDFilenameProvider(), Path(directory).resolve())
        self.add_detector_logics(
            _TriggerLogic(self.camera),
            _AcquireLogic(self.camera),
            self._data_logic(provider),
        )
        super().__init__(name=name)

    def _data_logic(self, provider: StaticPathProvider) -> DetectorDataLogic:
        """The data logic: where the frames go and the documents that say so."""
        return _DataLogic(self.camera, provider)

    @property
    def image_key(self) -> str:
        return self.name

    def stage(self):
        self.camera.begin()
        return super().stage()

    @staticmethod
    def step_trigger_info(frames_per_event: int, livetime: float = 0.0) -> TriggerInfo:
        """One event per trigger of ``frames_per_event`` frames (FXI's ``chunk_size``)."""
        return TriggerInfo(collections_per_event=int(frames_per_event), livetime=livetime)


class TXMAsyncDetector(FileAsyncDetector):
    """The ophyd-async camera of the simulated TXM, as :func:`~xanes_stream.sim.fxi.xanes_scan2`
    runs it at FXI."""

    def __init__(
        self,
        *,
        name: str,
        directory: str | Path,
        sim: TXMSimulator,
        energy: Any,
        shutter: Any,
        sample_stage: Any,
        cell: Any,
    ):
        camera = self._camera(sim, energy, shutter, sample_stage, cell)
        super().__init__(name=name, directory=directory, camera=camera)

    def _camera(self, *wiring: Any) -> _TXMCamera:
        """The camera behind the logics (a subclass may store its frames otherwise)."""
        return _TXMCamera(*wiring)

    @property
    def sim(self) -> TXMSimulator:
        return self.camera.sim
