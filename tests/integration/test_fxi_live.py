"""FXI's runs through the whole service: a real RunEngine running xanes_scan2 with FXI's
cameras (classic AD_HDF5 with dark, sample and flat in one file and several frames per event;
AD_TIFF; ophyd-async HDF5 and TIFF, each with one stream_resource for all streams), ion
chambers as I0, a flat at every energy, published with msgpack through the real proxy and
archived by TiledWriter in a real Tiled; maps read back with the Tiled client and held against the
simulator's truth, live, replayed, and re-read from Tiled's copy."""

import numpy as np
import pytest
from helpers import fraction_error

from xanes_stream.profiles import load_profile
from xanes_stream.sim.run import run_simulated_experiment

pytestmark = pytest.mark.timeout(600)
#: A short Ni K-edge scan in keV steps as FXI's eng_list (given here in eV).
ENERGIES = np.concatenate(
    [np.arange(8250, 8320, 10.0), np.arange(8320, 8370, 3.0), np.arange(8370, 8451, 16.0)]
)
SHAPE = (48, 48)
CHUNK = 5
WAIT = 120.0
IMAGE_KEY = {
    "ad_hdf5": "KinetixU_image",
    "ad_tiff": "KinetixU_image",
    "async_hdf5": "kinetix",
    "async_tiff": "kinetix",
}


@pytest.fixture(scope="module")
def fxi(start_pipeline):
    """The local pipeline serving the bundled ``fxi`` profile."""
    return start_pipeline(profile="fxi")


def fxi_scan(live, detector, *, seed, publish=True, settings=None, **options):
    """One xanes_scan2 on the simulated FXI, through TiledWriter (and the proxy); ``settings``
    the analysis settings its start document carries."""
    xanes = {"image_key": IMAGE_KEY[detector]} if detector.startswith("async_") else {}
    if settings is not None:
        xanes["settings"] = settings
    md = {"xanes": xanes} if xanes else None
    (run,) = run_simulated_experiment(
        live.tiled.uri,
        live.tiled.api_key,
        live.proxy.in_address if publish else None,
        n_scans=1,
        plan="xanes_scan2",
        detector=detector,
        data_dir=live.data_dir / detector,
        shape=SHAPE,
        energies=ENERGIES,
        seed=seed,
        plan_kwargs={"chunk_size": CHUNK},
        md=md,
        **options,
    )
    return run


def wait_done(service, uid, timeout=WAIT):
    (record,) = service.wait_for([uid], timeout)
    assert record is not None and record.status == "done", record and record.reason
    return record


@pytest.mark.parametrize(
    ("detector", "datum_page"),
    [
        ("ad_hdf5", False),
        ("ad_hdf5", True),
        ("ad_tiff", False),
        ("async_hdf5", False),
        ("async_tiff", False),
    ],
)
def test_fxi_scan_is_mapped_live(fxi, detector, datum_page):
    """Each FXI camera kind gets maps matching the truth; every exposure is counted, every
    energy's frame corrected by its own flat (the beam changes with energy), the per-energy
    noise carried into the chi-square."""
    # The chi-square is checked where there is no sample, so this scan keeps every pixel's fit
    # (by default the fitted maps are NaN outside the mask: nothing off the sample to read).
    keep = {"mask": {"outside": "keep"}}
    run = fxi_scan(fxi, detector, seed=11, datum_page=datum_page, settings=keep)
    record = wait_done(fxi.service, run.uid)
    node = fxi.client["xanes"][run.uid]
    error = fraction_error(node, run.truth)
    print(
        f"\n{detector}{' (datum_page)' if datum_page else ''}: median fraction error "
        f"{error:.4f}, stop to maps {record.latency:.2f} s"
    )
    assert error < 0.04
    notes = " ".join(node.metadata.get("notes") or [])
    n = len(ENERGIES)
    assert f"{n * CHUNK} exposures combined into {n} frames" in notes
    assert "mean flat" not in notes
    assert node.metadata["frames_from"] == "live over 0MQ"
    # The chi-square uses the noise measured from the exposures' spread: where there is
    # nothing to misfit (no sample) it is about 1 (its median ~0.8, see test_chi2_noise);
    # in the particles, registration's interpolation adds what the noise does not explain.
    chi2 = node["chi2_red"].read()
    assert 0.5 < np.nanmedian(chi2[~run.truth.particles]) < 1.5
    assert record.frames == n


