"""The last scans' frames, kept in memory so the live page can show any pixel's spectrum."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from xanes_stream.errors import StackNotKept
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
        if self.size <= 0 or maps.metadata.get("method") != "fit":
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
            }
            self._stacks.move_to_end(uid)
            while len(self._stacks) > self.size:
                self._stacks.popitem(last=False)

    def uids(self) -> list[str]:
        """Uids of the scans whose frames are kept, oldest first."""
        with self._lock:
            return list(self._stacks)

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
