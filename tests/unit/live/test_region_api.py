"""/api/scans/<uid>/region and /value over a kept phantom scan (Starlette's test client, no
server): fractions against the phantom's truth, and the refusals (400, 404, 409)."""

import warnings

import numpy as np
import pytest

with warnings.catch_warnings():  # starlette >= 0.50 prefers httpx2; httpx is what we have
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from xanes_stream.live.stacks import KeptStacks
from xanes_stream.live.web.app import make_app
from xanes_stream.live.web.guard import HostNames

UID = "scan-0001"


class KeptSource:
    """The part of a ScanSource the region routes read: one scan, its stack kept."""

    def __init__(self, phantom, od, maps):
        self.refs = {r.name: r for r in phantom.references}
        self.maps = maps
        self.stacks = KeptStacks(1)
        self.stacks.keep(UID, od, phantom.energies, maps)

    def scan_record(self, uid):
        return None

    def kept_scans(self):
        return self.stacks.uids()

    def references(self, names):
        return [self.refs[n] for n in names]

    def region_spectrum(self, uid, region):
        return self.stacks.region_spectrum(uid, region, self.references)

    def labels(self, uid):
        return self.stacks.labels(uid)

    def read_maps(self, uid):
        if uid != UID:
            raise KeyError(uid)
        return self.maps


@pytest.fixture(scope="module")
def api(od_scan):
    phantom, od, maps = od_scan
    source = KeptSource(phantom, od, maps)
    with TestClient(make_app(source, HostNames("testserver")), base_url="http://testserver") as c:
        c.source = source
        yield c


def test_rectangle_fractions_match_the_truth(api, od_scan):
    phantom, _, _ = od_scan
    y, x = np.unravel_index(np.argmax(phantom.thickness), phantom.thickness.shape)
    bounds = {"y0": y - 2, "y1": y + 3, "x0": x - 2, "x1": x + 3}
    r = api.get(f"/api/scans/{UID}/region", params={"kind": "rect", **bounds})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (
        body["n_pixels"] == 25
        and body["region"] == f"rows {y - 2}..{y + 2}, columns {x - 2}..{x + 2}"
    )
    weights = phantom.thickness[y - 2 : y + 3, x - 2 : x + 3]
    for i, ref in enumerate(phantom.references):
        truth = (phantom.fractions[i, y - 2 : y + 3, x - 2 : x + 3] * weights).sum() / weights.sum()
        assert abs(body["fractions"][ref.name] - truth) < 0.05  # noise of 25 pixels, 3 references
    assert len(body["normalized"]) == len(body["fit_energies"]) == len(body["fit"])
    assert len(body["spectrum"]) == len(body["energies"])
    assert body["r_factor"] < 1e-2


def test_cluster_mask_and_value(api, od_scan):
    _, _, maps = od_scan
    mask = api.get(f"/api/scans/{UID}/region", params={"kind": "mask"}).json()
    assert mask["n_pixels"] == int(maps.mask.sum())
    mean = maps.summary()["mean_fractions"]
    for name, value in mask["fractions"].items():
        assert abs(value - mean[name]) < 0.1  # thickness-weighted vs plain mean of the maps
    cluster = api.get(f"/api/scans/{UID}/region", params={"kind": "cluster", "label": 1}).json()
    assert cluster["n_pixels"] == int((maps.clusters == 1).sum())
    v = api.get(f"/api/scans/{UID}/value", params={"y": 5, "x": 7}).json()["values"]
    assert v["thickness"] == pytest.approx(float(maps.thickness[5, 7]), rel=1e-6)
    assert v["clusters"] == maps.clusters[5, 7]


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"kind": "rect", "y0": 0, "y1": 99, "x0": 0, "x1": 3}, 400, "inside the 64 x 64 image"),
        ({"kind": "rect", "y0": "a", "y1": 9, "x0": 0, "x1": 3}, 400, "must be an integer"),
        ({"kind": "cluster", "label": 99}, 400, "no cluster 99"),
        ({"kind": "particle", "label": 1}, 400, "no particle map"),
        ({"kind": "spiral"}, 400, "kind must be one of"),
    ],
)
def test_bad_regions_are_400_with_a_reason(api, params, status, words):
    r = api.get(f"/api/scans/{UID}/region", params=params)
    assert r.status_code == status and words in r.json()["error"]


