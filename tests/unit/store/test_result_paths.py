"""Results on disk stay under their folder whatever the uid says: the spool's entries and the
maps files registered with Tiled (``--results-dir``); the resolved path is checked too."""

import pytest

from tests.unit.store.test_spool import _maps
from xanes_stream.documents.identifiers import UnsafeIdentifier, check_name, check_uid, inside
from xanes_stream.store.spool import Spool
from xanes_stream.store.tiled_store import TiledResultStore

HOSTILE = ["../escaped", "/tmp/escaped", "a/b", "..", "it's", "x\x00y", "a.b", " lead", ""]


class _Root:
    """Stands in for the Tiled root: registering a file succeeds."""

    def new(self, *args, **kwargs):
        return type("Node", (), {"uri": "http://tiled/x"})()


@pytest.mark.parametrize("uid", HOSTILE)
def test_the_spool_refuses_a_uid_that_is_a_path(tmp_path, uid):
    spool = Spool(tmp_path / "state" / "spool")
    with pytest.raises(UnsafeIdentifier, match="is not a run uid"):
        spool.write_failure(uid, "why", {})
    with pytest.raises(UnsafeIdentifier):
        spool.write_maps(uid, _maps(1), {})
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["spool", "state"]


@pytest.mark.parametrize("uid", HOSTILE)
def test_maps_files_never_leave_the_results_dir(tmp_path, uid):
    results = tmp_path / "results"
    store = TiledResultStore(client=None, results_dir=results)
    store._root = _Root()
    with pytest.raises(UnsafeIdentifier):
        store.write_maps(uid if uid else str(tmp_path / "escaped"), _maps(1), {})
    assert not (tmp_path / "escaped").exists() and list(tmp_path.iterdir()) == []


def test_a_link_in_the_results_dir_is_not_followed_out(tmp_path):
    results, elsewhere = tmp_path / "results", tmp_path / "elsewhere"
    results.mkdir()
    elsewhere.mkdir()
    uid = "4d7c3a52-9a7e-4a5e-b1f4-0c1d2e3f4a5b"
    (results / uid).symlink_to(elsewhere)  # planted before the run's maps are written
    store = TiledResultStore(client=None, results_dir=results)
    store._root = _Root()
    with pytest.raises(UnsafeIdentifier, match="outside"):
        store.write_maps(uid, _maps(1), {})
    assert list(elsewhere.iterdir()) == []


def test_a_good_uid_is_written_inside(tmp_path):
    store = TiledResultStore(client=None, results_dir=tmp_path)
    store._root = _Root()
    uid = "4d7c3a52-9a7e-4a5e-b1f4-0c1d2e3f4a5b"
    store.write_maps(uid, _maps(1), {})
    (file,) = (tmp_path / uid).glob("maps-*.h5")
    assert file.resolve().is_relative_to(tmp_path.resolve())
    assert Spool(tmp_path / "spool").uids() == []


def test_names_and_inside():
    assert check_uid("probe-1") == "probe-1" and check_name("Ni-foil_2.5V+") == "Ni-foil_2.5V+"
    for bad in ("a..b", "../a", "a/b", ".a", "a b"):
        with pytest.raises(UnsafeIdentifier):
            check_name(bad)
    with pytest.raises(UnsafeIdentifier, match="outside"):
        inside("/srv/results", "..", "etc")
