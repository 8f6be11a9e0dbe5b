"""A tomographic XANES run followed document by document: a volume per energy as soon as its
projections are in, the maps at the stop.

The run's start document says it is tomographic in ``md["xanes"]["tomography"]`` (what
:func:`xanes_stream.sim.tomo_devices.tomo_xanes_scan` writes): ``angles`` (degrees, every
energy measured at each), ``angle_key``, ``energy_key`` (eV) and ``image_key`` of the events,
``mode`` of the images (``transmission``, flat-corrected, or ``absorbance``), and optionally the
``method``/``center``/... of :class:`~xanes_stream.pipeline.projections.TomographySettings`.
Images come inline in the events. A bad document fails the run with a reason (logged, handed
on); it never raises into the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from event_model import DocumentRouter, unpack_event_page

from xanes_stream.errors import XanesStreamError
from xanes_stream.pipeline.projections import TomographySettings
from xanes_stream.pipeline.results import Maps
from xanes_stream.pipeline.settings import AnalysisSettings
from xanes_stream.pipeline.tomograms import EnergyTomograms

__all__ = ["TomographyCallback", "TomographyResult", "is_tomography_run"]

log = logging.getLogger(__name__)
_SETTINGS = set(TomographySettings.model_fields)


def is_tomography_run(start: dict) -> bool:
    """True when the start document describes a tomographic XANES run."""
    md = start.get("xanes")
    return isinstance(md, dict) and isinstance(md.get("tomography"), dict)


@dataclass
class TomographyResult:
    """What a tomographic run gave: its maps, or why not."""

    uid: str
    maps: Maps | None = None
    failure: str | None = None
    energies_done: list[float] = field(default_factory=list)


class TomographyCallback(DocumentRouter):
    """One tomographic run's documents (subscribe it to a RunEngine, or feed it documents).

    Parameters
    ----------
    references : as for :func:`~xanes_stream.pipeline.analyze.analyze`.
    submit : called with the :class:`TomographyResult` at the stop.
    settings : the volume analysis's settings.
    on_volume : called ``on_volume(energy, volume)`` as each energy is reconstructed.
    """

    def __init__(
        self,
        references,
        submit: Callable[[TomographyResult], None],
        *,
        settings: AnalysisSettings | dict | None = None,
        on_volume: Callable[[float, np.ndarray], None] | None = None,
    ) -> None:
        super().__init__()
        self.references, self.submit, self.settings = references, submit, settings
        self.on_volume = on_volume
        self.result: TomographyResult | None = None
        self.tomograms: EnergyTomograms | None = None
        self._primary: set[str] = set()

    def _fail(self, reason: str) -> None:
        if self.result is not None and self.result.failure is None:
            log.error("tomographic run %s: %s", self.result.uid[:8], reason)
            self.result.failure = reason
            self.tomograms = None  # its projections are not kept

    def start(self, doc):
        self.result = TomographyResult(uid=str(doc.get("uid", "")))
        if not is_tomography_run(doc):
            self._fail("the start document has no xanes.tomography section")
            return
        md = doc["xanes"]["tomography"]
        try:
            self.keys = tuple(str(md[k]) for k in ("image_key", "energy_key", "angle_key"))
            settings = {k: v for k, v in md.items() if k in _SETTINGS}
            self.tomograms = EnergyTomograms(
                np.asarray(md["angles"], dtype=np.float64),
                mode=str(md.get("mode", "transmission")),
                tomography=settings,
                on_volume=self._volume,
            )
        except KeyError as exc:
            self._fail(f"xanes.tomography has no {exc.args[0]!r}")
        except (XanesStreamError, TypeError, ValueError) as exc:
            self._fail(f"xanes.tomography is not usable: {exc}")

    def _volume(self, energy: float, volume: np.ndarray) -> None:
        self.result.energies_done.append(energy)
        log.info("tomographic run %s: %g eV reconstructed", self.result.uid[:8], energy)
        if self.on_volume is not None:
            self.on_volume(energy, volume)

    def descriptor(self, doc):
        if doc.get("name") == "primary":
            self._primary.add(doc["uid"])

    def event_page(self, doc):
        for event in unpack_event_page(doc):
            self.event(event)

    def event(self, doc):
        if self.tomograms is None or doc.get("descriptor") not in self._primary:
            return
        image_key, energy_key, angle_key = self.keys
        data = doc.get("data", {})
        try:
            missing = [k for k in self.keys if k not in data]
            if missing:
                raise XanesStreamError(f"event {doc.get('seq_num')} has no {missing}")
            self.tomograms.add(
                float(data[energy_key]), float(data[angle_key]), np.asarray(data[image_key])
            )
        except (XanesStreamError, TypeError, ValueError) as exc:
            self._fail(str(exc))

    def stop(self, doc):
        if self.result is None:
            return
        if self.result.failure is None and doc.get("exit_status", "success") != "success":
            self._fail(f"run ended with exit_status {doc.get('exit_status')!r}")
        if self.result.failure is None and self.tomograms is not None:
            try:
                self.result.maps = self.tomograms.finish(self.references, settings=self.settings)
            except XanesStreamError as exc:
                self._fail(str(exc))
        self.tomograms = None
        self.submit(self.result)
