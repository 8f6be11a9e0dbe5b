"""Identifiers are never paths, through the real ``serve``: a start whose uid is a path, a
quote or ``..`` is refused with one log line, never a Tiled key nor a file anywhere; a good run
after it still gets its record."""

import pytest

from tests.helpers.runs import a_run

pytestmark = pytest.mark.timeout(300)

HOSTILE = ["../../../escaped-rel", "ESCAPED_ABS", "a/b", "it's\"", ".."]


@pytest.fixture(scope="module")
def served(serve):
    return serve()


def _files(folder):
    return sorted(str(p) for p in folder.rglob("*"))


def test_a_start_whose_uid_is_a_path_is_refused_and_writes_nothing(served, tmp_path):
    hostile = [uid if uid != "ESCAPED_ABS" else str(tmp_path / "escaped-abs") for uid in HOSTILE]
    results = served.tiled.results_dir
    top = results.parent.parent  # the test's folder: Tiled's, the detector's, the state
    before = _files(top)
    for uid in hostile:
        docs = a_run(n=3)
        for _name, doc in docs:
            if doc.get("uid") == docs[0][1]["uid"]:
                doc["uid"] = uid
            if "run_start" in doc:
                doc["run_start"] = uid
        served.publish(docs)
    good = a_run(n=3)
    served.publish(good)
    assert served.record(good[0][1]["uid"])["status"] in ("done", "failed")
    log = served.log()
    refused = [line for line in log.splitlines() if "refused a start document" in line]
    assert len(refused) == len(hostile), refused  # one line each
    for uid, line in zip(hostile, refused, strict=True):
        assert f"its uid {uid[:20]}" in line and "is not a run uid" in line, line
    client = served.tiled.client()["xanes"]
    assert set(client) == {good[0][1]["uid"]}
    assert not (tmp_path / "escaped-abs").exists()
    new = sorted(set(_files(top)) - set(before))
    assert all("escaped" not in path for path in new), new
    assert all(
        path.startswith((str(results), str(served.state_dir), str(served.tiled.root_dir)))
        for path in new
    ), new
