"""In-operando series (seed 001): a summary of the scans of one series, updated as each lands.

Pure: :meth:`SeriesSummary.add` takes a scan's :class:`~xanes_stream.pipeline.results.Maps` and
its time;
:meth:`SeriesSummary.to_table` gives one row per scan, in time order, as columns.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from xanes_stream.errors import AnalysisError
from xanes_stream.pipeline.results import Maps, Product


class SeriesSummary:
    """Mean fractions and the E0 histogram of each scan of a series, over time.

    ``e0_bins`` are fixed histogram edges (eV), so the histograms of all scans compare; when
    None they are set from the first scan: its E0 + ``default_span`` in steps of
    ``default_step``. Adding a scan uid again replaces its row (re-analysis, replay).
    """

    def __init__(
        self,
        series: str = "",
        e0_bins: Sequence[float] | np.ndarray | None = None,
        *,
        default_span: tuple[float, float] = (-10.0, 20.0),
        default_step: float = 0.5,
    ):
        self.series = series
        self.reference_names: list[str] | None = None
        self._span, self._step = default_span, default_step
        self.bin_edges = None if e0_bins is None else self._check_bins(e0_bins)
        self._rows: dict[str, dict] = {}

    @staticmethod
    def _check_bins(edges) -> np.ndarray:
        edges = np.asarray(edges, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise AnalysisError("E0 bin edges must be at least two increasing energies (eV)")
        return edges

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, uid: str, time: float, maps: Maps, mask: np.ndarray | None = None) -> dict:
        """Add (or replace) one scan: its mean fractions and E0 histogram over ``mask``
        (default: the maps' quality mask). Returns the row."""
        names = list(maps.reference_names)
        if self.reference_names is None:
            self.reference_names = names
        elif names != self.reference_names:
            raise AnalysisError(
                f"scan {uid} was fitted with {names}, the series with {self.reference_names}"
            )
        if self.bin_edges is None:
            e0 = maps.metadata.get("normalization", {}).get("e0")
            if e0 is None and np.isfinite(maps.edge_energy).any():
                e0 = float(np.nanmedian(maps.edge_energy))
            if e0 is not None:  # else a few-energy scan: no E0, bins from a later scan
                low, high = e0 + self._span[0], e0 + self._span[1]
                self.bin_edges = np.arange(low, high + 0.5 * self._step, self._step)
        inside = maps.mask.astype(bool) if mask is None else np.asarray(mask, dtype=bool)
        if inside.shape != maps.edge_energy.shape:
            raise AnalysisError(f"mask {inside.shape} and maps {maps.edge_energy.shape} differ")
        fractions = maps.fractions[:, inside]
        e0 = maps.edge_energy[inside]
        e0 = e0[np.isfinite(e0)]
        finite = np.isfinite(fractions)
        counts = finite.sum(axis=1)
        sums = np.where(finite, fractions, 0.0).sum(axis=1, dtype=np.float64)
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        row = {
            "uid": str(uid),
            "time": float(time),
            "n_pixels": int(inside.sum()),
            **{f"mean_{n}": float(m) for n, m in zip(names, means, strict=True)},
            "mean_edge_energy": float(e0.mean()) if e0.size else float("nan"),
            "e0_counts": None if self.bin_edges is None else np.histogram(e0, self.bin_edges)[0],
        }
        self._rows[row["uid"]] = row
        return row

    def merge_table(self, table: dict, bin_edges: Sequence[float] | None = None) -> int:
        """Take the rows of a table :meth:`to_table` wrote (e.g. read back from Tiled after a
        restart) whose uids this summary lacks; returns how many it took.

        A table of other references is refused; one with other E0 bins than this summary's
        gives its rows without their histograms (merge before adding scans to avoid that)."""
        columns = list(table)
        names = [c[5:] for c in columns if c.startswith("mean_") and c != "mean_edge_energy"]
        counts = [c for c in columns if c.startswith("e0_count_")]
        if self.reference_names is None:
            self.reference_names = names
        elif names != self.reference_names:
            raise AnalysisError(f"series table has {names}, the series {self.reference_names}")
        edges = None if bin_edges is None or not len(bin_edges) else self._check_bins(bin_edges)
        if counts and (edges is None or edges.size - 1 != len(counts)):
            raise AnalysisError("series table: E0 counts without matching bin edges")
        if edges is not None and self.bin_edges is None:
            self.bin_edges = edges
        elif edges is not None and not np.array_equal(edges, self.bin_edges):
            counts = []  # histograms on other bins cannot be compared: leave them out
        taken = 0
        for i, uid in enumerate(np.asarray(table["uid"]).astype(str)):
            if uid in self._rows:
                continue
            self._rows[uid] = {
                "uid": uid,
                "time": float(table["time"][i]),
                "n_pixels": int(table["n_pixels"][i]),
                **{f"mean_{n}": float(table[f"mean_{n}"][i]) for n in names},
                "mean_edge_energy": float(table["mean_edge_energy"][i]),
                "e0_counts": np.array([table[c][i] for c in counts], dtype=np.int64)
                if counts
                else None,
            }
            taken += 1
        return taken

    def histogram(self) -> np.ndarray:
        """E0 counts (n_scans, n_bins), rows in time order."""
        rows = self._ordered()
        n_bins = 0 if self.bin_edges is None else self.bin_edges.size - 1
        none = np.zeros(n_bins, dtype=np.int64)  # scans without E0 (few energies)
        counts = [none if r["e0_counts"] is None else r["e0_counts"] for r in rows]
        return np.stack(counts) if counts else np.zeros((0, n_bins), dtype=np.int64)

    def _ordered(self) -> list[dict]:
        return sorted(self._rows.values(), key=lambda r: r["time"])

    def to_table(self) -> dict[str, np.ndarray]:
        """Columns, one row per scan in time order: ``uid``, ``time``, ``n_pixels``,
        ``mean_<reference>``, ``mean_edge_energy``, ``e0_count_000``... (bin i of
        :attr:`bin_edges`)."""
        rows = self._ordered()
        names = self.reference_names or []
        table: dict[str, np.ndarray] = {
            "uid": np.array([r["uid"] for r in rows], dtype=str),
            "time": np.array([r["time"] for r in rows], dtype=np.float64),
            "n_pixels": np.array([r["n_pixels"] for r in rows], dtype=np.int64),
        }
        for column in [f"mean_{n}" for n in names] + ["mean_edge_energy"]:
            table[column] = np.array([r[column] for r in rows], dtype=np.float64)
        counts = self.histogram()
        for i in range(counts.shape[1]):
            table[f"e0_count_{i:03d}"] = counts[:, i]
        return table

    def to_product(self) -> Product:
        """The summary as a product: table ``series/summary``; bin edges in metadata."""
        edges = [] if self.bin_edges is None else self.bin_edges.tolist()
        return Product(
            tables={"series/summary": self.to_table()},
            metadata={"series": self.series, "e0_bin_edges": edges, "n_scans": len(self)},
        )
