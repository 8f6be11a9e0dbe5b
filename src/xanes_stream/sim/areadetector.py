"""A classic-ophyd areaDetector without EPICS: soft signals in place of the IOC's PVs.

The detectors FXI runs (``KinetixKlass``, ``AndorKlass`` in its profile collection) are
``SingleTrigger`` + ``DetectorBase`` with an HDF5 plugin mixing in ophyd's
``FileStoreHDF5IterativeWrite``. Here the same ophyd classes run over soft signals: the
:class:`SoftCam` holds the camera's settings (``num_images`` frames per trigger), the file
plugins (:class:`SoftHDF5Plugin`, :class:`SoftTIFFPlugin`) are ophyd's own
``FileStoreHDF5IterativeWrite`` / ``FileStoreTIFFIterativeWrite`` over soft copies of the
plugin's PVs, and a small stand-in for the IOC (:meth:`_SoftFilePlugin.write_frames`) writes
the frames where areaDetector would: ``/entry/data/data`` of one HDF5 file per staging
(``Stream`` mode), or one TIFF file per frame (``Single`` mode). So ``resource`` and ``datum``
documents come from ophyd's machinery (``resource_factory``, ``generate_datum``,
``collect_asset_docs``) exactly as at the beamline: one resource per staging (per run),
``point_number`` counting every trigger of the run whatever its stream, ``frame_per_point``
frames per datum.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import tifffile
from event_model import pack_datum_page
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.areadetector.filestore_mixins import (
    FileStoreHDF5IterativeWrite,
    FileStoreTIFFIterativeWrite,
)

__all__ = [
    "AD_DATASET",
    "TIMESTAMP_DATASET",
    "ArraySize",
    "DatumPager",
    "SoftCam",
    "SoftHDF5Plugin",
    "SoftTIFFPlugin",
]

#: Where areaDetector's HDF5 plugin puts the frames (its default XML layout).
AD_DATASET = "/entry/data/data"
#: Where it puts each frame's NDArray timestamp (read by the ``AD_HDF5_TS`` handler).
TIMESTAMP_DATASET = "/entry/instrument/NDAttributes/NDArrayTimeStamp"


class ArraySize(Device):
    """The camera's image size (``ArraySizeX_RBV`` ...), as ``cam.array_size``."""

    array_size_x = Cpt(Signal, value=0, kind="config")
    array_size_y = Cpt(Signal, value=0, kind="config")
    array_size_z = Cpt(Signal, value=0, kind="config")


class _SoftPV(Signal):
    """A soft signal that takes (and ignores) ``put(..., wait=...)`` as ``EpicsSignal`` does."""

    def put(self, value: Any, *, wait: bool = False, **kwargs: Any) -> None:
        super().put(value, **kwargs)


class SoftCam(Device):
    """The ``cam1:`` settings a ``DetectorBase`` and ``SingleTrigger`` use."""

    acquire = Cpt(_SoftPV, value=0)
    image_mode = Cpt(Signal, value=1, kind="config")  # 0 Single, 1 Multiple, 2 Continuous
    trigger_mode = Cpt(Signal, value=0, kind="config")  # 0 Internal
    num_images = Cpt(Signal, value=1, kind="config")
    acquire_time = Cpt(Signal, value=0.1, kind="config")
    acquire_period = Cpt(Signal, value=0.1, kind="config")
    array_counter = Cpt(Signal, value=0)
    array_size = Cpt(ArraySize, "")
    data_type = Cpt(Signal, value="UInt16", kind="config")
    data_type_disabled = Cpt(Signal, value=0)
    detector_state = Cpt(Signal, value=0)  # 0 Idle


class _SoftFilePlugin(Device):
    """The PVs of an areaDetector file plugin that ophyd's file-store mixins touch, and the
    IOC's part: open, write and close files as ``capture`` and ``file_write_mode`` say."""

    enable = Cpt(Signal, value=1, kind="config")
    file_path = Cpt(Signal, value="", kind="config")
    file_name = Cpt(Signal, value="", kind="config")
    file_number = Cpt(Signal, value=0, kind="config")
    file_template = Cpt(Signal, value="%s%s_%6.6d", kind="config")
    file_write_mode = Cpt(Signal, value="Single", kind="config")
    file_path_exists = Cpt(Signal, value=0)
    full_file_name = Cpt(Signal, value="")
    capture = Cpt(Signal, value=0)
    num_capture = Cpt(Signal, value=0, kind="config")
    num_captured = Cpt(Signal, value=0)
    auto_increment = Cpt(Signal, value="Yes", kind="config")
    auto_save = Cpt(Signal, value="Yes", kind="config")
    array_counter = Cpt(Signal, value=0)
    create_directory = Cpt(Signal, value=0, kind="config")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.file_path.subscribe(self._check_path, run=False)
        self.create_directory.subscribe(self._check_path, run=False)
        self.capture.subscribe(self._capture_changed, run=False)

    # -- the IOC -------------------------------------------------------------------------
    def _check_path(self, **_: Any) -> None:
        """Like the IOC: make the folder when ``CreateDirectory`` < 0, and say whether the
        ``FilePath`` exists (``FilePathExists_RBV``)."""
        path = self.file_path.get()
        if path and self.create_directory.get() < 0:
            Path(path).mkdir(parents=True, exist_ok=True)
        self.file_path_exists.put(int(bool(path) and Path(path).is_dir()))

    def _next_file_name(self) -> str:
        number = self.file_number.get()
        name = self.file_template.get() % (
            os.path.join(self.file_path.get(), ""),
            self.file_name.get(),
            number,
        )
        if self.auto_increment.get() == "Yes":
            self.file_number.put(number + 1)
        self.full_file_name.put(name)
        return name

    def _capture_changed(self, value: int = 0, old_value: int = 0, **_: Any) -> None:
        if value and not old_value:
            self.num_captured.put(0)
            self.open_stream()
        elif old_value and not value:
            self.close_stream()

    def open_stream(self) -> None:
        """``capture`` went to 1 (``Stream`` mode): open the run's file."""

    def close_stream(self) -> None:
        """``capture`` went to 0: close it."""

    def write_frames(self, frames: np.ndarray, timestamp: float) -> None:
        """The camera sent ``frames`` (n, ny, nx) to the plugin: write them."""
        raise NotImplementedError

    def _count(self, n: int) -> None:
        self.num_captured.put(self.num_captured.get() + n)
        self.array_counter.put(self.array_counter.get() + n)


