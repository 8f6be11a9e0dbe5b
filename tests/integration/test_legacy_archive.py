"""Runs archived in databroker's legacy layout (a ``MongoAdapter`` served read-only by Tiled,
its arrays filled by area-detector-handlers), replayed into another Tiled: through the files
the resource documents name when they are readable here, else through the arrays the
archive's server filled; a run that is not an energy scan is skipped."""

import time

import numpy as np
import pytest
from helpers import fraction_error
from helpers.legacy_archive import serve_legacy_archive

from xanes_stream.profiles import load_profile
from xanes_stream.sim.run import run_simulated_experiment
from xanes_stream.store.archived import archived_documents
from xanes_stream.store.legacy import FROM_ARRAYS, FROM_FILES, is_legacy_run

pytestmark = pytest.mark.timeout(600)
#: A short Ni K-edge scan as FXI's eng_list (given here in eV), as in test_fxi_live.
ENERGIES = np.concatenate(
    [np.arange(8250, 8320, 10.0), np.arange(8320, 8370, 3.0), np.arange(8370, 8451, 16.0)]
)
SHAPE = (48, 48)
CHUNK = 5
IMAGE_KEY = "KinetixU_image"


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """The legacy archive holding one FXI xanes_scan2 (AD_HDF5, dark, sample and flat in one
    file, datum pages) and one count, written by a real RunEngine; and its detector folder."""
    from bluesky import RunEngine
    from bluesky.plans import count
    from ophyd.sim import det

    data_dir = tmp_path_factory.mktemp("legacy-detector")
    with serve_legacy_archive() as server:
        engine = RunEngine({}, context_managers=[])
        try:
            (xanes,) = run_simulated_experiment(
                None,
                None,
                None,
                n_scans=1,
                plan="xanes_scan2",
                detector="ad_hdf5",
                data_dir=data_dir,
                shape=SHAPE,
                energies=ENERGIES,
                seed=21,
                plan_kwargs={"chunk_size": CHUNK},
                callbacks=[server.insert],
                datum_page=True,
                run_engine=engine,
            )
            token = engine.subscribe(server.insert)
            (counted,) = engine(count([det], num=3))
            engine.unsubscribe(token)
        finally:
            engine.loop.call_soon_threadsafe(engine.loop.stop)
        yield server, data_dir, xanes, counted


@pytest.fixture(scope="module")
def destination():
    """A second, writable Tiled for the maps."""
    from xanes_stream.devtools.launcher import start_tiled

    with start_tiled(timeout=60) as server:
        yield server


_REPLAYED: dict[str, list] = {}


def replayed(archive, destination, root, allowed_roots, uids=None):
    """Replay the archive's xanes run (or ``uids``) into ``root`` of the destination (once per
    root in this module); the records, the time per run printed."""
    from xanes_stream.live.replay import replay

    server, _, xanes, _ = archive
    uids = uids or [xanes.uid]
    if root in _REPLAYED:
        return _REPLAYED[root]
    started = time.perf_counter()
    records = replay(
        destination.client(),
        uids,
        source=server.client(),
        profile=load_profile("fxi"),
        root=root,
        allowed_roots=allowed_roots,
        timeout_per_scan=300.0,
    )
    seconds = (time.perf_counter() - started) / len(uids)
    print(f"\n{root}: {seconds:.1f} s per run")
    _REPLAYED[root] = records
    return records


def test_the_archive_is_legacy_and_read_only(archive):
    """The archive's runs are databroker's (BlueskyRun spec version 1, streams with data and
    timestamps), and its anonymous client cannot write."""
    from tiled.client.utils import ClientError

    server, _, xanes, _ = archive
    client = server.client()
    node = client[xanes.uid]
    assert is_legacy_run(node)
    assert {"data", "timestamps"} <= set(node["primary"])
    with pytest.raises(ClientError, match="401"):
        client.post_document("start", {"uid": "x", "time": 0.0})


def test_replayed_through_the_files_its_resources_name(archive, destination):
    """Files inside the allowed roots: the documents go to the router as they are (one file
    shared by dark, sample and flat, each frame at its datum's point), maps match the truth."""
    server, data_dir, xanes, _ = archive
    run = archived_documents(server.client()[xanes.uid], load_profile("fxi"), [str(data_dir)])
    assert run.source == FROM_FILES and run.note is None
    assert {"resource", "datum_page"} <= {name for name, _ in run.documents}
    (record,) = replayed(archive, destination, "legacy_files", [str(data_dir)])
    assert record.status == "done", record.reason
    node = destination.client()["legacy_files"][xanes.uid]
    error = fraction_error(node, xanes.truth)
    print(f"through the files: fraction error {error:.4f}")
    assert error < 0.05
    assert node.metadata["frames_from"] == FROM_FILES
    assert node.metadata["replayed"] is True


def test_replayed_through_the_arrays_the_server_filled(archive, destination, tmp_path):
    """The files are not readable here (no allowed root covers them): the frames are the
    arrays the archive's server filled with its AD_HDF5 handler, checked against the datums,
    inline in the events; maps match the truth and say where their frames came from."""
    server, _, xanes, _ = archive
    elsewhere = str(tmp_path)  # an allowed root that holds none of the run's files
    run = archived_documents(server.client()[xanes.uid], load_profile("fxi"), [elsewhere])
    assert run.source == FROM_ARRAYS
    assert "outside the allowed roots" in run.note and "server filled" in run.note
    names = {name for name, _ in run.documents}
    assert not names & {"resource", "datum", "datum_page"}
    events = [doc for name, doc in run.documents if name == "event"]
    assert any(np.shape(e["data"].get(IMAGE_KEY)) == (CHUNK, *SHAPE) for e in events)
    (record,) = replayed(archive, destination, "legacy_arrays", [elsewhere])
    assert record.status == "done", record.reason
    node = destination.client()["legacy_arrays"][xanes.uid]
    error = fraction_error(node, xanes.truth)
    print(f"through the server's arrays: fraction error {error:.4f}")
    assert error < 0.05
    assert node.metadata["frames_from"] == FROM_ARRAYS
    assert any("server filled" in note for note in node.metadata.get("notes") or [])


def test_both_routes_give_the_same_maps(archive, destination, tmp_path):
    """The server's handler fills the same frames the router reads from the files."""
    _, data_dir, xanes, _ = archive
    replayed(archive, destination, "legacy_files", [str(data_dir)])
    replayed(archive, destination, "legacy_arrays", [str(tmp_path)])
    client = destination.client()
    files, arrays = client["legacy_files"][xanes.uid], client["legacy_arrays"][xanes.uid]
    for name in ("fractions", "thickness", "edge_energy", "shifts"):
        np.testing.assert_allclose(arrays[name].read(), files[name].read(), atol=1e-6, err_msg=name)


def test_a_run_that_is_not_an_energy_scan_is_skipped(archive, destination):
    """bluesky's count is replayed to nothing: no maps, its record says why."""
    _, data_dir, _, counted = archive
    (record,) = replayed(archive, destination, "legacy_count", [str(data_dir)], [counted])
    assert record.status != "done"
    assert "not an energy scan" in record.reason
    client = destination.client()
    assert "legacy_count" not in client or counted not in client["legacy_count"]
