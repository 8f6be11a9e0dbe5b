"""Tomographic XANES live, with the real pieces: a RunEngine publishing a tomographic run
through the 0MQ proxy, the service reconstructing each energy as its projections arrive, and
the volume's maps read back from Tiled against the phantom's truth."""

import numpy as np
import pytest
from bluesky import RunEngine
from scipy import ndimage as ndi

from xanes_stream.sim.devices import SimAxis
from xanes_stream.sim.run import connect_publisher
from xanes_stream.sim.tomo_devices import (
    TomoAreaDetector,
    TomoAsyncDetector,
    TomoCamera,
    tomo_xanes_scan,
)
from xanes_stream.sim.tomography import make_tomo_phantom

pytestmark = pytest.mark.timeout(300)
WAIT = 120.0


@pytest.mark.parametrize("detector", ["inline", "ad_hdf5", "async_hdf5"])
def test_a_tomographic_run_is_mapped_live(start_pipeline, detector):
    """Projections inline in the events, or written into an HDF5 file under the detector root
    by a classic areaDetector (resource/datum) or an ophyd-async detector (stream_resource/
    stream_datum), two exposures per angle, as at FXI."""
    live = start_pipeline()
    phantom = make_tomo_phantom(24, n_angles=36, center_offset=-0.9, seed=9)
    energy, rotation = SimAxis(name="energy", egu="eV"), SimAxis(name="rotation", egu="deg")
    devices = {"phantom": phantom, "energy": energy, "rotation": rotation}
    if detector == "inline":
        camera = TomoCamera(name="cam", **devices)
    elif detector == "ad_hdf5":
        camera = TomoAreaDetector(name="cam", directory=live.data_dir, **devices)
        camera.cam.num_images.put(2)
    else:
        camera = TomoAsyncDetector(name="cam", directory=live.data_dir, exposures=2, **devices)
    engine = RunEngine({}, context_managers=[])
    publisher = connect_publisher(live.proxy.in_address)
    engine.subscribe(publisher)
    try:
        (uid,) = engine(tomo_xanes_scan(camera, energy, rotation, md={"sample": "spheres"}))
    finally:
        publisher.close()
    (record,) = live.service.wait_for([uid], WAIT)
    assert record is not None and record.status == "done", record and record.reason

    node = live.client["xanes"][uid]
    names = node["fractions"].metadata["reference_names"]
    fitted = node["fractions"].read()
    assert fitted.shape == (len(names), 24, 24, 24)
    fitted = fitted[[names.index(r.name) for r in phantom.references]]
    inner = ndi.binary_erosion(phantom.labels > 0)
    assert np.abs(fitted[:, inner] - phantom.fractions[:, inner]).mean() < 0.1
    assert node["mask"].shape == node["thickness"].shape == (24, 24, 24)
