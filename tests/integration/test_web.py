"""The live page against a live pipeline (Tiled, 0MQ proxy, service with its web server):
in headless Chromium (Debian's, driven by playwright) and over plain HTTP."""

import json
import threading

import httpx
import numpy as np
import pytest
from helpers import REPO
from helpers.browser import chromium_page, needs_chromium

from xanes_stream.live.web import WebServer
from xanes_stream.sim.run import run_simulated_experiment

pytestmark = pytest.mark.timeout(240)
ARTIFACTS = REPO / "test-artifacts"
ENERGIES = np.concatenate(
    [np.arange(8250, 8320, 10.0), np.arange(8320, 8370, 2.0), np.arange(8370, 8451, 10.0)]
)
WAIT = 90.0  # s, the longest any step may take


@pytest.fixture(scope="module")
def live(start_pipeline):
    live = start_pipeline(web_port=0)
    live.url = live.service.web.url.rstrip("/")
    live.http = httpx.Client(base_url=live.url, timeout=30.0, trust_env=False)
    live.runs = []
    yield live
    live.http.close()


def run_scans(live, n=1, seed=4, md=None):
    """Simulated scans through the proxy (frames inline in the documents; no raw archive)."""
    runs = run_simulated_experiment(
        None,
        None,
        live.proxy.in_address,
        n_scans=n,
        detector="inline",
        data_dir=live.data_dir,
        shape=(48, 48),
        seed=seed,
        energies=ENERGIES,
        md=md,
    )
    live.runs.extend(runs)
    return runs


@pytest.fixture(scope="module")
def done(live):
    """A scan whose maps are done (the browser test's, or one run here)."""
    if not live.runs:
        run_scans(live)
    run = live.runs[-1]
    (record,) = live.service.wait_for([run.uid], WAIT)
    assert record is not None and record.status == "done", record
    return run


def core_pixel(truth):
    """A pixel well inside the thickest particle: (y, x)."""
    y, x = np.unravel_index(np.argmax(truth.thickness), truth.thickness.shape)
    return int(y), int(x)


@needs_chromium
def test_page_shows_a_new_scan_live_in_chromium(live):
    ARTIFACTS.mkdir(exist_ok=True)
    scans = []
    with chromium_page(WAIT) as (page, errors):
        page.goto(live.url + "/")
        page.wait_for_selector("#connection[data-state=live]")
        before = page.locator("tr.scan").count()
        runner = threading.Thread(target=lambda: scans.extend(run_scans(live)))
        runner.start()
        # the scan appears without a reload, then goes to done
        # (functions, not strings to evaluate: the page's CSP forbids eval)
        page.wait_for_function(f"() => document.querySelectorAll('tr.scan').length > {before}")
        runner.join(WAIT)
        assert scans, "the simulated scan did not finish"
        run = scans[0]
        page.wait_for_selector(f'tr.scan[data-uid="{run.uid}"][data-status="done"]')
        # its maps render
        page.wait_for_function(
            "() => { const imgs = [...document.querySelectorAll('#maps img')];"
            " return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);"
            " }"
        )
        detail = live.http.get(f"/api/scans/{run.uid}").json()
        assert page.locator("#maps img").count() == len(detail["maps"])
        # a click on a pixel of a map shows that pixel's spectrum
        y, x = core_pixel(run.truth)
        ny, nx = detail["shape"]
        left, top, width, height = detail["image"]["box"]
        image = page.locator('#maps img[data-name="thickness"]')
        image.scroll_into_view_if_needed()
        box = image.bounding_box()
        page.mouse.click(
            box["x"] + box["width"] * (left + width * (x + 0.5) / nx),
            box["y"] + box["height"] * (top + height * (y + 0.5) / ny),
        )
        page.wait_for_selector("#pixel-plot circle.pt")
        assert f"x {x}, y {y}" in page.inner_text("#pixel-caption")
        assert "in the mask" in page.inner_text("#pixel-info")
        assert page.locator("#pixel-plot circle.pt").count() == len(detail["mean"]["energies"])
        # every map has a PNG at a stable URL
        response = page.request.get(f"{live.url}/maps/{run.uid}/rgb.png")
        assert response.status == 200
        assert response.headers["content-type"] == "image/png"
        page.screenshot(path=str(ARTIFACTS / "web-page.png"), full_page=True)
        # every map downloads at once; no topography without the product
        assert page.get_attribute("#maps-tiff", "href") == f"/api/scans/{run.uid}/maps.tiff"
        assert page.locator("#topography-panel").is_hidden()
        # a scan with the topography product: its levels and histograms are shown
        topo = {"settings": {"products": {"topography": {"enabled": True, "n_levels": 2}}}}
        (other,) = run_scans(live, seed=6, md={"xanes": topo})
        page.wait_for_selector(f'tr.scan[data-uid="{other.uid}"][data-status="done"]')
        page.click(f'tr.scan[data-uid="{other.uid}"]')
        page.wait_for_selector("#topography-panel:not([hidden]) #topography-table td")
        shown = live.http.get(f"/api/scans/{other.uid}").json()["topography"]
        assert page.locator("#topography-table tr").count() == 1 + len(shown["levels"])
        bins = sum(len(c["curvature"]) for c in shown["histograms"])
        assert bins > 0 and page.locator("#topography-plot circle.pt").count() == bins
    assert not errors, errors


