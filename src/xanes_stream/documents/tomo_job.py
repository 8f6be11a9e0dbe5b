"""A tomographic XANES run collected for the service: each energy reconstructed as soon as its
projections are in, and at the stop a :class:`~.job.ScanJob` whose frames are the volumes
(n_energy, nz, nx, nx), analysed like any 3-D scan (slice by slice, absorbance).

The router picks this callback for runs whose start document has ``md["xanes"]["tomography"]``
(what :func:`xanes_stream.sim.tomo_devices.tomo_xanes_scan` writes): ``angles`` (degrees,
every energy measured at each), ``angle_key``, ``energy_key`` (eV) and ``image_key`` of the
events, ``mode`` of the images (``transmission``, flat-corrected, or ``absorbance``), and
optionally the ``method``/``center``/... of
:class:`~xanes_stream.pipeline.projections.TomographySettings`.

Images come inline in the events or, from a classic areaDetector (FXI's cameras), from the
files its ``resource``/``datum`` documents name, read as each event arrives (confined to the
allowed roots, see :mod:`.resources`); several exposures of one angle are averaged.
ophyd-async's ``stream_resource`` files are not read for tomographic runs yet: such a run
fails with that reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
from event_model import unpack_event_page

from xanes_stream.documents.codec import DocumentError
from xanes_stream.documents.job import Progress, ScanJob
from xanes_stream.documents.limits import Limits
from xanes_stream.documents.run_callback import RunCallback
from xanes_stream.documents.start import short
from xanes_stream.errors import XanesStreamError
from xanes_stream.pipeline.projections import TomographySettings
from xanes_stream.pipeline.tomograms import EnergyTomograms
from xanes_stream.profiles import Profile

__all__ = ["TomographyScanCallback", "is_tomography_run"]

log = logging.getLogger(__name__)
_SETTINGS = set(TomographySettings.model_fields)


def is_tomography_run(start: dict) -> bool:
    """True when the start document describes a tomographic XANES run."""
    md = start.get("xanes")
    return isinstance(md, dict) and isinstance(md.get("tomography"), dict)


class TomographyScanCallback(RunCallback):
    """Collects one tomographic run; at its stop hands a :class:`ScanJob` of volumes on."""

    def __init__(
        self,
        start: dict,
        profile: Profile,
        roots: list,
        submit: Callable[[ScanJob], None],
        progress: Progress | None = None,
        limits: Limits = Limits(),  # noqa: B008 (frozen)
    ) -> None:
        super().__init__(start, profile, roots, submit, progress, limits, what="tomographic scan")
        self.max_bytes = limits.max_scan_bytes
        self.primary: set[str] = set()
        self.seen = 0
        self.tomograms: EnergyTomograms | None = None
        tomo = self.md.get("tomography") if isinstance(self.md.get("tomography"), dict) else {}
        try:
            self.keys = tuple(str(tomo[k]) for k in ("image_key", "energy_key", "angle_key"))
            self.tomograms = EnergyTomograms(
                np.asarray(tomo["angles"], dtype=np.float64),
                mode=str(tomo.get("mode", "transmission")),
                tomography={k: v for k, v in tomo.items() if k in _SETTINGS},
                on_volume=self._volume,
            )
        except KeyError as exc:
            self._fail(f"xanes.tomography has no {exc.args[0]!r}")
        except (XanesStreamError, TypeError, ValueError) as exc:
            self._fail(f"xanes.tomography is not usable: {exc}")
        log.info("received %s: %s projections expected", self.label, self.expected or "?")

    def _release(self) -> None:
        self.tomograms = None  # its projections and volumes are not kept

    def _volume(self, energy: float, volume: np.ndarray) -> None:
        log.info("%s: %g eV reconstructed", self.label, energy)

    def descriptor(self, doc):
        if doc.get("name") == "primary":
            self.primary.add(doc["uid"])

    def event_page(self, doc):
        for event in unpack_event_page(doc):
            self.event(event)

    def event(self, doc):
        if self.tomograms is None or doc.get("descriptor") not in self.primary:
            return
        data = doc.get("data", {})
        missing = [k for k in self.keys if k not in data]
        if missing:
            self._fail(f"event {short(doc.get('seq_num'))} has no {missing}")
            return
        image_key, energy_key, angle_key = self.keys
        try:
            image = self._image(data[image_key])
            self.tomograms.add(float(data[energy_key]), float(data[angle_key]), image)
        except XanesStreamError as exc:
            self._fail(str(exc))
            return
        self.seen += 1
        held = self.tomograms.nbytes
        if self.max_bytes and held > self.max_bytes:
            self._fail(
                f"the scan's projections and volumes need more than {held / 2**20:.0f} MiB, "
                f"beyond limits.max_scan_bytes ({self.max_bytes / 2**20:.0f} MiB)"
            )
            return
        self.progress(self.job, self.seen, self.expected)

    def stream_resource(self, doc):
        if doc.get("data_key") == self.keys[0]:
            self._fail(
                "tomographic runs whose projections are in ophyd-async files (stream_resource) "
                "are not read yet: put the images in the events, or use a classic areaDetector"
            )

    def _image(self, image) -> np.ndarray:
        """An event's projection: inline, or its datum's frames read from the file (the mean
        of several exposures)."""
        if not isinstance(image, str):
            return np.asarray(image)
        if not self.classic.knows(image):
            spec = self.classic.unread_spec(image)
            raise DocumentError(
                f"projections are in files of spec {short(spec)!r}, which this service does "
                "not read"
                if spec is not None
                else f"image {short(image)!r} names no datum of this run's resource documents"
            )
        self.classic.max_bytes = max(0, self.max_bytes - self.tomograms.nbytes)
        frames = self.classic.read(image)
        return frames.mean(axis=0, dtype=np.float64) if frames.ndim == 3 else frames

    def stop(self, doc):
        self.job.stop = doc
        self.job.stopped_at = time.time()
        if self.job.failure is None and doc.get("exit_status", "success") != "success":
            self._fail(f"run ended with exit_status {short(doc.get('exit_status'))!r}")
        if self.job.failure is None and self.tomograms is not None:
            try:
                energies, volumes = self.tomograms.stack()
            except XanesStreamError as exc:
                self._fail(str(exc))
            else:
                self.job.frames, self.job.energies = volumes, energies
                self.job.shifts = np.zeros((energies.size, 2))
                centers = ", ".join(
                    f"{c:.2f}" for c in sorted(set(self.tomograms.centers.values()))
                )
                self.job.notes.append(
                    f"reconstructed per energy ({self.tomograms.tomography.method}, "
                    f"{self.tomograms.angles.size} angles, rotation centre {centers})"
                )
                missing = self.tomograms.incomplete
                if missing:
                    self.job.notes.append(f"{len(missing)} energies left out: projections missing")
                self.job.timings["stack"] = time.time() - self.job.stopped_at
        self.tomograms = None
        self._submit()