def test_fxi_scan_replays_to_the_live_maps(fxi):
    """A live FXI scan replayed from Tiled gets the same maps (the files re-read at the
    events' places, Tiled's copy of the shared file not trusted)."""
    from xanes_stream.live.replay import replay

    run = fxi_scan(fxi, "ad_hdf5", seed=12)
    wait_done(fxi.service, run.uid)
    profile = load_profile("fxi")
    (record,) = replay(
        fxi.client,
        [run.uid],
        profile=profile,
        root="replayed",
        allowed_roots=[str(fxi.data_dir)],
    )
    assert record.status == "done", record.reason
    original, replayed = fxi.client["xanes"][run.uid], fxi.client["replayed"][run.uid]
    for name in ("fractions", "thickness", "edge_energy", "shifts"):
        np.testing.assert_allclose(
            replayed[name].read(), original[name].read(), atol=1e-5, err_msg=name
        )
    assert fraction_error(replayed, run.truth) < 0.04


def test_fxi_scan_lost_by_0mq_is_re_read_from_tiled_against_the_truth(fxi):
    """A scan the service never heard of (not published) is found by the sweep and re-read
    from Tiled: Tiled points every stream at the start of the shared file, so the frames are
    placed by the events' order and checked against the camera's timestamps; the maps match
    the truth and the record says where the frames came from."""
    run = fxi_scan(fxi, "ad_hdf5", seed=13, publish=False)
    assert run.uid in fxi.service.recovery.sweep()
    wait_done(fxi.service, run.uid)
    node = fxi.client["xanes"][run.uid]
    assert fraction_error(node, run.truth) < 0.04
    notes = " ".join(node.metadata.get("notes") or [])
    assert "read from the files" in notes and "re-read from Tiled" in notes
    assert node.metadata["frames_from"] == "re-read from the files Tiled's copy names"


@pytest.mark.parametrize(
    ("i0_key", "reason"),
    [
        ("ic3", "I0 is 0 at 8250.0 eV: was the beam off?"),
        (None, "flat frames are identical to dark frames"),
    ],
)
def test_a_shutter_that_never_opened_fails_with_the_reason(fxi, i0_key, reason):
    """The shutter never opened (every frame is a dark): the scan fails, saying so in the
    scientist's words, instead of giving maps; with ion chambers they read no beam, without
    them the flats are seen to be darks."""
    from bluesky import RunEngine
    from bluesky.preprocessors import msg_mutator
    from bluesky_tiled_plugins import TiledWriter

    from xanes_stream.sim.devices import CLOSED
    from xanes_stream.sim.fxi import make_fxi_beamline
    from xanes_stream.sim.run import connect_publisher

    bl = make_fxi_beamline({"shape": SHAPE, "seed": 14}, fxi.data_dir / f"closed-{i0_key}")

    def shutter_stuck(msg):
        stuck = msg.command == "set" and msg.obj is bl.shutter
        return msg._replace(args=(CLOSED,)) if stuck else msg

    engine = RunEngine({}, context_managers=[])
    engine.subscribe(TiledWriter(fxi.tiled.client(), batch_size=1))
    publisher = connect_publisher(fxi.proxy.in_address)
    engine.subscribe(publisher)
    md = {"xanes": {"i0_key": i0_key}}
    try:
        plan = bl.xanes_scan2([e / 1000 for e in ENERGIES[::3]], chunk_size=2, md=md)
        (uid,) = engine(msg_mutator(plan, shutter_stuck))
    finally:
        publisher.close()
        engine.loop.call_soon_threadsafe(engine.loop.stop)
    (record,) = fxi.service.wait_for([uid], WAIT)
    assert record is not None and record.status == "failed"
    assert reason in record.reason


def test_the_older_xanes_scan_keeps_working_with_the_fxi_profile(fxi):
    """xanes_scan (one dark, the energies, then the flats: no flat at each energy) under the
    fxi profile: frames without a flat of their own are corrected by the mean flat, said in
    the notes, and the maps still match the truth."""
    md = {
        "xanes": {
            "image_key": "camera_image",
            "energy_key": "energy",
            "energy_units": "eV",
            "i0_key": None,
        }
    }
    (run,) = run_simulated_experiment(
        fxi.tiled.uri,
        fxi.tiled.api_key,
        fxi.proxy.in_address,
        n_scans=1,
        detector="hdf5",
        data_dir=fxi.data_dir / "xanes_scan",
        shape=SHAPE,
        energies=ENERGIES,
        seed=15,
        md=md,
    )
    wait_done(fxi.service, run.uid)
    node = fxi.client["xanes"][run.uid]
    assert fraction_error(node, run.truth) < 0.04
    notes = " ".join(node.metadata.get("notes") or [])
    assert "corrected by the mean flat" in notes
