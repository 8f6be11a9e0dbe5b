"""The summary table of each in-operando series, kept up to date in Tiled as its scans finish."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from xanes_stream.documents.router import ScanJob
from xanes_stream.live.records import ScanTable
from xanes_stream.pipeline.results import Maps
from xanes_stream.pipeline.series import SeriesSummary
from xanes_stream.store.tiled_store import TiledResultStore

__all__ = ["SeriesTables"]

log = logging.getLogger(__name__)


class SeriesTables:
    """Series id -> its :class:`SeriesSummary` so far, merged on first write with the table a
    service before a restart left in ``store()``."""

    def __init__(self, store: Callable[[], TiledResultStore], table: ScanTable) -> None:
        self._store = store
        self.table = table
        self._series: dict[str, SeriesSummary] = {}
        self._restored: set[str] = set()  # series whose Tiled table has been merged

    def add(self, job: ScanJob, maps: Maps, *, write: bool = True) -> None:
        """Add the scan to its series' summary and (if ``write``) write the table to Tiled;
        a failure here is logged, never the scan's."""
        series = (job.start.get("xanes") or {}).get("series")
        if not series:
            return
        try:
            summary = self._series.setdefault(series, SeriesSummary(str(series)))
            if write and series not in self._restored:  # rows from before a restart
                stored = self._store().read_series(str(series))
                if stored is not None:
                    taken = summary.merge_table(stored[0], stored[1].get("e0_bin_edges"))
                    log.info("series %s: %d earlier scans read back from Tiled", series, taken)
                self._restored.add(series)
            summary.add(job.uid, float(job.start.get("time") or time.time()), maps)
            if not write:
                return
            product = summary.to_product()
            self._store().write_series(
                str(series), product.tables["series/summary"], product.metadata
            )
        except Exception as exc:
            self.table.last_error = f"series {series} summary after {job.uid[:8]}: {exc}"
            log.warning("%s", self.table.last_error)
