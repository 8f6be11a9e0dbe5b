"""Ophyd (sync) devices of the simulated full-field TXM, imaging :mod:`xanes_stream.sim.txm`'s
reacting phantom.

What the camera records depends on the other devices: shutter closed gives a dark frame, sample
out of the beam a flat frame. Two cameras: :class:`InlineCamera` puts the image in the event;
:class:`HDF5Camera` writes each frame to an HDF5 file (``/entry/data/data``) and announces it with
``stream_resource`` and ``stream_datum`` documents, a new file (and resource) for each kind of
frame (dark, flat, sample), since a stream resource belongs to one stream.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from event_model import compose_stream_resource
from event_model.documents.stream_datum import StreamRange
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import StatusBase

from xanes_stream.sim.txm import FrameKind, TXMSimulator

__all__ = ["CLOSED", "DATASET", "OPEN", "HDF5Camera", "InlineCamera", "SimAxis"]

#: HDF5 dataset holding the frames, (n, ny, nx).
DATASET = "/entry/data/data"
#: Shutter positions.
OPEN, CLOSED = 1, 0
#: The sample is in the beam while ``|sample_x|`` is below this (um).
IN_BEAM_TOLERANCE = 100.0


def _finished() -> StatusBase:
    status = StatusBase()
    status.set_finished()
    return status


class SimAxis(Device):
    """A soft positioner that arrives at once (like ``ophyd.sim.SynAxis``, without importing
    ``ophyd.sim``, which leaves a temporary directory behind at import); carries its units."""

    readback = Cpt(Signal, value=0.0, kind="hinted")
    setpoint = Cpt(Signal, value=0.0, kind="normal")

    def __init__(self, *, name: str, value: float = 0.0, egu: str = "", **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.readback.name = self.name
        self.egu = egu
        self.readback.put(float(value))
        self.setpoint.put(float(value))

    @property
    def position(self) -> float:
        return float(self.readback.get())

    def set(self, value: float) -> StatusBase:
        self.setpoint.put(float(value))
        self.readback.put(float(value))
        return _finished()

    def describe(self) -> dict[str, dict]:
        description = super().describe()
        if self.egu:
            for key in description:
                description[key]["units"] = self.egu
        return description


class _ImageSignal(Signal):
    """An image signal whose description carries ``dtype_numpy`` (Tiled keeps float32/uint16)."""

    def describe(self) -> dict[str, dict]:
        description = super().describe()
        value = np.asarray(self.get())
        description[self.name].update(
            dtype="array", shape=list(value.shape), dtype_numpy=value.dtype.str
        )
        return description


class _CameraLogic:
    """What the simulated camera sees, from the state of the other devices."""

    sim: TXMSimulator
    energy: SimAxis
    shutter: SimAxis
    sample_stage: SimAxis
    cell: SimAxis

    def _wire(self, sim, energy, shutter, sample_stage, cell) -> None:
        self.sim, self.energy, self.shutter = sim, energy, shutter
        self.sample_stage, self.cell = sample_stage, cell

    @property
    def image_key(self) -> str:
        """The data key of the image in events and in Tiled."""
        return f"{self.name}_image"

    @property
    def references(self) -> tuple[str, ...]:
        return self.sim.reference_names

    @property
    def sample_name(self) -> str:
        return self.sim.settings.sample

    def frame_kind(self) -> FrameKind:
        if self.shutter.position < 0.5:
            return "dark"
        if abs(self.sample_stage.position) > IN_BEAM_TOLERANCE:
            return "flat"
        return "sample"

    def _begin_scan(self) -> None:
        self.sim.begin_scan(self.cell.position)

    def _acquire(self) -> tuple[FrameKind, np.ndarray]:
        kind = self.frame_kind()
        return kind, self.sim.frame(kind, self.energy.position, self.cell.position)


class InlineCamera(_CameraLogic, Device):
    """The image goes into each event (data key ``<name>_image``)."""

    image = Cpt(_ImageSignal, kind="hinted")

    def __init__(self, *, name: str, sim: TXMSimulator, energy, shutter, sample_stage, cell):
        super().__init__(name=name)
        self._wire(sim, energy, shutter, sample_stage, cell)
        self.image.put(np.zeros(sim.settings.frame_shape, dtype=sim.settings.dtype))

    def stage(self) -> list:
        staged = super().stage()
        self._begin_scan()
        return staged

    def trigger(self) -> StatusBase:
        _, frame = self._acquire()
        self.image.put(frame)
        return _finished()


class HDF5Camera(_CameraLogic, Device):
    """Writes frames to HDF5 files (SWMR) and emits ``stream_resource``/``stream_datum``.

    Data key ``<name>_image`` is external (``"STREAM:"``); each file holds one kind of frame
    in :data:`DATASET` and is referenced as ``file://localhost/<absolute path>``.
    """

    def __init__(
        self, *, name: str, sim: TXMSimulator, energy, shutter, sample_stage, cell, directory
    ):
        super().__init__(name=name)
        self._wire(sim, energy, shutter, sample_stage, cell)
        self.directory = Path(directory).resolve()
        self._shape = tuple(sim.settings.frame_shape)
        self._dtype = np.dtype(sim.settings.dtype)
        self._file: h5py.File | None = None
        self._dataset: h5py.Dataset | None = None
        self._kind: FrameKind | None = None
        self._bundle = None
        self._pending_resource = False
        self._index = 0  # frames written to the current file
        self._emitted = 0  # frames of the current file announced in stream_datum
        self.path: Path | None = None

    # -- files ---------------------------------------------------------------------------
    def _open(self, kind: FrameKind) -> None:
        self._close()
        scan = self.sim.current_scan
        tag = f"{scan.index:04d}" if scan is not None else "0000"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / f"{self.name}_{tag}_{kind}_{uuid.uuid4().hex[:8]}.h5"
        self._file = h5py.File(self.path, "w", libver="latest")
        self._dataset = self._file.create_dataset(
            DATASET,
            shape=(0, *self._shape),
            maxshape=(None, *self._shape),
            chunks=(1, *self._shape),
            dtype=self._dtype,
        )
        self._file.swmr_mode = True  # Tiled may read while frames are appended
        self._kind, self._index, self._emitted = kind, 0, 0
        self._bundle = compose_stream_resource(
            mimetype="application/x-hdf5",
            uri=f"file://localhost{self.path}",
            data_key=self.image_key,
            parameters={"dataset": DATASET, "chunk_shape": [1, *self._shape]},
        )
        self._pending_resource = True
        if scan is not None:
            scan.files.append(str(self.path))

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = self._dataset = None

    # -- ophyd / bluesky -----------------------------------------------------------------
    def stage(self) -> list:
        self._begin_scan()
        self._kind = None
        return [self]

    def unstage(self) -> list:
        self._close()
        self._kind = self._bundle = None
        return [self]

    def trigger(self) -> StatusBase:
        kind, frame = self._acquire()
        if kind != self._kind or self._file is None:
            self._open(kind)
        self._dataset.resize(self._index + 1, axis=0)
        self._dataset[self._index] = frame
        self._dataset.flush()
        self._index += 1
        return _finished()

    def read(self) -> dict:
        return {}  # the frame is external, announced by stream_datum

    def describe(self) -> dict[str, dict]:
        return {
            self.image_key: {
                "source": f"sim://{self.name}",
                "shape": list(self._shape),
                "dtype": "array",
                "dtype_numpy": self._dtype.str,
                "external": "STREAM:",
            }
        }

    def read_configuration(self) -> dict:
        return {}

    def describe_configuration(self) -> dict:
        return {}

    def get_index(self) -> int:
        return self._index

    def collect_asset_docs(self, index: int | None = None) -> Iterator[tuple[str, dict]]:
        if self._bundle is None:
            return
        if self._pending_resource:
            self._pending_resource = False
            yield "stream_resource", self._bundle.stream_resource_doc
        stop = self._index if index is None else min(index, self._index)
        if stop > self._emitted:
            yield (
                "stream_datum",
                self._bundle.compose_stream_datum(
                    indices=StreamRange(start=self._emitted, stop=stop)
                ),
            )
            self._emitted = stop
