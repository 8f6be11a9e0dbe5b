"""Tomographic XANES as it is measured: a volume per energy as soon as its projections are in.

:class:`EnergyTomograms` takes projections one at a time, ``(energy, angle, frame)`` in any
order, and reconstructs an energy the moment it holds a projection at every one of the scan's
angles, so that at the scan's end only the fit is left. The rotation centre is found once, on
the first energy completed (live, the white-line energy may come last), unless the settings
give it or ask for one per energy; every later energy uses the same centre, as
:func:`~xanes_stream.pipeline.projections.analyze_projections` does.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from xanes_stream.errors import AnalysisError
from xanes_stream.imaging.correct import check_mode
from xanes_stream.imaging.tomography import absorbance, find_center, reconstruct
from xanes_stream.pipeline.analyze import ReferencesLike
from xanes_stream.pipeline.projections import TomographySettings, _tomography
from xanes_stream.pipeline.results import Maps
from xanes_stream.pipeline.settings import AnalysisSettings
from xanes_stream.pipeline.volume import analyze_volume

__all__ = ["EnergyTomograms"]

_ANGLE_DECIMALS = 3  # angles equal to a thousandth of a degree are the same angle


class EnergyTomograms:
    """Collects projections per energy and reconstructs each energy when it is complete.

    Parameters
    ----------
    angles : the scan's rotation angles in degrees (every energy is measured at all of them).
    mode : what the frames hold (``transmission``: ``-ln`` taken; ``absorbance``).
    tomography : :class:`~xanes_stream.pipeline.projections.TomographySettings` or a dict.
    on_volume : called ``on_volume(energy, volume)`` after each energy is reconstructed.
    """

    def __init__(
        self,
        angles: np.ndarray,
        *,
        mode: str = "transmission",
        tomography: TomographySettings | dict | None = None,
        on_volume: Callable[[float, np.ndarray], None] | None = None,
    ) -> None:
        self.angles = np.asarray(angles, dtype=np.float64).ravel()
        keys = np.round(self.angles, _ANGLE_DECIMALS)
        if np.unique(keys).size != keys.size:
            raise AnalysisError("the scan's rotation angles must not repeat")
        self._index = {float(a): i for i, a in enumerate(keys)}
        self.mode = check_mode(mode)
        self.tomography = _tomography(tomography)
        self.center = self.tomography.center
        self.on_volume = on_volume
        self._shape: tuple[int, ...] | None = None
        self._pending: dict[float, np.ndarray] = {}
        self._seen: dict[float, np.ndarray] = {}
        self.volumes: dict[float, np.ndarray] = {}
        self.centers: dict[float, float] = {}

    def add(self, energy: float, angle: float, frame: np.ndarray) -> bool:
        """One projection (nz, nx); True when it completed its energy (then reconstructed).

        Raises :class:`~xanes_stream.errors.AnalysisError` for an angle not in the scan's, a
        frame whose shape differs from the first's, or a projection of an energy already
        reconstructed.
        """
        energy = float(energy)
        key = float(np.round(angle, _ANGLE_DECIMALS))
        if key not in self._index:
            raise AnalysisError(f"projection at {angle} degrees: not one of the scan's angles")
        if energy in self.volumes:
            raise AnalysisError(f"energy {energy}: all its projections were already in")
        frame = np.asarray(frame, dtype=np.float32)
        if frame.ndim != 2:
            raise AnalysisError(f"a projection must be (nz, nx), got shape {frame.shape}")
        self._shape = self._shape or frame.shape
        if frame.shape != self._shape:
            raise AnalysisError(f"projection shape {frame.shape} differs from {self._shape}")
        if energy not in self._pending:
            self._pending[energy] = np.full((self.angles.size, *frame.shape), np.nan, np.float32)
            self._seen[energy] = np.zeros(self.angles.size, dtype=bool)
        stack = self._pending[energy]
        i = self._index[key]
        stack[i], self._seen[energy][i] = frame, True
        if not self._seen[energy].all():
            return False
        self._reconstruct(energy)
        return True

    def _reconstruct(self, energy: float) -> None:
        values = absorbance(self._pending.pop(energy), self.mode)
        del self._seen[energy]
        center = self.center
        if center is None:
            center = find_center(values, self.angles)
            if not self.tomography.center_per_energy:
                self.center = center
        self.centers[energy] = float(center)
        self.volumes[energy] = reconstruct(
            values,
            self.angles,
            method=self.tomography.method,
            center=center,
            sart_iterations=self.tomography.sart_iterations,
            filter_name=self.tomography.filter_name,
        )
        if self.on_volume is not None:
            self.on_volume(energy, self.volumes[energy])

    @property
    def nbytes(self) -> int:
        """Bytes held: the projections of incomplete energies and the volumes made."""
        arrays = [*self._pending.values(), *self.volumes.values()]
        return int(sum(a.nbytes for a in arrays))

    @property
    def incomplete(self) -> dict[float, int]:
        """Energies still missing projections, with how many they miss."""
        return {e: int((~seen).sum()) for e, seen in self._seen.items()}

    def stack(self) -> tuple[np.ndarray, np.ndarray]:
        """``(energies, volumes)``, energies ascending, of the energies reconstructed so far."""
        if not self.volumes:
            raise AnalysisError("no energy has all its projections yet")
        energies = np.array(sorted(self.volumes))
        return energies, np.stack([self.volumes[e] for e in energies])

    def finish(
        self,
        references: ReferencesLike,
        *,
        settings: AnalysisSettings | dict | None = None,
        progress: bool | Callable[[int, int], None] = False,
    ) -> Maps:
        """The maps of the energies reconstructed (as ``analyze_projections`` gives them); an
        energy still missing projections is left out and named in the notes."""
        energies, volumes = self.stack()
        maps = analyze_volume(
            volumes, energies, references, mode="absorbance", settings=settings, progress=progress
        )
        missing = self.incomplete
        if missing:
            maps.metadata["notes"].append(
                f"{len(missing)} energies left out: projections missing "
                f"({', '.join(f'{e:g} eV: {n}' for e, n in sorted(missing.items()))})"
            )
        maps.metadata["tomography"] = {
            **self.tomography.model_dump(mode="json"),
            "centers": sorted(set(self.centers.values())),
            "n_angles": int(self.angles.size),
            "projections_mode": self.mode,
        }
        return maps
