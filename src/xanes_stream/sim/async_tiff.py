"""An ophyd-async camera over the simulated TXM writing a TIFF file per frame, with
ophyd-async's own areaDetector TIFF data logic (``ADWriterFactory.tiff``'s
``ADMultipartDataLogic``) driving a stand-in for the ``NDPluginFileIO`` plugin: the signals
of ``NDFileIO`` the logic uses, soft and connected in mock mode (no EPICS transport is
installed here), behaving as areaDetector's NDFileTIFF plugin does: it creates the folder it
is given, and while capturing writes each frame to ``FileTemplate % (FilePath, FileName,
FileNumber)`` (``%s%s_%6.6d.tiff``), counting ``FileNumber`` and ``NumCaptured`` up.

So the documents are exactly ophyd-async 0.21's: one ``stream_resource`` for the run
(mimetype ``multipart/related;type=image/tiff``, ``uri`` the folder's ``file://`` URI,
``parameters`` ``{"template": "<name>_{:06d}.tiff", "chunk_shape": (1, ny, nx)}``), shared
by the dark, primary and flat streams, and ``stream_datum`` indices counting events of
``chunk_size`` frames: index ``i`` is files ``i * chunk_size`` to ``(i + 1) * chunk_size - 1``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
from ophyd_async.core import (
    DEFAULT_TIMEOUT,
    Device,
    StaticPathProvider,
    set_mock_value,
    soft_signal_rw,
)
from ophyd_async.core import callback_on_mock_put as on_put
from ophyd_async.epics.adcore import (
    ADBaseColorMode,
    ADBaseDataType,
    ADFileWriteMode,
    NDArrayDescription,
)
from ophyd_async.epics.adcore._data_logic import ADMultipartDataLogic

from xanes_stream.sim.async_detector import TXMAsyncDetector, _TXMCamera

__all__ = ["TXMAsyncTiffDetector"]

TIFF_MIMETYPE = "multipart/related;type=image/tiff"


class _TiffPlugin(Device):
    """The signals of areaDetector's ``NDPluginFileIO`` that ophyd-async's TIFF data logic
    reads and sets (same names and types)."""

    def __init__(self, name: str = "tiff"):
        self.create_directory = soft_signal_rw(int)
        self.file_path, self.file_name = soft_signal_rw(str), soft_signal_rw(str)
        self.file_template, self.full_file_name = soft_signal_rw(str), soft_signal_rw(str)
        self.file_path_exists, self.auto_increment = soft_signal_rw(bool), soft_signal_rw(bool)
        self.file_number, self.num_capture = soft_signal_rw(int), soft_signal_rw(int)
        self.num_captured, self.capture = soft_signal_rw(int), soft_signal_rw(bool)
        self.file_write_mode = soft_signal_rw(ADFileWriteMode)
        self.array_size0, self.array_size1 = soft_signal_rw(int), soft_signal_rw(int)
        self.data_type = soft_signal_rw(ADBaseDataType)
        self.color_mode = soft_signal_rw(ADBaseColorMode)
        super().__init__(name=name)


class _TiffCamera(_TXMCamera):
    """The simulated camera feeding a mock NDFileTIFF plugin (``self.writer``)."""

    def __init__(self, *wiring: Any):
        super().__init__(*wiring)
        self.writer = _TiffPlugin()

    async def connect_writer(self, timeout: float) -> None:
        """Connect the plugin in mock mode and give it areaDetector's behaviour."""
        w, settings = self.writer, self.sim.settings
        await w.connect(mock=True, timeout=timeout)
        ny, nx = settings.frame_shape
        set_mock_value(w.array_size0, int(nx))
        set_mock_value(w.array_size1, int(ny))
        set_mock_value(w.data_type, ADBaseDataType(_AD_TYPES[np.dtype(settings.dtype).name]))
        set_mock_value(w.color_mode, ADBaseColorMode.MONO)
        on_put(w.file_path, self._make_folder)
        on_put(w.capture, self._capture)

    def _make_folder(self, value: str) -> None:
        Path(value).mkdir(parents=True, exist_ok=True)
        set_mock_value(self.writer.file_path_exists, True)

    def _capture(self, value: bool) -> None:
        if value:
            set_mock_value(self.writer.num_captured, 0)

    async def store(self, frames: np.ndarray) -> None:
        """Write each frame to its own TIFF file, as the plugin does while capturing."""
        import tifffile

        w = self.writer
        capturing, folder, name, template, number, captured = await asyncio.gather(
            w.capture.get_value(),
            w.file_path.get_value(),
            w.file_name.get_value(),
            w.file_template.get_value(),
            w.file_number.get_value(),
            w.num_captured.get_value(),
        )
        if not capturing:
            return
        for frame in frames:
            path = template % (folder, name, number)
            tifffile.imwrite(path, np.asarray(frame))
            number, captured = number + 1, captured + 1
            set_mock_value(w.full_file_name, path)
            set_mock_value(w.file_number, number)
            set_mock_value(w.num_captured, captured)
            if self.sim.current_scan is not None:
                self.sim.current_scan.files.append(path)


#: numpy's dtype names as areaDetector's DataType says them.
_AD_TYPES = {"uint8": "UInt8", "uint16": "UInt16", "uint32": "UInt32", "float32": "Float32"}


class TXMAsyncTiffDetector(TXMAsyncDetector):
    """:class:`~xanes_stream.sim.async_detector.TXMAsyncDetector` writing a TIFF per frame
    through ophyd-async's own TIFF data logic (data key: the detector's name)."""

    camera: _TiffCamera

    def _camera(self, *wiring: Any) -> _TiffCamera:
        return _TiffCamera(*wiring)

    def _data_logic(self, provider: StaticPathProvider) -> ADMultipartDataLogic:
        w = self.camera.writer
        return ADMultipartDataLogic(
            array_description=NDArrayDescription(
                shape_signals=[w.array_size1, w.array_size0],
                data_type_signal=w.data_type,
                color_mode_signal=w.color_mode,
            ),
            path_provider=provider,
            writer=w,  # type: ignore[arg-type]  # NDPluginFileIO's signals, soft
            extension=".tiff",
            mimetype=TIFF_MIMETYPE,
        )

    async def connect(
        self,
        mock: Any = False,
        timeout: float = DEFAULT_TIMEOUT,
        force_reconnect: bool = False,
    ) -> None:
        await self.camera.connect_writer(timeout)
        await super().connect(mock=mock, timeout=timeout, force_reconnect=force_reconnect)