def test_health_and_scans(live, done):
    health = live.http.get("/health")
    assert health.status_code == 200
    assert health.json()["profile"] == "sim" and health.json()["listening"] is True
    body = live.http.get("/api/scans").json()
    (scan,) = [s for s in body["scans"] if s["uid"] == done.uid]
    assert scan["status"] == "done"
    assert scan["frames"] == scan["expected"] == len(ENERGIES)
    assert body["seq"] >= 1


def test_scan_json_carries_maps_and_mean_spectrum(live, done):
    d = live.http.get(f"/api/scans/{done.uid}").json()
    names = d["reference_names"]
    assert set(done.truth.references) <= set(names)
    inside = done.truth.particles & (done.truth.thickness > 0.3 * done.truth.thickness.max())
    for i, name in enumerate(done.truth.references):
        assert (
            abs(d["summary"]["mean_fractions"][name] - done.truth.fractions[i][inside].mean()) < 0.1
        )
    mean = d["mean"]
    parts = np.array([mean["components"][n] for n in names])
    np.testing.assert_allclose(parts.sum(axis=0), mean["fit"], atol=2e-3)
    assert 8330 < d["mean_e0"] < 8360
    assert len(d["shifts"]["dy"]) == len(ENERGIES)
    urls = {m["name"]: m["url"] for m in d["maps"]}
    for name in (*(f"fractions/{n}" for n in names), "rgb", "thickness", "r_factor", "mask"):
        assert urls[name] == f"/maps/{done.uid}/{name}.png"


def test_every_map_is_a_png_of_the_advertised_size(live, done):
    d = live.http.get(f"/api/scans/{done.uid}").json()
    for url in [m["url"] for m in d["maps"]] + list(d["plots"].values()):
        response = live.http.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-type"] == "image/png"
        data = response.content
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        if "/plots/" not in url and url not in d["plots"].values():
            width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
            assert (width, height) == (d["image"]["width"], d["image"]["height"]), url
    assert live.http.get(f"/maps/{done.uid}/nonsense.png").status_code == 404
    assert live.http.get("/maps/not-a-scan/thickness.png").status_code == 404


