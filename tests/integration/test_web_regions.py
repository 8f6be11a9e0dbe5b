"""Region spectra and the maps one explores, against a live pipeline (Tiled, 0MQ proxy, the
service with its web page): the /region API's fractions against the simulated truth, and in
headless Chromium a dragged rectangle's spectrum plotted, zoom, the value under the cursor and
the clusters map's discrete key."""

import httpx
import numpy as np
import pytest
from helpers import REPO
from helpers.browser import chromium_page, needs_chromium

from xanes_stream.sim.run import run_simulated_experiment

pytestmark = pytest.mark.timeout(240)
ARTIFACTS = REPO / "test-artifacts"
ENERGIES = np.concatenate(
    [np.arange(8250, 8320, 10.0), np.arange(8320, 8370, 2.0), np.arange(8370, 8451, 10.0)]
)
WAIT = 90.0  # s, the longest any step may take
TOLERANCE = 0.1  # fraction: as the pixel test's, for registration's sub-pixel blur at the edges


@pytest.fixture(scope="module")
def live(start_pipeline):
    live = start_pipeline(web_port=0)
    live.url = live.service.web.url.rstrip("/")
    live.http = httpx.Client(base_url=live.url, timeout=30.0, trust_env=False)
    (run,) = run_simulated_experiment(
        None,
        None,
        live.proxy.in_address,
        n_scans=1,
        detector="inline",
        data_dir=live.data_dir,
        shape=(48, 48),
        seed=11,
        energies=ENERGIES,
    )
    (record,) = live.service.wait_for([run.uid], WAIT)
    assert record is not None and record.status == "done", record
    live.run = run
    yield live
    live.http.close()


def core_box(truth, half=2):
    """A (2 half + 1)-pixel square around the thickest pixel: y0, y1, x0, x1."""
    y, x = np.unravel_index(np.argmax(truth.thickness), truth.thickness.shape)
    return int(y) - half, int(y) + half + 1, int(x) - half, int(x) + half + 1


def weighted_truth(truth, region):
    """The truth's amount of each reference in the region: fractions weighted by thickness."""
    w = truth.thickness[region]
    return {
        n: float((truth.fractions[i][region] * w).sum() / w.sum())
        for i, n in enumerate(truth.references)
    }


