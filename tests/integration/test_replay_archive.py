"""Replaying a beamtime from a facility's archive: two real Tiled servers, the raw runs in a
sub-container of the source (``/fxi/raw``, as NSLS-II serves them), written by TiledWriter from
the simulated beamline; maps into the destination, which is the only one written to."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xanes_stream.sim.run import run_simulated_experiment

pytestmark = pytest.mark.timeout(900)
#: Few energies (21) around the Ni K edge: enough for the fit, quick to write.
ENERGIES = np.concatenate(
    [np.arange(8250, 8320, 20.0), np.arange(8320, 8370, 4.0), np.arange(8370, 8451, 25.0)]
)
#: The Ni K-edge scan of the live tests (41 energies), for maps held against the truth.
FULL_ENERGIES = np.concatenate(
    [np.arange(8250, 8320, 10.0), np.arange(8320, 8370, 2.0), np.arange(8370, 8451, 10.0)]
)
N_RUNS = 8
FIRST = 3


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """A source Tiled holding ``N_RUNS`` raw runs under ``/fxi/raw``, a destination Tiled, and
    the runs (with their truth)."""
    from xanes_stream.devtools.launcher import start_tiled

    data_dir = tmp_path_factory.mktemp("detector")
    source = start_tiled(readable_dirs=[data_dir], streaming_cache=None)
    try:
        destination = start_tiled(streaming_cache=None)
        try:
            for beamline in ("fxi", "tes"):
                source.client().create_container(beamline).create_container("raw")
            raw_uri = f"{source.uri}/api/v1/metadata/fxi/raw"
            runs = run_simulated_experiment(
                raw_uri,
                source.api_key,
                None,
                n_scans=N_RUNS,
                detector="hdf5",
                data_dir=data_dir,
                shape=(32, 32),
                energies=ENERGIES,
                batch_size=len(ENERGIES) + 10,  # frames posted at the stop: quick
                seed=7,
            )
            yield source, destination, raw_uri, runs, data_dir
        finally:
            destination.stop()
    finally:
        source.stop()


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    """Replay's spool in the test's folder (never the user's)."""
    monkeypatch.setenv("XANES_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def nodes(client, depth: int = 3) -> list[str]:
    """Every node's path down to ``depth`` levels (what a write would change)."""
    found = []

    def walk(node, path, level):
        for key, child in node.items():
            found.append(f"{path}/{key}")
            if level < depth and type(child).__name__ in ("Container", "BlueskyRun"):
                walk(child, f"{path}/{key}", level + 1)

    walk(client, "", 1)
    return sorted(found)


def fraction_error(node, truth) -> float:
    """Median |fitted - true| fraction over the thick part of the particles."""
    names = node["fractions"].metadata["reference_names"]
    fitted = node["fractions"].read()[[names.index(n) for n in truth.references]]
    core = truth.particles & (truth.thickness > 0.3 * truth.thickness.max())
    return float(np.median(np.abs(fitted - truth.fractions)[:, core]))


def replay_cli(destination, *args: str, env: dict | None = None, timeout: float = 600):
    """``xanes-stream replay ARGS`` into the destination, as a user runs it."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "xanes-stream"), "replay", *args,
         "--tiled-uri", destination.uri],
        env={**os.environ, "XANES_TILED_API_KEY": destination.api_key, **(env or {})},
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_a_beamtime_replays_from_the_archive_and_resumes(archive, state_dir):
    """The first ``FIRST`` runs replayed (as an interrupted replay leaves them), then the
    whole beamtime by its scan ids: the done ones are skipped, the rest replayed, each run has
    one result, the maps match the truth, and nothing was written to the source."""
    source, destination, raw_uri, runs, data_dir = archive
    raw = source.client()["fxi"]["raw"]
    before = nodes(source.client())
    env = {"XANES_SOURCE_API_KEY": source.api_key, "XANES_STATE_DIR": str(state_dir)}
    common = ["--source", raw_uri, "--root", "beamtime", "--allowed-root", str(data_dir)]

    first = replay_cli(destination, *[r.uid for r in runs[:FIRST]], *common, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"replayed {FIRST}, skipped (already done) 0" in first.stdout, first.stdout

    scan_ids = sorted(raw[r.uid].metadata["start"]["scan_id"] for r in runs)
    whole = replay_cli(destination, "--scan-ids", f"{scan_ids[0]}-{scan_ids[-1]}", *common,
                       env=env)  # fmt: skip
    assert whole.returncode == 0, whole.stdout + whole.stderr
    summary = whole.stdout.strip().splitlines()[-1]
    print(f"\n{first.stdout.strip().splitlines()[-1]}\n{summary}")
    assert summary.startswith(
        f"replayed {N_RUNS - FIRST}, skipped (already done) {FIRST}, not energy scans 0, failed 0"
    ), whole.stdout
    assert re.search(r"\d+\.\d s per run", summary)
    skipped = [line for line in whole.stdout.splitlines() if "skipped: already" in line]
    assert sorted(line.split()[0] for line in skipped) == sorted(r.uid[:8] for r in runs[:FIRST])

    results = destination.client()["beamtime"]
    assert sorted(results) == sorted(r.uid for r in runs)  # one result a run, no probe left
    errors = []
    for run in runs:
        node = results[run.uid]
        assert node.metadata["status"] == "done", node.metadata.get("reason")
        assert node.metadata["replayed"] is True and node.metadata["settings_digest"]
        errors.append(fraction_error(node, run.truth))
    # 21 energies on 32 x 32 pixels: the fit works, less tightly than the 48 x 48 test below
    print(f"fraction errors: median {np.median(errors):.3f}, max {max(errors):.3f}")
    assert np.median(errors) < 0.1 and max(errors) < 0.15, errors
    assert nodes(source.client()) == before  # the archive is only read
    assert not list((state_dir / "replay-beamtime" / "spool").glob("*"))


def test_replayed_maps_from_the_archive_match_the_truth(archive):
    """A scan of another beamline's ``/tes/raw`` (48 x 48, 41 energies) replayed from the
    source by the Python API: its maps match the truth; the source is unchanged."""
    from xanes_stream.live.replay import find_runs, replay
    from xanes_stream.profiles import load_profile

    source, destination, _, _, data_dir = archive
    (run,) = run_simulated_experiment(
        f"{source.uri}/api/v1/metadata/tes/raw", source.api_key, None, n_scans=1,
        detector="hdf5", data_dir=data_dir, shape=(48, 48), energies=FULL_ENERGIES, seed=11,
        batch_size=len(FULL_ENERGIES) + 10,
    )  # fmt: skip
    raw = source.client()["tes"]["raw"]
    before = nodes(source.client())
    assert find_runs(raw, sample=raw[run.uid].metadata["start"]["sample"]) == [run.uid]
    (record,) = replay(destination.client(), [run.uid], source=raw, profile=load_profile("sim"),
                       root="tes", allowed_roots=[str(data_dir)])  # fmt: skip
    assert record.status == "done", record.reason
    node = destination.client()["tes"][run.uid]
    assert node.metadata["frames_from"] == "re-read from Tiled"  # its documents, checked
    assert fraction_error(node, run.truth) < 0.05
    assert nodes(source.client()) == before


def test_force_replays_again(archive):
    from xanes_stream.live.replay import ALREADY_DONE, replay
    from xanes_stream.profiles import load_profile

    source, destination, _, runs, data_dir = archive
    client, raw = destination.client(), source.client()["fxi"]["raw"]
    uids = [r.uid for r in runs[:2]]
    options = dict(source=raw, profile=load_profile("sim"), root="forced",
                   allowed_roots=[str(data_dir)])  # fmt: skip
    assert all(r.status == "done" for r in replay(client, uids, **options))
    ids = {uid: client["forced"][uid].metadata["result_id"] for uid in uids}
    again = replay(client, uids, **options)
    assert [(r.status, r.reason) for r in again] == [("skipped", ALREADY_DONE)] * 2
    forced = replay(client, uids, force=True, **options)
    assert [r.status for r in forced] == ["done", "done"]
    assert all(client["forced"][uid].metadata["result_id"] != ids[uid] for uid in uids)
    assert sorted(client["forced"]) == sorted(uids)


def test_a_read_only_destination_fails_with_the_servers_words(archive, state_dir, tmp_path):
    """A public (anonymous read) Tiled, reached without a key: the replay stops before any
    analysis with what the server said; nothing is spooled, nothing called unreachable."""
    from tiled.client import from_uri

    from xanes_stream.devtools.launcher import start_tiled
    from xanes_stream.live.replay import replay
    from xanes_stream.profiles import load_profile
    from xanes_stream.store.refusals import WriteRefused

    source, _, _, runs, data_dir = archive
    public = start_tiled(streaming_cache=None, public=True)
    try:
        anonymous = from_uri(public.uri, api_key=None)
        with pytest.raises(WriteRefused) as refused:
            replay(
                anonymous,
                [runs[0].uid],
                source=source.client()["fxi"]["raw"],
                profile=load_profile("sim"),
                root="nope",
                allowed_roots=[str(data_dir)],
            )
        message = str(refused.value)
        assert message.startswith(f"the Tiled at {public.uri}")
        assert "refused to write maps: 401 Unauthorized: Not enough permissions" in message
        assert "unreachable" not in message
        assert not (state_dir / "replay-nope").exists()  # nothing spooled, not even a folder
        assert list(public.client()) == []  # and nothing written
    finally:
        public.stop()


def test_replay_file_fails_an_incomplete_run_at_once(archive, tmp_path):
    """A file whose first run lacks frames and whose second has no stop: both fail with the
    reason, neither waits for Tiled (the first is not ``waiting`` for a later sweep)."""
    from xanes_stream.documents.files import write_documents
    from xanes_stream.live.replay import replay_file
    from xanes_stream.profiles import load_profile

    _, destination, _, _, data_dir = archive
    documents = []
    short, unstopped = run_simulated_experiment(
        None, None, None, n_scans=2, detector="inline", data_dir=data_dir, shape=(32, 32),
        energies=ENERGIES, seed=3, callbacks=[lambda name, doc: documents.append((name, doc))],
    )  # fmt: skip
    events = [i for i, (name, doc) in enumerate(documents)
              if name == "event" and doc.get("descriptor")]  # fmt: skip
    dropped = set(events[len(events) // 4 : len(events) // 4 + 3])  # of the first run
    kept = [
        (name, doc)
        for i, (name, doc) in enumerate(documents)
        if i not in dropped and not (name == "stop" and doc["run_start"] == unstopped.uid)
    ]
    path = write_documents(tmp_path / "incomplete.jsonl", kept)
    records = replay_file(destination.client(), path, profile=load_profile("sim"), root="file")
    by_uid = {r.uid: r for r in records}
    assert by_uid[short.uid].status == "failed", by_uid[short.uid]
    assert "incomplete" in by_uid[short.uid].reason and "sweep" not in by_uid[short.uid].reason
    assert by_uid[unstopped.uid].status == "failed"
    assert "before its stop document" in by_uid[unstopped.uid].reason


def test_serve_sweeps_and_reads_back_runs_from_a_separate_source(archive, tmp_path):
    """`serve` with the raw runs in another Tiled (`source_uri`): a scan it never heard of is
    found by the sweep in the source, read from there, and mapped into the destination; the
    source is not written."""
    from xanes_stream.live.config import ServiceConfig
    from xanes_stream.live.service import XanesService

    source, destination, _, _, data_dir = archive
    (run,) = run_simulated_experiment(
        f"{source.uri}/api/v1/metadata/tes/raw", source.api_key, None, n_scans=1,
        detector="hdf5", data_dir=data_dir, shape=(48, 48), energies=FULL_ENERGIES, seed=21,
        batch_size=len(FULL_ENERGIES) + 10,
    )  # fmt: skip
    before = nodes(source.client())
    os.environ["XANES_SOURCE_API_KEY"] = source.api_key
    config = ServiceConfig(
        tiled_uri=destination.uri,
        source_uri=f"{source.uri}/api/v1/metadata/tes/raw",
        profile="sim",
        results_root="swept",
        state_dir=str(tmp_path / "serve-state"),
        allowed_roots=[str(data_dir)],
        recover_hours=1.0,
    )
    service = XanesService(config, client=destination.client()).start(subscribe=False)
    try:
        assert run.uid in service.recovery.sweep()
        (record,) = service.wait_for([run.uid], 120)
        assert record is not None and record.status == "done", record and record.reason
    finally:
        service.stop()
        os.environ.pop("XANES_SOURCE_API_KEY", None)
    node = destination.client()["swept"][run.uid]
    assert fraction_error(node, run.truth) < 0.05
    assert nodes(source.client()) == before
