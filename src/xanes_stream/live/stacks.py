"""The last scans' frames, kept in memory so the live page can show any pixel's or region's
spectrum.

Region spectra need the absorption stack, which the maps in Tiled do not hold. The service
keeps the corrected, registered stacks of its last ``ServiceConfig.kept_stacks`` scans here
(with their label maps: clusters, mask, particles), bounded so a day of scans does not grow
its memory; an older scan's region asks for its stack and gets
:class:`~xanes_stream.errors.StackNotKept` (re-analyse it with ``xanes-stream replay``, or
read its raw run with :func:`xanes_stream.store.raw_runs.read_scan` in a notebook and call
:func:`xanes_stream.pipeline.regions.region_spectrum`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from xanes_stream.errors import StackNotKept
from xanes_stream.pipeline.regions import Region, RegionSpectrum, region_spectrum, select_region
from xanes_stream.pipeline.results import Maps
from xanes_stream.spectra.pixel import SpectrumFit, pixel_spectrum
from xanes_stream.spectra.references import Reference

__all__ = ["KeptStacks"]


class KeptStacks:
    """The frames of the last ``size`` fitted 2-D scans (0: none), with what their fit used."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._stacks: OrderedDict[str, dict] = OrderedDict()  # uid -> kept stack, newest last
        self._lock = threading.Lock()

    def keep(self, uid: str, frames, energies, maps: Maps) -> None:
        """Keep the stack of scan ``uid`` analysed into ``maps``, dropping the oldest beyond
        ``size``. Few-energy scans and volumes are not kept: they have no pixel spectra."""
        if self.size <= 0 or maps.metadata.get("method") not in ("fit", "first_look"):
            return  # a few-energy scan has no pixel spectrum to normalize and fit
        if maps.thickness.ndim != 2:
            return  # a volume's voxel spectra are not shown
        fit = maps.metadata.get("settings", {}).get("fit", {})
        with self._lock:
            self._stacks[uid] = {
                "frames": frames,
                "energies": energies,
                "energies_used": maps.energies,
                "normalization": maps.metadata["normalization"],
                "references": list(maps.reference_names),
                "method": fit.get("method", "nnls"),
                "sum_to_one": fit.get("sum_to_one", "none"),
                "labels": {
                    "clusters": maps.clusters,
                    "mask": maps.mask,
                    "particles": _particle_labels(maps),
                },
            }
            self._stacks.move_to_end(uid)
            while len(self._stacks) > self.size:
                self._stacks.popitem(last=False)

    def uids(self) -> list[str]:
        """Uids of the scans whose frames are kept, oldest first."""
        with self._lock:
            return list(self._stacks)

    def labels(self, uid: str) -> dict:
        """The label maps kept with scan ``uid`` (``clusters``, ``mask``, ``particles``: None
        when the particles product did not run); raises StackNotKept."""
        return dict(self._kept(uid)["labels"])

    def region_spectrum(
        self, uid: str, region: Region, references: Callable[[list[str]], list[Reference]]
    ) -> RegionSpectrum:
        """The mean spectrum of ``region`` of scan ``uid`` and its fit with the
        ``references(names)`` the scan was fitted with.

        Raises
        ------
        StackNotKept
            When the scan's frames are no longer (or never were) in memory.
        AnalysisError
            For a region off the image, empty, or of a label the scan does not have.
        """
        kept = self._kept(uid)
        frames = kept["frames"]
        labels = kept["labels"]
        pixels = select_region(region, frames.shape[1:], **labels)
        return region_spectrum(
            frames,
            kept["energies"],
            pixels,
            references(kept["references"]),
            kept["normalization"],
            energies_used=kept["energies_used"],
            settings={"fit": {"method": kept["method"], "sum_to_one": kept["sum_to_one"]}},
            described=region,
        )

    def _kept(self, uid: str) -> dict:
        with self._lock:
            kept = self._stacks.get(uid)
        if kept is None:
            raise StackNotKept(
                f"the frames of scan {uid[:8]} are no longer in memory: the service keeps the "
                f"last {self.size} scans' (ServiceConfig.kept_stacks)"
            )
        return kept

    def pixel_spectrum(
        self, uid: str, y: int, x: int, references: Callable[[list[str]], list[Reference]]
    ) -> SpectrumFit:
        """Pixel (y, x) of scan ``uid``: its normalized spectrum and its fit with the
        ``references(names)`` the scan was fitted with.

        Raises
        ------
        StackNotKept
            When the scan's frames are no longer (or never were) in memory.
        """
        with self._lock:
            kept = self._stacks.get(uid)
        if kept is None:
            raise StackNotKept(
                f"the frames of scan {uid[:8]} are no longer in memory: the service keeps the "
                f"last {self.size} scans' (ServiceConfig.kept_stacks)"
            )
        return pixel_spectrum(
            kept["frames"],
            kept["energies"],
            y,
            x,
            references(kept["references"]),
            kept["normalization"],
            energies_used=kept["energies_used"],
            method=kept["method"],
            sum_to_one=kept["sum_to_one"],
        )


def _particle_labels(maps: Maps):
    product = maps.products.get("particles")
    return None if product is None else product.images.get("particles/labels")
