"""The live page of a first look (a scan without references), through Starlette's test client:
its maps render, its clusters' spectra are the candidate references of the mean plot, and the
pixel, region and value routes answer without references."""

import warnings

import numpy as np
import pytest
from helpers.phantoms import kinds_phantom

with warnings.catch_warnings():  # starlette >= 0.50 prefers httpx2; httpx is what we have
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from xanes_stream.live.stacks import KeptStacks
from xanes_stream.live.web.app import make_app
from xanes_stream.live.web.guard import HostNames
from xanes_stream.pipeline.first_look import first_look

UID = "look-0001"


class LookSource:
    """The part of a ScanSource the scan routes read: one first look, its stack kept."""

    def __init__(self, od, energies, maps):
        self.maps = maps
        self.stacks = KeptStacks(1)
        self.stacks.keep(UID, od, energies, maps)

    def scan_record(self, uid):
        return None

    def kept_scans(self):
        return self.stacks.uids()

    def references(self, names):
        assert not names  # a first look asks for none
        return []

    def pixel_spectrum(self, uid, y, x):
        return self.stacks.pixel_spectrum(uid, y, x, self.references)

    def region_spectrum(self, uid, region):
        return self.stacks.region_spectrum(uid, region, self.references)

    def labels(self, uid):
        return self.stacks.labels(uid)

    def read_maps(self, uid):
        if uid != UID:
            raise KeyError(uid)
        return self.maps


@pytest.fixture(scope="module")
def look():
    p, _ = kinds_phantom(("NiO", "LiNiO2"), shape=(48, 48), n_particles=4, seed=2)
    od = -np.log(p.transmission).astype(np.float32)
    settings = {"mask": {"n_clusters": 2}, "registration": {"method": "none"}}
    return od, p.energies, first_look(od, p.energies, mode="absorbance", settings=settings)


@pytest.fixture(scope="module")
def api(look):
    source = LookSource(*look)
    with TestClient(make_app(source, HostNames("testserver")), base_url="http://testserver") as c:
        yield c


def test_scan_detail_of_a_first_look(api, look):
    _, _, maps = look
    r = api.get(f"/api/scans/{UID}")
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["method"] == "first_look" and d["reference_names"] == []
    candidates = d["mean"]["candidates"]
    assert list(candidates) == ["cluster1", "cluster2"]
    expected = maps.products["first_look"].spectra["cluster_spectra"]
    np.testing.assert_allclose(candidates["cluster1"], expected[0], rtol=1e-6)
    assert len(d["mean"]["candidate_energies"]) == len(candidates["cluster1"])
    legend = {e["label"]: e["colour"] for e in d["maps"][-1]["legend"]}  # the clusters' key
    assert d["colours"] == {"cluster1": legend["cluster 1"], "cluster2": legend["cluster 2"]}
    names = [m["name"] for m in d["maps"]]
    assert "rgb" not in names and "r_factor" not in names
    assert {"white_line_height", "pre_edge", "edge_energy", "clusters"} <= set(names)
    for m in [*d["maps"], {"url": d["plots"]["spectrum"]}]:
        png = api.get(m["url"])
        assert png.status_code == 200 and png.content[:4] == b"\x89PNG", m["url"]


def test_pixel_region_and_value_without_references(api, look):
    _, _, maps = look
    y, x = np.argwhere(maps.mask)[0]
    pixel = api.get(f"/api/scans/{UID}/pixel", params={"y": y, "x": x})
    assert pixel.status_code == 200, pixel.text
    body = pixel.json()
    assert body["components"] == {} and len(body["normalized"]) == len(body["energies"])
    region = api.get(f"/api/scans/{UID}/region", params={"kind": "cluster", "label": 1})
    assert region.status_code == 200, region.text
    assert region.json()["n_pixels"] == int((maps.clusters == 1).sum())
    value = api.get(f"/api/scans/{UID}/value", params={"y": y, "x": x}).json()["values"]
    assert value["edge_energy"] == pytest.approx(float(maps.edge_energy[y, x]), rel=1e-6)