def test_pixel_spectrum_matches_the_maps_and_the_truth(live, done):
    y, x = core_pixel(done.truth)
    p = live.http.get(f"/api/scans/{done.uid}/pixel", params={"y": y, "x": x}).json()
    names = list(p["fractions"])
    for i, name in enumerate(done.truth.references):
        assert p["fractions"][name] == pytest.approx(p["maps"]["fractions"][name], abs=5e-3)
        assert abs(p["fractions"][name] - done.truth.fractions[i][y, x]) < 0.1
    assert p["r_factor"] == pytest.approx(p["maps"]["r_factor"], rel=0.05)
    parts = np.array([p["components"][n] for n in names])
    np.testing.assert_allclose(parts.sum(axis=0), p["fit"], atol=1e-6)
    assert p["maps"]["in_mask"] is True
    outside = live.http.get(f"/api/scans/{done.uid}/pixel", params={"y": 999, "x": 0})
    assert outside.status_code == 400 and "outside" in outside.json()["error"]
    assert live.http.get(f"/api/scans/{done.uid}/pixel").status_code == 400


def test_series_view(live, done):
    series = live.service.records[done.uid].series
    body = live.http.get("/api/series", params={"name": series}).json()
    assert done.uid in [s["uid"] for s in body["scans"]]
    point = next(s for s in body["scans"] if s["uid"] == done.uid)
    assert 8330 < point["mean_e0"] < 8360
    assert set(done.truth.references) <= set(point["mean_fractions"])


def iter_events(http, **kwargs):
    """Events of the stream as (id, kind, data), as they come."""
    current = {}
    with http.stream("GET", "/api/events", **kwargs) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith(("id:", "event:", "data:")):
                key, _, value = line.partition(":")
                current[key] = value.strip()
            elif not line and "data" in current:
                yield int(current["id"]), current["event"], json.loads(current["data"])
                current = {}


def read_events(http, n, **kwargs):
    """The first ``n`` events of the stream."""
    events = []
    for event in iter_events(http, **kwargs):
        events.append(event)
        if len(events) == n:
            break
    return events


def test_event_stream_replays_and_resumes_from_last_event_id(live, done):
    story = [e for e in live.service.events.since(0) if e["scan"]["uid"] == done.uid]
    first = read_events(live.http, 3, params={"since": 0})
    assert [e[0] for e in first] == [1, 2, 3]
    assert all(kind == "scan" for _, kind, _ in first)
    # a client reconnecting with Last-Event-ID gets what follows, however its URL says
    seq = story[-2]["seq"]
    (resumed,) = read_events(live.http, 1, params={"since": 0}, headers={"Last-Event-ID": str(seq)})
    assert resumed[0] == seq + 1
    assert resumed[2]["scan"]["status"] == live.service.events.since(seq)[0]["scan"]["status"]
    # numbers from an earlier run of the service: told to re-read the scans
    (reset,) = read_events(live.http, 1, params={"since": 10**9})
    assert reset[1] == "reset"


def test_pixel_of_a_scan_no_longer_in_memory_says_so(live, done):
    kept = live.service.stacks._stacks.pop(done.uid)
    try:
        response = live.http.get(f"/api/scans/{done.uid}/pixel", params={"y": 1, "x": 1})
        assert response.status_code == 409
        assert "no longer in memory" in response.json()["error"]
        assert live.http.get(f"/api/scans/{done.uid}").json()["pixels_in_memory"] is False
    finally:
        live.service.stacks._stacks[done.uid] = kept


def test_server_stops_with_an_open_event_stream(live, done):
    server = WebServer(live.service.view).start()
    assert server.url.startswith("http://127.0.0.1:") and server.port > 0
    got = []

    def listen():
        with httpx.Client(base_url=server.url, timeout=30.0, trust_env=False) as http:
            try:
                for event in iter_events(http, params={"since": 0}):
                    got.append(event)
            except httpx.HTTPError:
                pass

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    for _ in range(600):  # at most 30 s: the log already holds events
        if got or not listener.is_alive():
            break
        listener.join(0.05)
    server.stop()
    listener.join(30)
    assert got and not listener.is_alive()
    assert not server._thread.is_alive()
