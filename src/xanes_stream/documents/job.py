"""One energy scan as the router hands it on (:class:`ScanJob`), and which runs are scans."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from xanes_stream.pipeline.settings import AnalysisSettings
from xanes_stream.profiles import Profile

__all__ = ["DOCUMENT_NAMES", "Progress", "ScanJob", "is_energy_scan"]

DOCUMENT_NAMES = {
    "start",
    "descriptor",
    "event",
    "event_page",
    "stop",
    "resource",
    "datum",
    "datum_page",
    "stream_resource",
    "stream_datum",
}


@dataclass
class ScanJob:
    """A scan whose documents are complete: what the analysis needs, and where it came from."""

    uid: str
    start: dict
    stop: dict | None
    profile: Profile
    references: list[str]
    frames: np.ndarray | None = None
    energies: np.ndarray | None = None
    shifts: np.ndarray | None = None
    noise: np.ndarray | None = None  # per energy: the OD's standard error (NaN: not known)
    energy_offset: float | None = None  # eV added to the energies (profile.foil's correction)
    failure: str | None = None
    incomplete: str | None = None  # documents were lost on the way: re-read the run from Tiled
    settings: AnalysisSettings | None = None  # the profile's, with the start document's overrides
    received_at: float = 0.0
    stopped_at: float = 0.0
    timings: dict = field(default_factory=dict)  # s: stack (finishing the frames), ...
    notes: list[str] = field(default_factory=list)
    source: str = "live"  # where the frames came from: live, re-read from Tiled, from files

    @property
    def scan_id(self):
        return self.start.get("scan_id")

    @property
    def sample(self) -> str:
        return str(self.start.get("sample") or self.start.get("xanes", {}).get("sample") or "")


Progress = Callable[["ScanJob", int, int | None], None]


def is_energy_scan(start: dict, profile: Profile) -> bool:
    selection = profile.runs
    if selection.md_key and isinstance(start.get(selection.md_key), dict):
        return True
    return start.get("plan_name") in selection.plan_names
