"""A tomographic XANES run on a real RunEngine: each energy's volume is made while the run goes
on, and the maps at its stop match the phantom's truth."""

import numpy as np
import pytest
from bluesky import RunEngine
from scipy import ndimage as ndi

from xanes_stream.documents.tomo_callback import TomographyCallback, is_tomography_run
from xanes_stream.sim.devices import SimAxis
from xanes_stream.sim.tomo_devices import TomoCamera, tomo_xanes_scan
from xanes_stream.sim.tomography import make_tomo_phantom


@pytest.fixture(scope="module")
def phantom():
    return make_tomo_phantom(24, n_angles=45, center_offset=1.1, seed=6)


def _devices(phantom):
    energy = SimAxis(name="energy", egu="eV")
    rotation = SimAxis(name="rotation", egu="deg")
    camera = TomoCamera(name="cam", phantom=phantom, energy=energy, rotation=rotation)
    return camera, energy, rotation


def test_volumes_come_as_energies_complete_and_maps_at_the_stop(phantom):
    camera, energy, rotation = _devices(phantom)
    results, made = [], []
    seen_events = []

    def on_volume(e, volume):
        made.append((e, len(seen_events)))  # how many events had come when it was made

    callback = TomographyCallback(phantom.references, results.append, on_volume=on_volume)
    engine = RunEngine({}, context_managers=[])
    engine.subscribe(lambda name, doc: seen_events.append(doc) if name == "event" else None)
    engine.subscribe(callback)
    starts = []
    engine.subscribe(lambda name, doc: starts.append(doc) if name == "start" else None)
    engine(tomo_xanes_scan(camera, energy, rotation, md={"sample": "spheres"}))

    assert is_tomography_run(starts[0])
    n_a = phantom.angles.size
    assert [e for e, _ in made] == list(phantom.energies)
    assert [seen for _, seen in made] == [n_a * (i + 1) for i in range(len(made))]
    (result,) = results
    assert result.failure is None
    maps = result.maps
    assert abs(maps.metadata["tomography"]["centers"][0] - phantom.center) < 0.5
    inner = ndi.binary_erosion(phantom.labels > 0)
    error = np.abs(maps.fractions[:, inner] - phantom.fractions[:, inner]).mean()
    assert error < 0.1


def test_a_bad_run_fails_with_a_reason_and_never_raises(phantom):
    results = []
    callback = TomographyCallback(phantom.references, results.append)
    callback("start", {"uid": "u1", "time": 0, "xanes": {"tomography": {"angles": [0, 90]}}})
    callback("stop", {"uid": "s1", "run_start": "u1", "time": 1, "exit_status": "success"})
    assert results[0].failure == "xanes.tomography has no 'image_key'" and results[0].maps is None

    camera, energy, rotation = _devices(phantom)
    callback = TomographyCallback(phantom.references, results.append)
    engine = RunEngine({}, context_managers=[])

    def drop_angle(name, doc):  # a broken recorder: the rotation is missing from the events
        if name == "event":
            doc = {**doc, "data": {k: v for k, v in doc["data"].items() if k != "rotation"}}
        callback(name, doc)

    engine.subscribe(drop_angle)
    engine(tomo_xanes_scan(camera, energy, rotation))
    assert "has no ['rotation']" in results[1].failure and results[1].maps is None
