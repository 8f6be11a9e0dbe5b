"""What the live page reads of the service: a read-only
:class:`~xanes_stream.live.web.source.ScanSource` over its records, kept stacks, references and
the maps in Tiled."""

from __future__ import annotations

from collections.abc import Callable

from xanes_stream.live.connection import TiledConnection
from xanes_stream.live.records import ScanRecord, ScanTable
from xanes_stream.live.references import ReferenceCache
from xanes_stream.live.stacks import KeptStacks
from xanes_stream.pipeline.regions import Region, RegionSpectrum
from xanes_stream.pipeline.results import Maps
from xanes_stream.spectra.pixel import SpectrumFit
from xanes_stream.spectra.references import Reference

__all__ = ["ScanView"]


class ScanView:
    """The service as the page sees it: every method reads, none changes anything."""

    def __init__(
        self,
        table: ScanTable,
        stacks: KeptStacks,
        references: ReferenceCache,
        tiled: TiledConnection,
        status: Callable[[], dict],
    ) -> None:
        self._table, self._stacks, self._references, self._tiled = table, stacks, references, tiled
        self.status = status

    def scan_records(self) -> list[ScanRecord]:
        """Every scan's record, newest last."""
        return self._table.snapshot()

    def scan_record(self, uid: str) -> ScanRecord | None:
        """One scan's record (None: not seen)."""
        return self._table.get(uid)

    def last_event(self) -> int:
        """The number of the newest record change."""
        return self._table.events.last_seq

    def events_since(self, seq: int, timeout: float = 0.0) -> list[dict]:
        """Record changes after ``seq``, waiting up to ``timeout`` s for one."""
        return self._table.events.since(seq, timeout)

    def kept_scans(self) -> list[str]:
        """Uids of the scans whose frames are still in memory (pixel spectra)."""
        return self._stacks.uids()

    def references(self, names: list[str]) -> list[Reference]:
        """Reference spectra by name (Tiled's library, else bundled)."""
        return self._references(names)

    def pixel_spectrum(self, uid: str, y: int, x: int) -> SpectrumFit:
        """One pixel's normalized spectrum and its fit, from a kept scan."""
        return self._stacks.pixel_spectrum(uid, y, x, self._references)

    def region_spectrum(self, uid: str, region: Region) -> RegionSpectrum:
        """A region's mean spectrum and its fit, from a kept scan."""
        return self._stacks.region_spectrum(uid, region, self._references)

    def labels(self, uid: str) -> dict:
        """The label maps (clusters, mask, particles) kept with a scan."""
        return self._stacks.labels(uid)

    def read_maps(self, uid: str) -> Maps:
        """A scan's maps, read back from Tiled."""
        return self._tiled.store().read_maps(uid)
