"""The physics of the simulated full-field TXM at the Ni K-edge, apart from its ophyd devices.

The sample is the :func:`~xanes_stream.sim.phantom.make_phantom` field of view (particles of
measured reference spectra in a matrix), but its phase fractions follow a reaction ``progress``
(0: rich in the first reference, 1: rich in the last) that advances from the particle surfaces
inward, so an in-operando series changes between scans. :class:`TXMSimulator` turns the optical
density at an energy into counts with a flat field, a dark offset, Poisson noise and a sub-pixel
random-walk drift that is fixed per scan by the seed; :class:`ScanTruth` is what each scan really
held, for tests and the demo to compare maps against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy import ndimage as ndi

from xanes_stream.errors import XanesStreamError
from xanes_stream.io.references import bundled_reference
from xanes_stream.sim.phantom import make_phantom
from xanes_stream.spectra.references import Reference, unit_step

__all__ = [
    "DETECTORS",
    "E_REF",
    "BeamlineError",
    "Exposure",
    "FrameKind",
    "ScanTruth",
    "SimSettings",
    "TXMSimulator",
]

#: Energy at which the matrix and non-resonant absorption are given (E^-2.8 law).
E_REF = 8250.0
FrameKind = Literal["dark", "flat", "sample"]
#: The simulated cameras: ``hdf5`` and ``inline`` (:mod:`~xanes_stream.sim.devices`), the
#: classic-ophyd areaDetector ones FXI runs, ``ad_hdf5`` and ``ad_tiff``
#: (:mod:`~xanes_stream.sim.areadetector`), and ophyd-async ones, ``async_hdf5``
#: (:mod:`~xanes_stream.sim.async_detector`) and ``async_tiff``
#: (:mod:`~xanes_stream.sim.async_tiff`).
DETECTORS = ("hdf5", "inline", "ad_hdf5", "ad_tiff", "async_hdf5", "async_tiff")
Detector = Literal["hdf5", "inline", "ad_hdf5", "ad_tiff", "async_hdf5", "async_tiff"]


class BeamlineError(XanesStreamError):
    """The simulated beamline cannot do what was asked."""


class SimSettings(BaseModel):
    """Everything the simulated TXM can be told; the defaults make 128x128 frames quickly."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    detector: Detector = "hdf5"
    camera_name: str = Field("camera", pattern=r"^[A-Za-z][A-Za-z0-9]*$")
    shape: tuple[int, int] = Field((128, 128), description="(ny, nx) pixels per frame")
    depth: int = Field(
        1,
        ge=1,
        le=64,
        description="slices per frame: > 1 images a volume (nz, ny, nx) per "
        "energy, each slice with its own particles (3D XANES)",
    )
    references: tuple[str, ...] = Field(("NiO", "LiNiO2"), min_length=1)
    sample: str = "simulated NiO/LiNiO2 particles"
    n_particles: int = Field(6, ge=0, le=100)
    counts: float = Field(20_000.0, gt=0, description="open-beam photons per pixel")
    dark_level: float = Field(100.0, ge=0)
    drift_px: float = Field(0.3, ge=0, description="rms random-walk step per frame, px")
    max_thickness: float = Field(1.0, gt=0, description="edge step (OD) at a particle centre")
    matrix_od: float = Field(0.3, ge=0)
    beam_slope: float = Field(
        0.0,
        ge=-0.5,
        le=0.5,
        description="relative change of the incident intensity per keV "
        "away from E_REF (monochromator throughput); 0 keeps it flat",
    )
    beam_jitter: float = Field(
        0.0,
        ge=0,
        le=0.2,
        description="relative rms change of the incident intensity from one "
        "exposure to the next (top-up, source motion); the ion chambers see it",
    )
    noise: bool = True
    dtype: Literal["float32", "uint16"] = "float32"
    seed: int = Field(0, ge=0)

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """(ny, nx), or (depth, ny, nx) for volumes."""
        return self.shape if self.depth == 1 else (self.depth, *self.shape)

    @field_validator("shape")
    @classmethod
    def _frame_size(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not all(16 <= n <= 8192 for n in value):
            raise ValueError("each side must be between 16 and 8192 pixels")
        return value


@dataclass(frozen=True)
class Exposure:
    """One exposure of the camera: ``n_frames`` frames of one ``kind`` at one energy (eV).

    ``intensity`` is the incident beam relative to ``SimSettings.counts`` (what an ion chamber
    upstream of the sample reads, up to its gain; 0 when the shutter is closed), ``drift``
    the sample's offset (dy, dx) in pixels (sample frames only).
    """

    kind: FrameKind
    energy: float
    intensity: float
    n_frames: int
    drift: tuple[float, float] = (0.0, 0.0)


@dataclass
class ScanTruth:
    """What the camera really imaged in one staging (one run): compare analysis results to it.

    ``fractions`` (k, ny, nx), or (k, nz, ny, nx) for volumes, are those at ``progress``;
    ``energies`` and ``drift`` (n, 2) list the sample frames in order; the drift is how far
    the sample moved (dy, dx) in pixels, so the registering shift of frame i is
    ``-(drift[i] - drift[ref])``. ``exposures`` lists every exposure (dark, flat and sample) in
    the order taken; a sample exposure of several frames counts once in ``energies``.
    """

    index: int
    references: tuple[str, ...]
    progress: float
    fractions: np.ndarray
    thickness: np.ndarray
    particles: np.ndarray
    labels: np.ndarray
    energies: list[float] = field(default_factory=list)
    drift_steps: list[tuple[float, float]] = field(default_factory=list)
    frame_progress: list[float] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    exposures: list[Exposure] = field(default_factory=list)
    uid: str | None = None

    @property
    def drift(self) -> np.ndarray:
        return np.asarray(self.drift_steps, dtype=float).reshape(-1, 2)

    def fraction(self, name: str) -> np.ndarray:
        """The true fraction map of one reference."""
        try:
            return self.fractions[self.references.index(name)]
        except ValueError:
            raise BeamlineError(f"no reference {name!r}; have {list(self.references)}") from None


class TXMSimulator:
    """The physics: sample geometry, reaction, optical density and noisy frames."""

    def __init__(self, settings: SimSettings, references: Sequence[Reference] | None = None):
        self.settings = settings
        refs = list(references) if references is not None else None
        refs = refs or [bundled_reference(name) for name in settings.references]
        self.references = refs
        self.reference_names = tuple(r.name for r in refs)
        self._unit = [unit_step(r) for r in refs]
        ny, nx = settings.shape
        slices = [
            make_phantom(
                settings.shape,
                energies=np.array([E_REF, 8350.0, 8400.0]),
                references=refs,
                n_particles=settings.n_particles,
                max_thickness=settings.max_thickness,
                matrix_od=settings.matrix_od,
                drift=0.0,
                noise=False,
                seed=settings.seed + 1000 * z,
            )
            for z in range(settings.depth)
        ]
        volume = settings.depth > 1
        pick = (lambda arrays, axis=0: np.stack(arrays, axis)) if volume else (lambda a, _=0: a[0])
        self.thickness = pick([g.thickness for g in slices]).astype(np.float64)
        self.particles = pick([g.particles for g in slices])
        offsets = np.cumsum([0] + [int(g.labels.max()) for g in slices[:-1]])
        self.labels = pick(
            [np.where(g.labels > 0, g.labels + o, 0) for g, o in zip(slices, offsets, strict=True)]
        )
        # softmax field: spatial variety
        self._mix = pick([g.fractions for g in slices], 1).astype(np.float64)
        yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
        self.matrix = settings.matrix_od * (0.7 + 0.3 * (xx / nx))
        self.beam = settings.counts * (
            0.85 + 0.15 * np.exp(-((yy - ny / 2) ** 2 + (xx - nx / 2) ** 2) / (nx**2))
        )
        # Shrinking core: depth 0 at a particle's surface, 1 at its centre; per-particle rates.
        planes = self.particles.reshape(-1, ny, nx)
        edt = np.stack([ndi.distance_transform_edt(p) for p in planes]).reshape(
            self.particles.shape
        )
        n_labels = int(self.labels.max())
        peak = np.asarray(ndi.maximum(edt, self.labels, np.arange(1, n_labels + 1)), dtype=float)
        lookup = np.concatenate([[1.0], np.maximum(peak, 1.0)])
        self._depth = np.where(self.particles, edt / lookup[self.labels], 0.0)
        rates = np.random.default_rng([settings.seed, 7]).uniform(0.75, 1.25, n_labels + 1)
        self._rate = rates[self.labels]
        self.truths: list[ScanTruth] = []
        self._scan: ScanTruth | None = None
        self._rng = np.random.default_rng(settings.seed)
        self._drift_rng = np.random.default_rng(settings.seed)
        self._beam_rng = np.random.default_rng(settings.seed)
        self.incident = 0.0  # relative incident intensity of the last exposure
        self._unit_cache: dict[float, np.ndarray] = {}

    # ---- chemistry -------------------------------------------------------------------------
    def fractions(self, progress: float) -> np.ndarray:
        """Phase fractions (k, ny, nx) at a reaction progress in [0, 1]; 0 outside particles."""
        k = len(self.references)
        if k == 1:
            return np.where(self.particles, 1.0, 0.0)[None]
        width = 0.08
        p = np.clip(float(progress) * self._rate, 0.0, 1.0)
        front = -3 * width + p * (1 + 6 * width)
        reacted = 1.0 / (1.0 + np.exp(-(front - self._depth) / width))
        start = 0.15 * self._mix
        start[0] += 0.85
        end = 0.15 * self._mix
        end[-1] += 0.85
        mixed = (1.0 - reacted) * start + reacted * end
        return np.where(self.particles, mixed, 0.0)

    def unit_spectra(self, energy: float) -> np.ndarray:
        """Each reference with edge step 1 at ``energy`` (k,)."""
        key = round(float(energy), 6)
        if key not in self._unit_cache:
            self._unit_cache[key] = np.array([np.interp(key, u.energy, u.mu) for u in self._unit])
        return self._unit_cache[key]

    def optical_density(
        self, energy: float, progress: float, shift: tuple[float, float] = (0.0, 0.0)
    ) -> np.ndarray:
        """Noise-free optical density -ln(I/I0) of the sample at ``energy`` (eV), shifted."""
        scale = (float(energy) / E_REF) ** -2.8
        resonant = np.tensordot(self.unit_spectra(energy), self.fractions(progress), axes=1)
        od = scale * self.matrix + self.thickness * (0.5 * scale + resonant)
        if shift[0] or shift[1]:
            shift = (0.0,) * (od.ndim - 2) + tuple(shift)  # volumes drift as a whole
            od = ndi.shift(od, shift, order=3, mode="nearest")
        return od

    # ---- acquisition -----------------------------------------------------------------------
    def begin_scan(self, progress: float) -> ScanTruth:
        """A new scan record: fresh drift walk, noise and beam jitter, seeded by scan index."""
        index = len(self.truths)
        self._rng = np.random.default_rng([self.settings.seed, index, 1])
        self._drift_rng = np.random.default_rng([self.settings.seed, index, 0])
        self._beam_rng = np.random.default_rng([self.settings.seed, index, 2])
        truth = ScanTruth(
            index=index,
            references=self.reference_names,
            progress=float(progress),
            fractions=self.fractions(progress).astype(np.float32),
            thickness=self.thickness.astype(np.float32),
            particles=self.particles.copy(),
            labels=self.labels.copy(),
        )
        self.truths.append(truth)
        self._scan = truth
        return truth

    @property
    def current_scan(self) -> ScanTruth | None:
        return self._scan

    def beam_intensity(self, energy: float) -> float:
        """The incident intensity at ``energy`` (eV) relative to ``counts``, before jitter."""
        return 1.0 + self.settings.beam_slope * (float(energy) - E_REF) / 1000.0

    def mean_frame(
        self,
        kind: FrameKind,
        energy: float,
        progress: float,
        drift: tuple[float, float] = (0.0, 0.0),
        intensity: float = 1.0,
    ) -> np.ndarray:
        """The noise-free frame (counts, dark level included) of ``kind``: what the camera
        records with ``noise=False``."""
        return self._photons(kind, energy, progress, drift, intensity) + self.settings.dark_level

    def _photons(self, kind, energy, progress, drift, intensity) -> np.ndarray:
        shape = self.settings.frame_shape
        if kind == "dark":
            return np.zeros(shape)
        if kind == "flat":
            return np.broadcast_to(self.beam * intensity, shape)
        return self.beam * intensity * np.exp(-self.optical_density(energy, progress, drift))

    def frame(self, kind: FrameKind, energy: float, progress: float) -> np.ndarray:
        """One camera frame of ``kind`` at ``energy``; sample frames advance the drift."""
        return self.expose(kind, energy, progress, 1)[0]

    def expose(
        self, kind: FrameKind, energy: float, progress: float, n_frames: int = 1
    ) -> np.ndarray:
        """``n_frames`` frames (n, *frame_shape) of one exposure of ``kind`` at ``energy``.

        A sample exposure advances the drift once (its frames share the position); each
        exposure draws its incident intensity (:meth:`beam_intensity` with ``beam_jitter``),
        kept in :attr:`incident` for the ion chambers and in the scan's ``exposures``.
        """
        s = self.settings
        if self._scan is None:
            self.begin_scan(progress)
        scan = self._scan
        jitter = 1.0 + s.beam_jitter * float(self._beam_rng.normal()) if s.beam_jitter else 1.0
        intensity = 0.0 if kind == "dark" else self.beam_intensity(energy) * jitter
        drift = (0.0, 0.0)
        if kind == "sample":
            if scan.drift_steps:
                step = self._drift_rng.normal(0.0, s.drift_px, 2)
                last = scan.drift_steps[-1]
                drift = (last[0] + float(step[0]), last[1] + float(step[1]))
            scan.drift_steps.append(drift)
            scan.energies.append(float(energy))
            scan.frame_progress.append(float(progress))
        self.incident = intensity
        scan.exposures.append(Exposure(kind, float(energy), intensity, int(n_frames), drift))
        mean = self._photons(kind, energy, progress, drift, intensity)
        frames = []
        for _ in range(int(n_frames)):
            if s.noise:
                counts = self._rng.poisson(mean) + self._rng.poisson(s.dark_level, s.frame_shape)
            else:
                counts = mean + s.dark_level
            if s.dtype == "uint16":
                counts = np.clip(np.rint(counts), 0, np.iinfo(np.uint16).max).astype(np.uint16)
            frames.append(np.asarray(counts).astype(s.dtype))
        return np.stack(frames)
