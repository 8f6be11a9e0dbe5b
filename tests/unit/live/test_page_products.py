"""What the live page offers beyond the maps' images, through Starlette's test client: the
valence topography (the product's levels and, per level, the probability of each curvature
bin, from the product's own tables) and every map as a download (TIFF stack, PNG, SVG)."""

import dataclasses
import warnings

import numpy as np
import pytest

with warnings.catch_warnings():  # starlette >= 0.50 prefers httpx2; httpx is what we have
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from xanes_stream.io.references import bundled_reference
from xanes_stream.live.web.app import make_app
from xanes_stream.live.web.guard import HostNames
from xanes_stream.pipeline.scan import analyze_scan
from xanes_stream.sim.phantom import make_phantom

UID = "topo-0001"


class OneScan:
    """The part of a ScanSource the scan route reads: one scan's maps, no frames kept."""

    def __init__(self, maps):
        self.maps = maps

    def scan_record(self, uid):
        return None

    def kept_scans(self):
        return []

    def references(self, names):
        return [bundled_reference(n) for n in names]

    def read_maps(self, uid):
        if uid != UID:
            raise KeyError(uid)
        return self.maps


@pytest.fixture(scope="module")
def maps():
    p = make_phantom((64, 64), n_particles=3, drift=0, seed=4)
    settings = {"products": {"topography": {"enabled": True, "n_levels": 2}}}
    return analyze_scan(
        p.frames, p.energies, p.references, dark=p.dark, flat=p.flat, settings=settings
    )


def test_the_scan_json_carries_the_topography(maps):
    app = make_app(OneScan(maps), HostNames("testserver"))
    with TestClient(app, base_url="http://testserver") as client:
        d = client.get(f"/api/scans/{UID}").json()
    tables = maps.products["topography"].tables
    levels, histogram = tables["topography/levels"], tables["topography/histogram"]
    shown = d["topography"]
    assert [row["level"] for row in shown["levels"]] == pytest.approx(list(levels["level"]))
    for row, p_positive in zip(shown["levels"], levels["p_positive"], strict=True):
        assert row["p_positive"] == pytest.approx(p_positive)
    for curve, level in zip(shown["histograms"], levels["level"], strict=True):
        pick = histogram["level"] == level
        counts = histogram["count"][pick]
        np.testing.assert_allclose(curve["probability"], counts / counts.sum())
        centres = 0.5 * (histogram["low"][pick] + histogram["high"][pick])
        np.testing.assert_allclose(curve["curvature"], centres)


def test_no_topography_no_panel(maps):
    without = dataclasses.replace(maps, products={})
    with TestClient(make_app(OneScan(without), HostNames("testserver"))) as client:
        assert client.get(f"http://testserver/api/scans/{UID}").json()["topography"] is None


def test_every_map_downloads_as_a_tiff_stack_and_figures(maps):
    """The page's downloads are the maps themselves: a page per map, named, the fractions'
    values exact; PNG and SVG figures of the panels."""
    import io

    import tifffile

    from xanes_stream.io.exports import fraction_key, map_images

    with TestClient(make_app(OneScan(maps), HostNames("testserver"))) as client:
        tiff = client.get(f"http://testserver/api/scans/{UID}/maps.tiff")
        png = client.get(f"http://testserver/api/scans/{UID}/maps.png")
        svg = client.get(f"http://testserver/api/scans/{UID}/maps.svg")
        other = client.get(f"http://testserver/api/scans/{UID}/maps.exe")
    assert tiff.status_code == 200 and "attachment" in tiff.headers["content-disposition"]
    expected = map_images(maps, None)
    with tifffile.TiffFile(io.BytesIO(tiff.content)) as f:
        pages = f.asarray()
        labels = f.imagej_metadata["Labels"]
    assert labels == list(expected)
    name = fraction_key(maps.reference_names[0])
    np.testing.assert_array_equal(pages[labels.index(name)], maps.fractions[0])
    assert png.content.startswith(b"\x89PNG") and b"<svg" in svg.content[:500]
    assert other.status_code == 404
