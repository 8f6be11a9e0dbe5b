"""Edge-energy fronts and the in-operando series summary, against the simulator's reaction."""

import itertools

import numpy as np
import pytest
from helpers.normalized_phantom import normalized_stack

from xanes_stream import analyze
from xanes_stream.errors import AnalysisError
from xanes_stream.pipeline.products.fronts import FrontSettings, run
from xanes_stream.pipeline.series import SeriesSummary
from xanes_stream.sim.phantom import make_phantom, ni_edge_energies
from xanes_stream.sim.txm import SimSettings, TXMSimulator
from xanes_stream.spectra.features import edge_energy
from xanes_stream.spectra.fronts import edge_energy_contours, spanning_windows

PROGRESS = (0.0, 0.35, 0.65, 1.0)


def _scan(sim: TXMSimulator, progress: float, energies: np.ndarray):
    """One simulated scan: dark, flat and sample frames at each energy, as the camera sees."""
    sim.begin_scan(progress)
    dark = sim.frame("dark", energies[0], progress)
    flat = np.stack([sim.frame("flat", e, progress) for e in energies])
    frames = np.stack([sim.frame("sample", e, progress) for e in energies])
    return frames, dark, flat


@pytest.fixture(scope="module")
def series():
    """An in-operando series of four scans of a reacting 64x64 field of view."""
    sim = TXMSimulator(SimSettings(shape=(64, 64), n_particles=4, drift_px=0.0, seed=2))
    energies = ni_edge_energies()
    scans = []
    for progress in PROGRESS:
        frames, dark, flat = _scan(sim, progress, energies)
        maps = analyze(
            frames,
            energies,
            sim.references,
            dark=dark,
            flat=flat,
            # the front is judged on pixels thick enough for a precise E0: Otsu's mask
            settings={
                "registration": {"method": "none"},
                "mask": {"n_clusters": 0, "method": "otsu"},
            },
        )
        scans.append((sim.truths[-1], maps))
    return sim, scans


def test_series_mean_fractions_follow_the_reaction(series):
    _, scans = series
    summary = SeriesSummary("cell-1")
    for i, (_truth, maps) in enumerate(scans[::-1]):  # arrival order does not matter
        summary.add(f"uid-{i}", 100.0 * (len(scans) - i), maps)
    table = summary.to_table()
    assert len(summary) == 4
    np.testing.assert_array_equal(table["time"], [100, 200, 300, 400])
    truth_means = np.array([t.fractions[1][m.mask].mean() for t, m in scans])
    assert np.all(np.diff(truth_means) > 0.1)  # the phantom does react
    assert np.max(np.abs(table["mean_LiNiO2"] - truth_means)) < 0.03
    np.testing.assert_allclose(table["mean_NiO"] + table["mean_LiNiO2"], 1.0, atol=1e-5)
    assert np.all(np.diff(table["mean_LiNiO2"]) > 0.05)
    # Ni3+ edges lie higher: the E0 histogram moves up as the reaction goes on
    centres = 0.5 * (summary.bin_edges[1:] + summary.bin_edges[:-1])
    counts = summary.histogram()
    mean_e0 = counts @ centres / counts.sum(axis=1)
    assert np.all(np.diff(mean_e0) > 0.3)
    # the bins hold every E0 the mask's pixels have (a thin pixel may have none)
    found = [np.isfinite(m.edge_energy[m.mask]).sum() for _, m in scans]
    np.testing.assert_array_equal(counts.sum(axis=1), found)
    assert np.all(np.asarray(found) >= 0.99 * table["n_pixels"])
    assert [f"e0_count_{i:03d}" for i in range(counts.shape[1])] == [
        c for c in table if c.startswith("e0_count_")
    ]
    product = summary.to_product()
    assert product.metadata["e0_bin_edges"] == summary.bin_edges.tolist()
    assert product.metadata["series"] == "cell-1" and product.metadata["n_scans"] == 4
    np.testing.assert_array_equal(product.tables["series/summary"]["mean_NiO"], table["mean_NiO"])


def test_series_replaces_a_scan_added_again(series):
    _, scans = series
    summary = SeriesSummary(e0_bins=np.arange(8330.0, 8360.0, 1.0))
    summary.add("a", 1.0, scans[0][1])
    summary.add("b", 2.0, scans[1][1])
    summary.add("a", 3.0, scans[3][1])
    table = summary.to_table()
    assert list(table["uid"]) == ["b", "a"]
    assert table["mean_LiNiO2"][1] == pytest.approx(
        scans[3][1].summary()["mean_fractions"]["LiNiO2"]
    )
    assert summary.histogram().shape == (2, 29)


