"""Products (issue 5) end to end: the CLI on the example stack, and the store writing them to a
real Tiled server in both register and upload modes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pandas as pd
import pytest
from helpers import REPO

from xanes_stream.io.maps_file import read_maps

SRC = REPO / "src"


def _cli(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    code = "import sys; from xanes_stream.cli import main; sys.exit(main())"
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def cli_maps(tmp_path_factory):
    """The example stack (64 x 64) analysed with particles, clustering and NMF."""
    folder = tmp_path_factory.mktemp("products")
    stack, out = folder / "stack.h5", folder / "maps.h5"
    _cli("example-stack", str(stack), "--size", "64")
    settings = folder / "settings.yml"
    settings.write_text("products:\n  clustering:\n    k: 3\n")  # parameters from the YAML
    stdout = _cli(
        "analyze", str(stack), "-r", "NiO", "-r", "LiNiO2", "-r", "Ni", "-o", str(out),
        "--settings", str(settings), "--products", "particles,clustering,nmf",
    )  # fmt: skip
    with h5py.File(stack) as f:
        truth = {
            "labels": f["truth/labels"][()],
            "fractions": f["truth/fractions"][()],
            "thickness": f["truth/thickness"][()],
            "n_particles": int(f["truth"].attrs["n_particles"]),
        }
    return read_maps(out), truth, stdout


def test_cli_products_match_the_truth(cli_maps):
    maps, truth, stdout = cli_maps
    assert set(maps.products) == {"particles", "clustering", "decomposition"}
    assert all("error" not in p.metadata for p in maps.products.values())
    assert f"product particles: n_particles={truth['n_particles']}" in stdout

    particles = maps.products["particles"]
    table = particles.tables["particles/table"]
    assert particles.metadata["n_particles"] == table["label"].size == truth["n_particles"]
    labels = particles.images["particles/labels"]
    # one found particle per true one (the thin rims fall below the thickness threshold), and
    # no found particle spans two true ones
    matched = set()
    for true_label in range(1, truth["n_particles"] + 1):
        found = labels[truth["labels"] == true_label]
        label = int(np.bincount(found, minlength=2)[1:].argmax()) + 1
        assert np.mean(found == label) > 0.5
        under = truth["labels"][labels == label]
        assert np.mean((under != true_label) & (under > 0)) < 0.05  # no other particle merged
        matched.add(label)
    assert len(matched) == truth["n_particles"]
    # the table's per-particle means are each particle's composition (its true fractions
    # weighted by its true thickness)
    for row, label in enumerate(table["label"]):
        disc = truth["labels"] == np.bincount(truth["labels"][labels == label]).argmax()
        amount = truth["thickness"][disc]
        for i, name in enumerate(maps.reference_names):
            expected = np.sum(truth["fractions"][i][disc] * amount) / np.sum(amount)
            assert table[f"mean_{name}"][row] == pytest.approx(expected, abs=0.04), (name, row)
    assert table["active"].dtype == bool

    clustering = maps.products["clustering"]
    assert clustering.metadata["k"] == 3  # from the settings YAML, not the elbow
    clusters = clustering.images["clusters/labels"]
    assert set(np.unique(clusters[truth["labels"] > 0])) - {0} == {1, 2, 3}  # 0: not fitted

    nmf = maps.products["decomposition"]
    assert nmf.metadata["method"] == "nmf"
    components = nmf.images["nmf/maps"]
    assert components.shape[1:] == labels.shape
    # at least as many components as the three true phases, chosen from the scree
    assert components.shape[0] >= truth["fractions"].shape[0]
    best = nmf.tables["nmf/matches"]
    assert set(best["reference"]) <= set(maps.reference_names)


def test_unknown_product_is_refused(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    code = "import sys; from xanes_stream.cli import main; sys.exit(main())"
    result = subprocess.run(
        [sys.executable, "-c", code, "analyze", "x.h5", "-r", "NiO", "-o", "m.h5",
         "--products", "particle"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0 and "unknown analysis 'particle'" in result.stderr


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["register", "upload"])
def test_products_in_tiled(cli_maps, tiled, mode):
    from tiled.client import from_uri

    from xanes_stream.store.tiled_store import TiledResultStore

    maps, truth, _ = cli_maps
    client = from_uri(tiled.uri, api_key=tiled.api_key)
    results_dir = tiled.results_dir if mode == "register" else None
    TiledResultStore(client, results_dir=results_dir).write_maps(f"scan-{mode}", maps, {})
    reader = from_uri(tiled.uri, api_key=tiled.api_key)  # a plain client, as users have
    products = reader["xanes"][f"scan-{mode}"]["products"]
    node = products["particles"]["table"]
    table = pd.DataFrame(node.read())  # a table when uploaded, a record array when registered
    columns = {c: table[c].to_numpy() for c in table.columns}
    assert columns["label"].size == truth["n_particles"]
    expected = maps.products["particles"].tables["particles/table"]
    np.testing.assert_allclose(columns["area_px"], expected["area_px"])
    np.testing.assert_allclose(columns["mean_Ni"], expected["mean_Ni"])
    nmf = products["decomposition"]["nmf"]["maps"].read()
    np.testing.assert_array_equal(nmf, maps.products["decomposition"].images["nmf/maps"])
    meta = products["particles"].metadata
    if isinstance(meta.get("metadata"), str):  # register: the HDF5 attribute, as JSON
        meta = json.loads(meta["metadata"])
    assert meta["n_particles"] == truth["n_particles"]


def test_cli_ml_train_then_analyze_with_the_model(tmp_path):
    """``ml train`` on the example stack's energies, then ``analyze --products ml`` with it:
    the ML fractions agree with the fitted ones."""
    stack, model, parity = tmp_path / "stack.h5", tmp_path / "model.skops", tmp_path / "p.png"
    out, settings = tmp_path / "maps.h5", tmp_path / "settings.yml"
    _cli("example-stack", str(stack), "--size", "64")
    refs = ["-r", "NiO", "-r", "LiNiO2", "-r", "Ni"]
    stdout = _cli(
        "ml", "train", *refs, "--energies", str(stack), "--out", str(model),
        "--parity", str(parity),
    )  # fmt: skip
    assert "held-out" in stdout and "LiNiO2: MAE" in stdout
    assert model.stat().st_size > 0 and parity.stat().st_size > 10_000
    settings.write_text(f"products:\n  ml:\n    model_path: {model}\n")
    _cli("analyze", str(stack), *refs, "-o", str(out), "--settings", str(settings),
         "--products", "ml")  # fmt: skip
    maps = read_maps(out)
    product = maps.products["ml"]
    assert "error" not in product.metadata, product.metadata.get("error")
    assert product.metadata["model"] == str(model)
    predicted = product.images["ml/fractions"]
    # The signal-to-noise mask keeps thin pixels too, where a model trained at noise 0.03 is
    # the weaker estimate: it is held to the fit on the thicker half of the mask (measured
    # 0.033), and to the truth over the whole mask (measured 0.074; the fit's 0.039).
    with h5py.File(stack) as f:
        fractions = f["truth/fractions"][()]
    inside = maps.mask.astype(bool)
    thick = inside & (maps.thickness > np.median(maps.thickness[inside]))
    assert np.median(np.abs(predicted[:, thick] - maps.fractions[:, thick])) < 0.05
    assert np.median(np.abs(predicted[:, inside] - fractions[:, inside])) < 0.1


def test_cli_maps_a_three_energy_scan(tmp_path):
    """``example-stack --energies`` writes a scan of pre-edge, E1 and E2 only; ``analyze``
    maps it by the two-energy method, within its stated error of the truth in the file."""
    stack, out, figure = tmp_path / "few.h5", tmp_path / "maps.h5", tmp_path / "maps.png"
    _cli("example-stack", str(stack), "--size", "96", "--references", "NiO", "LiNiO2",
         "--energies", "8290 8344 8351")  # fmt: skip
    stdout = _cli("analyze", str(stack), "-r", "NiO", "-r", "LiNiO2", "-o", str(out),
                  "--plot", str(figure))  # fmt: skip
    assert "two-energy method" in stdout and figure.stat().st_size > 10_000
    maps = read_maps(out)
    assert maps.metadata["method"] == "two_energy"
    with h5py.File(stack) as f:
        fractions, thickness = f["truth/fractions"][()], f["truth/thickness"][()]
    inside = thickness > 0.3 * thickness.max()
    error = maps.products["two_energy"].images["two_energy/fraction_error"][inside]
    z = (maps.fractions[:, inside] - fractions[:, inside]) / error
    assert np.mean(np.abs(z) < 2) > 0.9