def test_rectangle_and_mask_fractions_match_the_truth(live):
    truth = live.run.truth
    y0, y1, x0, x1 = core_box(truth)
    r = live.http.get(
        f"/api/scans/{live.run.uid}/region",
        params={"kind": "rect", "y0": y0, "y1": y1, "x0": x0, "x1": x1},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["n_pixels"] == (y1 - y0) * (x1 - x0)
    region = np.zeros(truth.thickness.shape, bool)
    region[y0:y1, x0:x1] = True
    for name, expected in weighted_truth(truth, region).items():
        assert abs(body["fractions"][name] - expected) < TOLERANCE, (name, body["fractions"])
    parts = np.array([body["components"][n] for n in body["reference_names"]])
    np.testing.assert_allclose(parts.sum(axis=0), body["fit"], atol=1e-6)
    mask = live.http.get(f"/api/scans/{live.run.uid}/region", params={"kind": "mask"}).json()
    summary = live.http.get(f"/api/scans/{live.run.uid}").json()["summary"]
    assert mask["n_pixels"] == summary["mask_pixels"]
    inside = truth.particles & (truth.thickness > 0.3 * truth.thickness.max())
    for name, expected in weighted_truth(truth, inside).items():
        assert abs(mask["fractions"][name] - expected) < TOLERANCE


def test_cluster_regions_and_refusals(live):
    uid = live.run.uid
    legend = next(
        m for m in live.http.get(f"/api/scans/{uid}").json()["maps"] if m["name"] == "clusters"
    )
    labels = [e["value"] for e in legend["legend"] if e["value"] > 0]
    total = 0
    for label in labels:
        r = live.http.get(f"/api/scans/{uid}/region", params={"kind": "cluster", "label": label})
        assert r.status_code == 200, r.text
        total += r.json()["n_pixels"]
        assert sum(r.json()["fractions"].values()) == pytest.approx(1.0, abs=0.05)
    assert total > 0
    bad = live.http.get(
        f"/api/scans/{uid}/region", params={"kind": "rect", "y0": 0, "y1": 99, "x0": 0, "x1": 1}
    )
    assert bad.status_code == 400 and "inside the 48 x 48 image" in bad.json()["error"]
    assert (
        live.http.get(
            f"/api/scans/{uid}/region", params={"kind": "polygon", "points": "1,x"}
        ).status_code
        == 400
    )
    assert (
        live.http.get("/api/scans/no-such-scan/region", params={"kind": "mask"}).status_code == 404
    )


@needs_chromium
def test_page_drags_a_region_zooms_and_keys_the_clusters(live):
    uid = live.run.uid
    detail = live.http.get(f"/api/scans/{uid}").json()
    ny, nx = detail["shape"]
    left, top, width, height = detail["image"]["box"]
    y0, y1, x0, x1 = core_box(live.run.truth)
    with chromium_page(WAIT) as (page, errors):
        page.goto(f"{live.url}/#scan={uid}")
        page.wait_for_selector('#maps img[data-name="thickness"]')
        image = page.locator('#maps img[data-name="thickness"]')
        image.scroll_into_view_if_needed()
        box = image.bounding_box()

        def at(y, x):
            return (
                box["x"] + box["width"] * (left + width * (x + 0.5) / nx),
                box["y"] + box["height"] * (top + height * (y + 0.5) / ny),
            )

        # drag a rectangle: its spectrum and fit are plotted, its pixels counted
        page.mouse.move(*at(y0, x0))
        page.mouse.down()
        page.mouse.move(*at((y0 + y1) // 2, (x0 + x1) // 2), steps=4)
        page.mouse.move(*at(y1 - 1, x1 - 1), steps=4)
        page.mouse.up()
        page.wait_for_selector("#region-plot circle.pt")
        n = (y1 - y0) * (x1 - x0)
        assert f"({n} pixels)" in page.inner_text("#region-caption")
        assert page.locator("#region-plot circle.pt").count() == len(detail["mean"]["energies"])
        assert page.locator("#maps .region-box").count() == len(detail["maps"])
        # the region's downloads: the page's link serves the same region as XDI
        href = page.get_attribute("#region-xdi", "href")
        xdi = httpx.get(f"{live.url}{href}", timeout=30)
        assert xdi.status_code == 200 and xdi.text.startswith("# XDI/1.0")
        # a polygon: alt + click its vertices (pixel centres), double-click to close
        corners = [(y0, x0), (y0, x1 - 1), (y1 - 1, x1 - 1), (y1 - 1, x0)]
        page.keyboard.down("Alt")
        for corner in corners:
            page.mouse.click(*at(*corner))
        page.keyboard.up("Alt")
        page.mouse.dblclick(*at((y0 + y1) // 2, (x0 + x1) // 2))
        caption = page.locator("#region-caption")
        caption.filter(has_text="polygon of 4 vertices (").wait_for()
        shown = int(caption.inner_text().split("(")[1].split()[0])
        # the box's pixels whose centres lie inside or on its outline
        assert (y1 - y0 - 2) * (x1 - x0 - 2) <= shown <= (y1 - y0) * (x1 - x0)
        # the polygon stays drawn on every map, the dragged box gone
        assert page.locator("#maps svg.region-polygon").count() == len(detail["maps"])
        assert page.locator("#maps .region-box").count() == 0
        # the value under the cursor
        page.mouse.move(*at(y0 + 1, x0 + 1))
        readout = page.locator('.readout[data-map="thickness"]')
        readout.filter(has_text=f"x {x0 + 1}, y {y0 + 1}").wait_for()
        # the clusters map has a key of its labels' colours, not a colour bar
        keys = page.locator('.legend[data-map="clusters"] .key')
        clusters = next(m for m in detail["maps"] if m["name"] == "clusters")["legend"]
        assert keys.count() == len(clusters) >= 2
        assert "cluster 1" in page.inner_text('.legend[data-map="clusters"]')
        # zoom with the wheel: the maps scale together; the click maps still read pixels
        page.mouse.move(*at(ny // 2, nx // 2))
        page.mouse.wheel(0, -300)
        page.wait_for_function(
            "() => !document.querySelector('#zoom-level').textContent.startsWith('1.0')"
        )
        transform = page.locator("#maps .view").first.evaluate("el => el.style.transform")
        assert "scale(" in transform and "scale(1)" not in transform
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-regions.png"), full_page=True)
    assert not errors, errors