def test_series_rebuilt_from_its_table(series):
    """After a restart the summary is read back from its table: the rows written before and
    those added after give the table an uninterrupted service would have written."""
    _, scans = series
    whole = SeriesSummary("cell-1")
    before = SeriesSummary("cell-1")
    for i, (_truth, maps) in enumerate(scans):
        whole.add(f"uid-{i}", float(i), maps)
        if i < 2:
            before.add(f"uid-{i}", float(i), maps)
    stored = before.to_product()
    after = SeriesSummary("cell-1")  # the restarted service's
    taken = after.merge_table(stored.tables["series/summary"], stored.metadata["e0_bin_edges"])
    assert taken == 2
    for i, (_truth, maps) in enumerate(scans[2:], start=2):
        after.add(f"uid-{i}", float(i), maps)
    assert after.merge_table(stored.tables["series/summary"], stored.metadata["e0_bin_edges"]) == 0
    expected, rebuilt = whole.to_table(), after.to_table()
    assert list(rebuilt) == list(expected)
    for column in expected:
        np.testing.assert_array_equal(rebuilt[column], expected[column], err_msg=column)


def test_series_takes_a_few_energy_scan(series):
    """A two-energy scan has no E0: its row has fractions and an empty histogram."""
    _, scans = series
    maps = scans[1][1]
    few = type(maps)(**{**maps.__dict__, "edge_energy": np.full_like(maps.edge_energy, np.nan)})
    few.metadata = {"method": "two_energy"}
    summary = SeriesSummary()
    summary.add("few", 1.0, few)
    assert summary.bin_edges is None and summary.histogram().shape == (1, 0)
    summary.add("full", 2.0, scans[2][1])
    counts = summary.histogram()
    assert counts[0].sum() == 0 and counts[1].sum() == summary.to_table()["n_pixels"][1]
    assert summary.to_table()["mean_LiNiO2"][0] == pytest.approx(
        few.summary()["mean_fractions"]["LiNiO2"]
    )


def test_series_refuses_other_references(series):
    _, scans = series
    summary = SeriesSummary()
    summary.add("a", 1.0, scans[0][1])
    other = scans[1][1]
    renamed = type(other)(**{**other.__dict__, "reference_names": ["A", "B"]})
    with pytest.raises(AnalysisError, match="fitted with"):
        summary.add("b", 2.0, renamed)
    with pytest.raises(AnalysisError, match="increasing"):
        SeriesSummary(e0_bins=[3.0, 2.0])


def test_contours_select_the_front(series):
    """Half-way through, the window between the two phases' E0 holds the reacting shell."""
    sim, scans = series
    truth, maps = scans[1]
    energies = ni_edge_energies()
    pure = np.stack([sim.unit_spectra(e) for e in energies])  # (n, 2) unit-step references
    e0_nio, e0_lno = edge_energy(pure, energies, (8320.0, 8370.0))
    assert e0_lno > e0_nio + 1.0
    middle = (e0_nio + 0.25 * (e0_lno - e0_nio), e0_lno - 0.25 * (e0_lno - e0_nio))
    windows = [(8300.0, middle[0]), middle, (middle[1], 8400.0)]
    contours = edge_energy_contours(maps.edge_energy, windows, maps.mask)
    assert contours.shape == (3, 64, 64)
    assert not (contours.sum(axis=0) > 1).any()  # windows do not overlap
    f = truth.fractions[1]
    for window, expected in zip(contours, ((0.0, 0.3), (0.3, 0.7), (0.7, 1.0)), strict=True):
        lo, hi = expected
        share = ((f[window] >= lo - 0.1) & (f[window] <= hi + 0.1)).mean()
        assert share > 0.8, (expected, share)
    assert contours[1].sum() > 20  # there is a front to see


def test_contours_ignore_nan_and_mask():
    e0 = np.array([[8340.0, np.nan], [8345.0, 8350.0]])
    mask = np.array([[True, True], [False, True]])
    out = edge_energy_contours(e0, [(8339.0, 8346.0), (8346.0, 8351.0)], mask)
    np.testing.assert_array_equal(out[0], [[True, False], [False, False]])
    np.testing.assert_array_equal(out[1], [[False, False], [False, True]])
    with pytest.raises(AnalysisError, match="low < high"):
        edge_energy_contours(e0, [(8350.0, 8340.0)])
    with pytest.raises(AnalysisError, match="finite"):
        edge_energy_contours(e0, [])


def test_spanning_windows_and_run_adapter(series):
    _, scans = series
    maps = scans[2][1]
    windows = spanning_windows(maps.edge_energy, maps.mask, 4)
    assert len(windows) == 4
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))
    p = make_phantom((32, 32), references=("NiO", "LiNiO2"), n_particles=1, drift=0, seed=1)
    normalized = normalized_stack(p)  # not used by fronts, but part of the uniform call
    product = run(normalized, maps, FrontSettings(enabled=True, n_windows=4), [])
    contours = product.images["fronts/contours"]
    assert contours.shape == (4, 64, 64)
    # the 5th-95th percentile span holds ~90% of the masked pixels
    assert 0.85 < contours.sum() / maps.mask.sum() < 0.95
    assert product.metadata["pixels"] == contours.sum(axis=(1, 2)).tolist()
