"""What the live page reads, and all it may: a read-only view of the service's scans."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from xanes_stream.live.records import ScanRecord
    from xanes_stream.pipeline.regions import Region, RegionSpectrum
    from xanes_stream.pipeline.results import Maps
    from xanes_stream.spectra.pixel import SpectrumFit
    from xanes_stream.spectra.references import Reference

__all__ = ["ScanSource"]


class ScanSource(Protocol):
    """The scans the page shows; :class:`~xanes_stream.live.service.XanesService` is one."""

    def status(self) -> dict:
        """The service's status report (as ``status.json``)."""
        ...

    def scan_records(self) -> list[ScanRecord]:
        """The records of the scans seen, in the order they were first seen."""
        ...

    def scan_record(self, uid: str) -> ScanRecord | None:
        """The record of scan ``uid``, or None if the service has not seen it."""
        ...

    def last_event(self) -> int:
        """The number of the newest event (0: none yet)."""
        ...

    def events_since(self, seq: int, timeout: float = 0.0) -> list[dict]:
        """Events newer than ``seq``, waiting up to ``timeout`` s for the first one."""
        ...

    def kept_scans(self) -> list[str]:
        """Uids of the scans whose frames are in memory (for pixel spectra), oldest first."""
        ...

    def references(self, names: list[str]) -> list[Reference]:
        """The reference spectra by name, as the analysis uses them."""
        ...

    def pixel_spectrum(self, uid: str, y: int, x: int) -> SpectrumFit:
        """Pixel (y, x) of a kept scan: its normalized spectrum and fit (raises
        :class:`~xanes_stream.errors.StackNotKept` for a scan not kept)."""
        ...

    def region_spectrum(self, uid: str, region: Region) -> RegionSpectrum:
        """The mean spectrum of ``region`` of a kept scan and its fit (raises
        :class:`~xanes_stream.errors.StackNotKept` for a scan not kept,
        :class:`~xanes_stream.errors.AnalysisError` for a bad region)."""
        ...

    def labels(self, uid: str) -> dict:
        """The label maps kept with a scan: ``clusters``, ``mask``, ``particles`` (or None)."""
        ...

    def read_maps(self, uid: str) -> Maps:
        """The maps of scan ``uid`` as written to Tiled (KeyError if there are none)."""
        ...
