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
allowed roots, see :mod:`.resources`), or from an ophyd-async detector's files
(``stream_resource``/``stream_datum``, :mod:`.external`; frame and event may come in either
order); several exposures of one angle are combined as the profile's ``frames.combine`` says
(:func:`~xanes_stream.imaging.exposures.combine_exposures`, as for energy scans).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
from event_model import unpack_event_page

from xanes_stream.documents.codec import DocumentError
from xanes_stream.documents.external import ExternalFrames
from xanes_stream.documents.job import Progress, ScanJob
from xanes_stream.documents.limits import Limits
from xanes_stream.documents.run_callback import RunCallback
from xanes_stream.documents.start import short
from xanes_stream.documents.waiting import Waiting
from xanes_stream.errors import XanesStreamError
from xanes_stream.imaging.exposures import combine_exposures
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
        self.combine = profile.frames.combine  # an angle's exposures: mean or median
        self.external = ExternalFrames(roots, max_frames=limits.max_frames)
        self.waiting = Waiting(limits.max_frames)  # ophyd-async: frames and events, either first
        self.primary: set[str] = set()
        self.shapes: dict[str, list | None] = {}  # primary descriptor -> the image's shape
        self.streamed: set[str] = set()  # primary descriptors whose images are in files
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
        self.waiting.clear()

    def _volume(self, energy: float, volume: np.ndarray) -> None:
        log.info("%s: %g eV reconstructed", self.label, energy)

    def descriptor(self, doc):
        if doc.get("name") != "primary":
            return
        self.primary.add(doc["uid"])
        info = (doc.get("data_keys") or {}).get(self.keys[0]) if self.tomograms else None
        if isinstance(info, dict):
            self.shapes[doc["uid"]] = info.get("shape")
            if str(info.get("external", "")).startswith("STREAM"):
                self.streamed.add(doc["uid"])

    def event_page(self, doc):
        for event in unpack_event_page(doc):
            self.event(event)

    def event(self, doc):
        descriptor = doc.get("descriptor")
        if self.tomograms is None or descriptor not in self.primary:
            return
        data = doc.get("data", {})
        streamed = descriptor in self.streamed
        needed = self.keys[1:] if streamed else self.keys  # a streamed image is not in data
        missing = [k for k in needed if k not in data]
        if missing:
            self._fail(f"event {short(doc.get('seq_num'))} has no {missing}")
            return
        if not streamed:
            self._add(data, self._image(data[self.keys[0]]))
            return
        key = (descriptor, int(doc["seq_num"]))
        frame = self.waiting.take_frame(key)
        if frame is None:  # its stream_datum is still to come
            self.waiting.hold_event(key, data)
        else:
            self._add(data, frame)

    def stream_resource(self, doc):
        if doc.get("data_key") == self.keys[0]:
            self.external.add_resource(doc)

    def stream_datum(self, doc):
        descriptor = doc.get("descriptor")
        if not self.external.knows(doc.get("stream_resource")) or descriptor not in self.primary:
            return
        self.external.max_bytes = max(0, self.max_bytes - self._held())
        seq_nums, frames, _ = self.external.read_stacked(doc, self.shapes.get(descriptor))
        for seq_num, frame in zip(seq_nums, frames, strict=True):
            image = self._one_projection(frame)
            data = self.waiting.events.pop((descriptor, seq_num), None)
            if data is None:  # its event is still to come
                self.waiting.hold_frame((descriptor, seq_num), image)
            else:
                self._add(data, image)
            if self.tomograms is None:  # failed on the way
                return

    def _add(self, data: dict, image: np.ndarray) -> None:
        """One projection, at the event's energy and angle, into its energy's sinogram."""
        _, energy_key, angle_key = self.keys
        try:
            self.tomograms.add(float(data[energy_key]), float(data[angle_key]), image)
        except XanesStreamError as exc:
            self._fail(str(exc))
            return
        self.seen += 1
        held = self._held()
        if self.max_bytes and held > self.max_bytes:
            self._fail(
                f"the scan's projections and volumes need more than {held / 2**20:.0f} MiB, "
                f"beyond limits.max_scan_bytes ({self.max_bytes / 2**20:.0f} MiB)"
            )
            return
        self.progress(self.job, self.seen, self.expected)

    def _held(self) -> int:
        """Bytes held: the projections and volumes, and the frames waiting for their events."""
        return (self.tomograms.nbytes if self.tomograms is not None else 0) + self.waiting.nbytes

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
        self.classic.max_bytes = max(0, self.max_bytes - self._held())
        frames = self.classic.read(image)
        return self._one_projection(frames)

    def _one_projection(self, frames: np.ndarray) -> np.ndarray:
        """One projection of an angle's exposures (axis 0 of a 3-D image), combined as the
        profile's ``frames.combine`` says, as the energy scans' are."""
        return combine_exposures(frames, self.combine)[0] if frames.ndim == 3 else frames

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
                lost = self.waiting.lost(self.primary)
                if lost:
                    self.job.notes.append("not received: " + "; ".join(lost))
                self.job.timings["stack"] = time.time() - self.job.stopped_at
        self.tomograms = None
        self._submit()
