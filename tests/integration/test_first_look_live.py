"""The live service given a scan whose references cannot be found: it analyses the scan as a
first look instead of failing, says so in the record and in Tiled, the maps are read back with
the Tiled client, and the live page (headless Chromium) plots the clusters' spectra as the
candidate references."""

from pathlib import Path

import numpy as np
import pytest
from helpers import REPO
from helpers.browser import CHROMIUM, chromium_page

from xanes_stream.pipeline.first_look import FIRST_LOOK_NOTE
from xanes_stream.sim.run import run_simulated_experiment

pytestmark = pytest.mark.timeout(300)
ENERGIES = np.concatenate(
    [np.arange(8250, 8320, 10.0), np.arange(8320, 8370, 2.0), np.arange(8370, 8451, 10.0)]
)


def test_scan_without_references_is_a_first_look(start_pipeline):
    live = start_pipeline(web_port=0)
    (run,) = run_simulated_experiment(
        live.tiled.uri,
        live.tiled.api_key,
        live.proxy.in_address,
        data_dir=live.data_dir,
        n_scans=1,
        detector="inline",
        shape=(48, 48),
        seed=4,
        energies=ENERGIES,
        md={"xanes": {"references": ["NoSuchPhase"]}},
    )
    (record,) = live.service.wait_for([run.uid], 120.0)
    assert record is not None and record.status == "done", record and record.reason
    assert record.reason == FIRST_LOOK_NOTE

    node = live.tiled.client()["xanes"][run.uid]
    md = node.metadata
    assert md["status"] == "done" and md["method"] == "first_look" and md["references"] == []
    assert FIRST_LOOK_NOTE in md["notes"]
    assert any("NoSuchPhase" in note and "first look" in note for note in md["notes"])
    assert node["fractions"].read().size == 0
    truth = run.truth
    mask = node["mask"].read().astype(bool)
    assert (mask & truth.particles).sum() > 0.5 * truth.particles.sum()
    e0 = node["edge_energy"].read()[mask]
    assert np.isfinite(e0).all() and 8330 < np.median(e0) < 8360  # the Ni K edge
    spectra = md["first_look"]["cluster_spectra"]
    assert list(spectra) == [f"cluster{c}" for c in range(1, len(spectra) + 1)]
    assert len(spectra) == int(node["clusters"].read().max())
    height = node["products"]["first_look"]["white_line_height"].read()
    assert np.nanmedian(height[mask]) > 1.0  # a white line above the edge step

    if Path(CHROMIUM).exists():
        _page_plots_the_candidates(live.service.web.url.rstrip("/"), run.uid, list(spectra))


def _page_plots_the_candidates(url: str, uid: str, names: list[str]) -> None:
    """The scan's row says it is a first look; its mean plot has one line per candidate."""
    with chromium_page(60.0) as (page, errors):
        page.goto(url + "/")
        row = page.locator(f'tr.scan[data-uid="{uid}"][data-status="done"]')
        row.wait_for()
        assert FIRST_LOOK_NOTE in row.inner_text()
        row.click()
        page.wait_for_function(
            "() => [...document.querySelectorAll('#mean-plot text')]"
            ".some(t => t.textContent.endsWith('(candidate reference)'))"
        )
        legend = page.locator("#mean-plot text").all_text_contents()
        assert [t for t in legend if t.endswith("(candidate reference)")] == [
            f"{name} (candidate reference)" for name in names
        ]
        assert "first look" in page.inner_text("#summary")
        page.wait_for_function(
            "() => { const imgs = [...document.querySelectorAll('#maps img')];"
            " return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);"
            " }"
        )
        artifacts = REPO / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        page.screenshot(path=str(artifacts / "first-look-page.png"), full_page=True)
    assert not errors, errors