def test_unknown_scan_is_404_and_a_scan_not_kept_409(api):
    r = api.get("/api/scans/nope/region", params={"kind": "mask"})
    assert r.status_code == 404
    kept = api.source.stacks._stacks.pop(UID)
    try:
        r = api.get(f"/api/scans/{UID}/region", params={"kind": "mask"})
        assert r.status_code == 409 and "no longer in memory" in r.json()["error"]
    finally:
        api.source.stacks._stacks[UID] = kept
    assert api.get(f"/api/scans/{UID}/value", params={"y": 999, "x": 0}).status_code == 400


def test_particle_region_fits_that_particle(od_scan):
    """A scan analysed with the particles product: kind=particle selects one watershed label."""
    import dataclasses

    from xanes_stream.imaging.particles import label_particles
    from xanes_stream.pipeline.results import Product

    phantom, od, maps = od_scan
    labels = label_particles(maps.thickness)
    with_particles = dataclasses.replace(
        maps, products={"particles": Product(images={"particles/labels": labels})}
    )
    source = KeptSource(phantom, od, with_particles)
    app = make_app(source, HostNames("testserver"))
    with TestClient(app, base_url="http://testserver") as client:
        label = int(np.bincount(labels[labels > 0]).argmax())  # the largest particle
        r = client.get(f"/api/scans/{UID}/region", params={"kind": "particle", "label": label})
        assert r.status_code == 200, r.text
        body = r.json()
        region = labels == label
        assert body["n_pixels"] == int(region.sum()) and body["region"] == f"particle {label}"
        weights = phantom.thickness[region]
        for i, ref in enumerate(phantom.references):
            truth = (phantom.fractions[i][region] * weights).sum() / weights.sum()
            assert abs(body["fractions"][ref.name] - truth) < 0.05
        y, x = np.argwhere(region)[0]
        value = client.get(f"/api/scans/{UID}/value", params={"y": y, "x": x}).json()
        assert value["values"]["particle"] == label
        missing = client.get(f"/api/scans/{UID}/region", params={"kind": "particle", "label": 999})
        assert missing.status_code == 400 and "no particle 999" in missing.json()["error"]


@pytest.mark.parametrize("kind", ["csv", "xdi", "prj"])
def test_a_region_downloads_as_csv_xdi_and_athena(api, od_scan, kind):
    """The same region as a file: the normalized spectrum and fit the JSON gives."""
    import gzip

    phantom, _, _ = od_scan
    y, x = np.unravel_index(np.argmax(phantom.thickness), phantom.thickness.shape)
    params = {"kind": "rect", "y0": y - 2, "y1": y + 3, "x0": x - 2, "x1": x + 3}
    body = api.get(f"/api/scans/{UID}/region", params=params).json()
    r = api.get(f"/api/scans/{UID}/region", params={**params, "format": kind})
    assert r.status_code == 200, r.text
    assert f".{kind}" in r.headers["content-disposition"]
    if kind == "prj":
        text = gzip.decompress(r.content).decode()
        assert "Athena project" in text or "@x" in text
        return
    rows = [
        line.split(",") if kind == "csv" else line.split()
        for line in r.text.splitlines()
        if line and not line.startswith("#") and line[0] not in "ae"
    ]
    table = np.array(rows, dtype=float)
    np.testing.assert_allclose(table[:, 0], body["fit_energies"], rtol=1e-6)
    np.testing.assert_allclose(table[:, 1], body["normalized"], rtol=1e-5, atol=1e-6)


def test_an_unknown_download_format_is_400(api, od_scan):
    r = api.get(f"/api/scans/{UID}/region", params={"kind": "mask", "format": "pickle"})
    assert r.status_code == 400 and "format" in r.json()["error"]
