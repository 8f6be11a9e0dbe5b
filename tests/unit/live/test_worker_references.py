"""Which references the worker fits a scan with: none named, or none found, is a first look
(noted on the job); some found and some not is an error naming the missing one."""

from types import SimpleNamespace

import pytest

from xanes_stream.errors import XanesStreamError
from xanes_stream.live.references import ReferenceCache
from xanes_stream.live.worker import AnalysisWorker


def _no_library():
    raise XanesStreamError("no reference library in this Tiled")


def _choose(names):
    worker = SimpleNamespace(references=ReferenceCache(_no_library))
    job = SimpleNamespace(references=names, notes=["from 0MQ"], scan_id=7, uid="abcdef0123")
    return AnalysisWorker._references(worker, job), job.notes


def test_none_named_is_a_first_look():
    found, notes = _choose([])
    assert found == []
    assert notes[0] == "from 0MQ" and "no references named" in notes[1]


def test_none_found_is_a_first_look():
    found, notes = _choose(["NoSuchPhase"])
    assert found == []
    assert "NoSuchPhase are neither in the Tiled library nor bundled" in notes[1]


def test_bundled_are_found_and_some_missing_is_an_error():
    found, notes = _choose(["NiO", "LiNiO2"])
    assert [r.name for r in found] == ["NiO", "LiNiO2"] and notes == ["from 0MQ"]
    with pytest.raises(XanesStreamError, match="'NoSuchPhase' is neither"):
        _choose(["NiO", "NoSuchPhase"])
