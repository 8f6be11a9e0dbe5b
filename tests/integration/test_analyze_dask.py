"""``xanes-stream analyze VOLUME.h5 --dask ADDRESS`` against a real scheduler and two workers."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers.phantoms import volume_od

from xanes_stream.pipeline.volume import VOLUME_MAPS

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``dask scheduler`` and two single-thread ``dask worker`` processes; their address."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path_factory.mktemp("dask")
    dask = str(BIN / "dask")
    commands = [
        [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        *[[dask, "worker", address, "--nthreads", "1", "--no-dashboard"] for _ in range(2)],
    ]
    processes = []
    try:
        for i, command in enumerate(commands):
            log = open(logs / f"{i}.log", "w")  # closed with the process
            processes.append((subprocess.Popen(command, stdout=log, stderr=log), log))
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for process, _ in processes:
            process.terminate()
        for process, log in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
            log.close()


def _analyze(*args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "XANES_DASK"}
    return subprocess.run(
        [str(BIN / "xanes-stream"), "analyze", *map(str, args), "-r", "NiO", "-r", "LiNiO2"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def test_volume_on_the_cluster_gives_the_same_maps(cluster, tmp_path):
    """The slabs are fitted on both workers, and every map equals the in-process one."""
    od, phantoms = volume_od(6, empty=(5,))
    stack = tmp_path / "volume.h5"
    with h5py.File(stack, "w") as f:
        f.create_dataset("img_xanes", data=od, chunks=(od.shape[0], 1, *od.shape[2:]))
        f.create_dataset("X_eng", data=phantoms[0].energies / 1000.0)
    here, there = tmp_path / "here.h5", tmp_path / "there.h5"
    local = _analyze(stack, "-o", here)
    assert local.returncode == 0, local.stderr
    remote = _analyze(stack, "-o", there, "--dask", cluster)
    assert remote.returncode == 0, remote.stderr
    assert "analysed on the Dask workers" in remote.stdout
    with h5py.File(here) as a, h5py.File(there) as b:
        for name in (*VOLUME_MAPS, "fractions", "mask", "mean_spectrum", "mean_fit"):
            np.testing.assert_allclose(b[name][()], a[name][()], rtol=1e-5, atol=1e-6)
        assert b["mask"][()].any()

    from distributed import Client

    with Client(cluster, timeout=30) as client:
        workers = set(client.scheduler_info()["workers"])
    with h5py.File(there) as b:
        meta = json.loads(b.attrs["metadata"])
    assert meta["dask"] == cluster
    assert meta["analysed_on"] and set(meta["analysed_on"]) <= workers  # not this process


def test_unreachable_cluster_is_one_clear_error(tmp_path):
    """No scheduler at the address: one sentence, a non-zero exit, no traceback."""
    od, phantoms = volume_od(2)
    stack = tmp_path / "volume.h5"
    with h5py.File(stack, "w") as f:
        f.create_dataset("img_xanes", data=od)
        f.create_dataset("X_eng", data=phantoms[0].energies / 1000.0)
    nowhere = f"tcp://127.0.0.1:{_free_port()}"
    result = _analyze(stack, "-o", tmp_path / "maps.h5", "--dask", nowhere)
    assert result.returncode != 0
    assert "cannot reach the Dask scheduler" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("registration", ["phase_correlation", "none"])
def test_stack_on_the_cluster_gives_the_same_maps(cluster, tmp_path, registration):
    """A 2-D stack in blocks of rows on both workers: every map equals the in-process one.
    Registered, the aligned blocks are sent to the workers; unregistered, each worker reads
    its rows from the file."""
    from xanes_stream.sim.example import write_example_stack

    stack = write_example_stack(
        tmp_path / "stack.h5", shape=(64, 80), seed=5, references=("NiO", "LiNiO2")
    )
    settings = tmp_path / "settings.yaml"
    settings.write_text(f"block_pixels: 640\nregistration:\n  method: {registration}\n")
    here, there = tmp_path / "here.h5", tmp_path / "there.h5"
    local = _analyze(stack, "-o", here, "--settings", settings)
    assert local.returncode == 0, local.stderr
    remote = _analyze(stack, "-o", there, "--settings", settings, "--dask", cluster)
    assert remote.returncode == 0, remote.stderr
    with h5py.File(here) as a, h5py.File(there) as b, h5py.File(stack) as truth:
        for name in ("fractions", "thickness", "r_factor", "edge_energy", "mask", "clusters"):
            np.testing.assert_array_equal(b[name][()], a[name][()], err_msg=name)
        meta = json.loads(b.attrs["metadata"])
        fractions = b["fractions"][()]
        true = truth["truth/fractions"][()]
        mask = b["mask"][()].astype(bool)
    assert len(meta["analysed_on"]) == 2  # 10 blocks of rows shared by both workers
    if registration != "none":  # the phantom drifts: the aligned maps match its truth
        assert np.nanmedian(np.abs(fractions - true)[:, mask]) < 0.05
