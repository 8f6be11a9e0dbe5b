"""FXI-shaped runs read back from Tiled: Tiled's copy checked, never trusted, and the frames
placed by the run's own event order, verified against the files."""

import h5py
import numpy as np
import pytest
import tifffile
from helpers.fxi_runs import CHUNK, SHAPE

from xanes_stream.profiles import load_profile
from xanes_stream.sim.run import run_simulated_experiment
from xanes_stream.store.archived import RawRunRefused, archived_documents, untrusted_offsets

ENERGIES = [8300.0, 8350.0, 8400.0]
DETECTORS = ["ad_hdf5", "ad_tiff", "async_hdf5", "async_tiff"]
KIND = {"dark": "dark", "primary": "sample", "flat": "flat"}


@pytest.fixture(scope="module")
def tiled_and_dir(tmp_path_factory):
    from xanes_stream.devtools.launcher import start_tiled

    data_dir = tmp_path_factory.mktemp("detector")
    with start_tiled(readable_dirs=[data_dir], timeout=60) as server:
        yield server, data_dir


@pytest.fixture(scope="module")
def fxi_runs(tiled_and_dir):
    tiled, data_dir = tiled_and_dir
    out = {}
    for detector in DETECTORS:
        (run,) = run_simulated_experiment(
            tiled.uri,
            tiled.api_key,
            None,
            n_scans=1,
            plan="xanes_scan2",
            detector=detector,
            data_dir=data_dir / detector,
            shape=SHAPE,
            energies=ENERGIES,
            plan_kwargs={"chunk_size": CHUNK},
            settings={"noise": False},
        )
        out[detector] = run
    return out


def profile_for(detector, data_dir):
    profile = load_profile("fxi").model_copy(update={"allowed_roots": [str(data_dir)]})
    if detector.startswith("async_"):
        profile = profile.model_copy(update={"image_key": "kinetix"})
    return profile


def file_frames(resource, point):
    """The frames the rebuilt ``resource``'s datum ``point`` names, read independently."""
    kwargs = resource["resource_kwargs"]
    fpp = kwargs["frame_per_point"]
    path = "/" + resource["resource_path"]
    if resource["spec"] == "AD_HDF5":
        with h5py.File(path, "r") as f:
            data = f["/entry/data/data"][()]
        return data.reshape(-1, *SHAPE)[point * fpp : (point + 1) * fpp]
    names = [kwargs["template"] % (path, kwargs["filename"], point * fpp + i) for i in range(fpp)]
    return np.stack([tifffile.imread(n) for n in names])


@pytest.mark.parametrize("detector", DETECTORS)
def test_each_event_gets_the_frames_the_camera_took_for_it(tiled_and_dir, fxi_runs, detector):
    """Rebuilt from Tiled's copy: the k-th camera event in time order is the k-th exposure of
    the truth (dark, then sample and flat at each energy), and its frames in the file are of
    that kind (a dark is dark, a flat brighter than the sample seen through it)."""
    tiled, data_dir = tiled_and_dir
    run = fxi_runs[detector]
    archived = archived_documents(
        tiled.client()[run.uid], profile_for(detector, data_dir), [str(data_dir)]
    )
    assert archived.source == "re-read from the files Tiled's copy names"
    assert "Tiled" in archived.note
    docs = archived.documents
    (resource,) = [d for n, d in docs if n == "resource"]
    names = {d["uid"]: d["name"] for n, d in docs if n == "descriptor"}
    datums = {d["datum_id"]: d for n, d in docs if n == "datum"}
    key = "kinetix" if detector.startswith("async_") else "KinetixU_image"
    camera = [
        (names[e["descriptor"]], datums[e["data"][key]]["datum_kwargs"]["point_number"])
        for n, e in docs
        if n == "event" and isinstance(e["data"].get(key), str)
    ]
    exposures = run.truth.exposures
    assert [KIND[s] for s, _ in camera] == [x.kind for x in exposures]
    assert [p for _, p in camera] == list(range(len(exposures)))
    level = {}
    for stream, point in camera:
        frames = file_frames(resource, point)
        assert frames.shape == (CHUNK, *SHAPE)
        level.setdefault(stream, []).append(frames.mean())
    assert max(level["dark"]) < 0.1 * min(level["primary"])
    assert np.all(np.array(level["flat"]) > np.array(level["primary"]))


def test_tiled_documents_of_a_shared_file_are_refused(tiled_and_dir, fxi_runs):
    """What Tiled's export says of the ophyd-async run (one stream_resource for all streams,
    kept under the first) is caught, not used."""
    tiled, _ = tiled_and_dir
    documents = list(tiled.client()[fxi_runs["async_hdf5"].uid].documents())
    problem = untrusted_offsets([(n, dict(d)) for n, d in documents], "kinetix")
    assert problem is not None and "'primary'" in problem


def test_a_file_that_does_not_hold_the_events_frames_is_refused(tiled_and_dir, fxi_runs):
    """A file with a frame too few for the events (a camera that dropped one): which frame
    belongs to which event cannot be told, so the run is refused, saying so."""
    tiled, data_dir = tiled_and_dir
    run = fxi_runs["ad_hdf5"]
    node = tiled.client()[run.uid]
    (path,) = (data_dir / "ad_hdf5").rglob("*.h5")
    with h5py.File(path, "a") as f:
        data = f["/entry/data/data"]
        kept = data[()]
        data.resize(data.shape[0] - 1, axis=0)
    try:
        with pytest.raises(RawRunRefused, match="holds 20 frames where"):
            archived_documents(node, profile_for("ad_hdf5", data_dir), [str(data_dir)])
    finally:
        with h5py.File(path, "a") as f:
            f["/entry/data/data"].resize(kept.shape[0], axis=0)
            f["/entry/data/data"][()] = kept


def test_frames_stamped_out_of_the_events_order_are_refused(tiled_and_dir, fxi_runs):
    """The camera's own timestamps (AD_HDF5_TS) must follow the events: frames shuffled in
    the file are caught."""
    tiled, data_dir = tiled_and_dir
    node = tiled.client()[fxi_runs["ad_hdf5"].uid]
    (path,) = (data_dir / "ad_hdf5").rglob("*.h5")
    name = "/entry/instrument/NDAttributes/NDArrayTimeStamp"
    with h5py.File(path, "a") as f:
        kept = f[name][()]
        f[name][()] = kept[::-1]
    try:
        with pytest.raises(RawRunRefused, match="do not follow the events"):
            archived_documents(node, profile_for("ad_hdf5", data_dir), [str(data_dir)])
    finally:
        with h5py.File(path, "a") as f:
            f[name][()] = kept
