"""The region of a /region request: numbers only, bounded; anything else refused with a reason."""

import pytest

from xanes_stream.imaging.regions import MAX_VERTICES
from xanes_stream.live.web.region_query import BadRegion, parse_pixel, parse_region
from xanes_stream.live.web.render import label_legend
from xanes_stream.pipeline.regions import Region


def test_each_kind_parses():
    assert parse_region({"kind": "rect", "y0": "1", "y1": "5", "x0": "2", "x1": "9"}) == Region(
        "rect", bounds=(1, 5, 2, 9)
    )
    assert parse_region({"kind": "cluster", "label": "2"}) == Region("cluster", label=2)
    assert parse_region({"kind": "particle", "label": "7"}) == Region("particle", label=7)
    assert parse_region({"kind": "mask"}) == Region("mask")
    polygon = parse_region({"kind": "polygon", "points": "0,0; 10,0.5;10.25,12;"})
    assert polygon.points == ((0.0, 0.0), (10.0, 0.5), (10.25, 12.0))
    assert parse_pixel({"y": "3", "x": "4"}) == (3, 4)


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({}, "kind must be one of"),
        ({"kind": "<script>"}, "kind must be one of"),
        ({"kind": "rect", "y0": "1", "y1": "5", "x0": "2"}, "x1 must be an integer"),
        ({"kind": "rect", "y0": "1e3", "y1": "5", "x0": "2", "x1": "3"}, "y0 must be an integer"),
        ({"kind": "rect", "y0": "nan", "y1": "5", "x0": "2", "x1": "3"}, "y0 must be an integer"),
        ({"kind": "cluster", "label": "one"}, "label must be an integer"),
        ({"kind": "polygon", "points": "1,2;3,4"}, "3 to"),
        ({"kind": "polygon", "points": "1,2;3,4;inf,5"}, "two numbers"),
        ({"kind": "polygon", "points": "1,2,3;3,4;4,5"}, "two numbers"),
        ({"kind": "polygon", "points": ";".join(["1,2"] * (MAX_VERTICES + 1))}, "3 to 500"),
        ({"kind": "polygon", "points": "1" * 100_000}, "at most"),
    ],
)
def test_bad_requests_say_what_to_send(params, reason):
    with pytest.raises(BadRegion, match=reason):
        parse_region(params)


def test_pixel_needs_integers():
    with pytest.raises(BadRegion, match="y must be an integer"):
        parse_pixel({"y": "0.5", "x": "1"})


def test_label_maps_have_a_key_of_colours(od_scan):
    _, _, maps = od_scan
    legend = label_legend(maps, "clusters")
    assert [e["value"] for e in legend] == list(range(int(maps.clusters.max()) + 1))
    assert all(e["colour"].startswith("#") for e in legend)
    assert [e["label"] for e in label_legend(maps, "mask")] == ["outside the mask", "in the mask"]
    assert label_legend(maps, "thickness") is None
