"""FXI's xanes_scan2 with an ophyd-async camera writing a TIFF per frame (ophyd-async's own
TIFF data logic), read live by the router: real RunEngine, frames against the truth."""

import copy
import shutil

import numpy as np
import pytest
import tifffile
from bluesky import RunEngine
from helpers.fxi_runs import CHUNK, SHAPE, by_name, camera_events
from test_classic_resources import check_against_the_camera, fxi_run, recorded, route  # noqa: F401

from xanes_stream.documents.codec import DocumentError
from xanes_stream.documents.external import ExternalFrames
from xanes_stream.documents.opener import local_path
from xanes_stream.documents.tiff import TIFF_MIMETYPE, TiffSeries


@pytest.fixture(scope="module")
def RE():
    engine = RunEngine({}, context_managers=[])
    yield engine
    engine.loop.call_soon_threadsafe(engine.loop.stop)


@pytest.fixture(scope="module")
def async_tiff_run(RE, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fxi_async_tiff")
    bl, docs = fxi_run(RE, folder / "data", "async_tiff")
    return folder, bl, docs


def _resource(docs):
    (res,) = by_name(docs, "stream_resource")
    return res


def test_the_documents_are_ophyd_asyncs_tiff_ones(async_tiff_run):
    folder, bl, docs = async_tiff_run
    res = _resource(docs)
    assert res["mimetype"] == TIFF_MIMETYPE and res["data_key"] == "kinetix"
    assert (
        res["uri"] == f"file://localhost{(folder / 'data').resolve().as_posix()}/"  # ophyd-async's
    )
    assert res["parameters"]["chunk_shape"] == (1, *SHAPE)
    assert res["parameters"]["template"].endswith("_{:06d}.tiff")
    (descriptor,) = [d for d in by_name(docs, "descriptor") if d["name"] == "primary"]
    assert descriptor["data_keys"]["kinetix"]["shape"] == [CHUNK, *SHAPE]
    datums = by_name(docs, "stream_datum")
    assert [d["indices"] for d in datums] == [
        {"start": i, "stop": i + 1} for i in range(len(camera_events(docs)))
    ]
    # each index is CHUNK files, named as Tiled's TIFFConsolidator names them
    files = sorted(p.name for p in (folder / "data").iterdir())
    template = res["parameters"]["template"]
    assert files == [template.format(i) for i in range(len(datums) * CHUNK)]
    assert bl.truth(0).files == [str(folder / "data" / f) for f in files]
    first = tifffile.imread(local_path(res["uri"]) / template.format(0))
    assert first.shape == SHAPE and first.dtype == np.dtype(bl.settings.dtype)


def test_async_tiff_frames_are_each_events_files(async_tiff_run):
    folder, bl, docs = async_tiff_run
    job = route(docs, folder / "data", "kinetix", event_image="auto")
    check_against_the_camera(bl, docs, job)


def test_a_tiff_folder_out_of_the_roots_is_refused(async_tiff_run):
    folder, _, docs = async_tiff_run
    docs = copy.deepcopy(docs)
    outside = folder / "outside"
    if not outside.exists():
        shutil.copytree(folder / "data", outside)
    _resource(docs)["uri"] = outside.as_uri() + "/"
    job = route(docs, folder / "data", "kinetix", event_image="auto")
    assert job.frames is None and "outside the allowed roots" in job.failure
    res = _resource(docs)
    res["uri"] = (folder / "data").as_uri() + "/"
    res["parameters"]["template"] = "../outside/" + res["parameters"]["template"]
    job = route(docs, folder / "data", "kinetix", event_image="auto")
    assert job.frames is None and "not of the shape" in job.failure


@pytest.mark.parametrize(
    "template",
    ["{}.tiff", "name_{:06d}.tiff{!r}", "name_{0.__class__}.tiff", "a/b_{:06d}.tiff",
     "name_%06d.png", "%s%s%s_%6.6d.tiff", "name.tiff"],
)  # fmt: skip
def test_a_tiff_template_of_another_shape_is_refused(async_tiff_run, template):
    folder, _, docs = async_tiff_run
    docs = copy.deepcopy(docs)
    _resource(docs)["parameters"]["template"] = template
    job = route(docs, folder / "data", "kinetix", event_image="auto")
    assert job.frames is None and "TIFF template" in job.failure
    assert "not of the shape" in job.failure


def test_old_style_templates_name_the_files_as_tiled_does():
    assert TiffSeries.from_resource("file:///d/", {"template": "f_{:06d}.tiff"}).name_of(7) == (
        "f_000007.tiff"
    )
    old = {"template": "%s%s_%6.6d.tif", "filename": "scan"}
    assert TiffSeries.from_resource("file:///d/", old).name_of(12) == "scan_000012.tif"
    assert TiffSeries.from_resource("file:///d/", {"template": "x%d.tiff"}).name_of(3) == "x3.tiff"
    with pytest.raises(DocumentError, match="one frame each"):
        TiffSeries.from_resource("file:///d/", {"template": "f_{:d}.tiff", "chunk_shape": [4]})
    with pytest.raises(DocumentError, match="not a folder"):
        TiffSeries.from_resource("file:///d", {"template": "f_{:d}.tiff"})
    with pytest.raises(DocumentError, match="not an absolute folder"):
        TiffSeries.from_resource("file:d/", {"template": "f_{:d}.tiff"})


def test_tiff_frames_are_bounded_before_reading(async_tiff_run):
    folder, _, docs = async_tiff_run
    res, datum = _resource(docs), by_name(docs, "stream_datum")[1]
    shape = [CHUNK, *SHAPE]
    two = {**datum, "indices": {"start": 0, "stop": 2}, "seq_nums": {"start": 1, "stop": 3}}
    frames = ExternalFrames([folder / "data"], max_frames=2 * CHUNK - 1)
    frames.add_resource(res)
    with pytest.raises(DocumentError, match=f"{2 * CHUNK} TIFF files; at most {2 * CHUNK - 1}"):
        frames.read_stacked(two, shape)
    frames = ExternalFrames([folder / "data"], max_bytes=CHUNK * SHAPE[0] * SHAPE[1] - 1)
    frames.add_resource(res)
    with pytest.raises(DocumentError, match="MiB left for the scan"):
        frames.read_stacked(datum, shape)
    frames.max_bytes = None
    seq_nums, stacked, k = frames.read_stacked(datum, shape)
    assert seq_nums == [1] and k == CHUNK and stacked.shape == (1, CHUNK, *SHAPE)
    missing = {**datum, "indices": {"start": 10**3, "stop": 10**3 + 1}}
    with pytest.raises(DocumentError, match="cannot open"):
        frames.read_stacked(missing, shape)