class DatumPager:
    """A callback that hands documents on to ``callbacks`` with the ``datum`` documents
    packed into ``datum_page`` documents (``event_model.pack_datum_page``): the datums
    before each event, one page per resource, as a RunEngine that pages them would send.

    bluesky's RunEngine takes only ``datum`` from devices, so the pages are made here,
    between the RunEngine and its subscribers.
    """

    def __init__(self, *callbacks: Callable[[str, dict], Any]):
        self.callbacks = callbacks
        self._pending: list[dict] = []

    def __call__(self, name: str, doc: dict) -> None:
        if name == "datum":
            self._pending.append(doc)
            return
        self.flush()
        self._send(name, doc)

    def flush(self) -> None:
        """Send the datums held so far as pages."""
        by_resource: dict[str, list[dict]] = {}
        for datum in self._pending:
            by_resource.setdefault(datum["resource"], []).append(datum)
        self._pending = []
        for datums in by_resource.values():
            self._send("datum_page", pack_datum_page(*datums))

    def _send(self, name: str, doc: dict) -> None:
        for callback in self.callbacks:
            callback(name, doc)


class SoftHDF5Plugin(_SoftFilePlugin, FileStoreHDF5IterativeWrite):
    """ophyd's ``FileStoreHDF5IterativeWrite`` over soft PVs; the IOC part appends frames to
    :data:`AD_DATASET` (SWMR, so Tiled may read while it grows) and their timestamps to
    :data:`TIMESTAMP_DATASET`, one file per ``capture`` (per staging)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._h5: h5py.File | None = None

    def open_stream(self) -> None:
        self.close_stream()
        path = self._next_file_name()
        self._h5 = h5py.File(path, "w", libver="latest")
        self._h5.attrs["source"] = "xanes_stream.sim (areaDetector HDF5 plugin stand-in)"

    def _datasets(self, frames: np.ndarray) -> tuple[h5py.Dataset, h5py.Dataset]:
        h5 = self._h5
        if AD_DATASET not in h5:
            shape = frames.shape[1:]
            h5.create_dataset(
                AD_DATASET,
                shape=(0, *shape),
                maxshape=(None, *shape),
                chunks=(1, *shape),
                dtype=frames.dtype,
            )
            h5.create_dataset(TIMESTAMP_DATASET, shape=(0,), maxshape=(None,), dtype="<f8")
            h5.swmr_mode = True
        return h5[AD_DATASET], h5[TIMESTAMP_DATASET]

    def write_frames(self, frames: np.ndarray, timestamp: float) -> None:
        if self._h5 is None:
            raise RuntimeError(f"{self.name}: frames arrived while not capturing")
        data, stamps = self._datasets(frames)
        start, n = data.shape[0], len(frames)
        data.resize(start + n, axis=0)
        data[start:] = frames
        stamps.resize(start + n, axis=0)
        stamps[start:] = timestamp + 1e-3 * np.arange(n)
        data.flush()
        stamps.flush()
        self._count(n)

    def close_stream(self) -> None:
        if self._h5 is not None:
            self._h5.close()
        self._h5 = None


class SoftTIFFPlugin(_SoftFilePlugin, FileStoreTIFFIterativeWrite):
    """ophyd's ``FileStoreTIFFIterativeWrite`` over soft PVs; the IOC part writes each frame
    to its own file ``file_template % (file_path, file_name, file_number)`` (``Single``
    mode), ``file_number`` counting up from 0 at staging, so frame ``k`` of the run is file
    ``k`` (what the ``AD_TIFF`` handler reads for ``point_number * frame_per_point + i``)."""

    def write_frames(self, frames: np.ndarray, timestamp: float) -> None:
        if self.file_write_mode.get() != "Single":
            raise RuntimeError(f"{self.name}: the TIFF plugin stand-in writes Single mode only")
        for frame in frames:
            tifffile.imwrite(self._next_file_name(), frame, metadata=None)
        self._count(len(frames))
