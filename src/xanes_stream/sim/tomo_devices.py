"""A simulated tomographic XANES measurement on ophyd devices, and its Bluesky plan.

:class:`TomoCamera` records, at the energy and rotation angle its motors are at, the projection
that a :class:`~xanes_stream.sim.tomography.TomoPhantom` holds for them (flat-corrected
transmission, inline in the event). :func:`tomo_xanes_scan` measures every angle at each energy
in turn and says in its start document what a consumer needs to reconstruct as it goes:
``md["xanes"]["tomography"] = {"angles": [...], "angle_key": ..., "energy_key": ...,
"image_key": ..., "mode": "transmission"}``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from ophyd import Component as Cpt
from ophyd import Device
from ophyd.status import StatusBase

from xanes_stream.sim.devices import SimAxis, _finished, _ImageSignal
from xanes_stream.sim.tomography import TomoPhantom
from xanes_stream.sim.txm import BeamlineError

__all__ = ["TomoCamera", "tomo_xanes_scan"]


class TomoCamera(Device):
    """Inline projections of a phantom at the ``energy`` and ``rotation`` motors' positions."""

    image = Cpt(_ImageSignal, kind="hinted")

    def __init__(self, *, name: str, phantom: TomoPhantom, energy: SimAxis, rotation: SimAxis):
        super().__init__(name=name)
        self.phantom, self.energy, self.rotation = phantom, energy, rotation
        self.image.put(np.zeros(phantom.projections.shape[2:], dtype=np.float32))

    @property
    def image_key(self) -> str:
        return f"{self.name}_image"

    def _index(self, values: np.ndarray, value: float, what: str) -> int:
        i = int(np.argmin(np.abs(values - value)))
        if abs(values[i] - value) > 1e-6 * max(1.0, abs(value)):
            raise BeamlineError(f"the phantom has no projection at {what} {value}")
        return i

    def trigger(self) -> StatusBase:
        e = self._index(self.phantom.energies, self.energy.position, "energy")
        a = self._index(self.phantom.angles, self.rotation.position, "angle")
        self.image.put(self.phantom.projections[e, a])
        return _finished()


def tomo_xanes_scan(
    camera: TomoCamera, energy: SimAxis, rotation: SimAxis, *, md: dict[str, Any] | None = None
):
    """Every angle of the camera's phantom at each of its energies, one event per projection.

    Parameters
    ----------
    camera, energy, rotation : the devices (motors in eV and degrees).
    md : more start-document metadata (merged; ``xanes`` merged key by key).
    """
    phantom = camera.phantom
    md = dict(md or {})
    xanes = {
        **md.pop("xanes", {}),
        "references": [r.name for r in phantom.references],
        "tomography": {
            "angles": [float(a) for a in phantom.angles],
            "angle_key": rotation.name,
            "energy_key": energy.name,
            "image_key": camera.image_key,
            "mode": "transmission",
        },
    }
    n = phantom.energies.size * phantom.angles.size
    start = {"plan_name": "tomo_xanes_scan", "num_points": n, "xanes": xanes, **md}

    @bpp.run_decorator(md=start)
    def inner():
        for e in phantom.energies:
            yield from bps.mv(energy, float(e))
            for a in phantom.angles:
                yield from bps.mv(rotation, float(a))
                yield from bps.trigger_and_read([camera, energy, rotation])

    return (yield from inner())
