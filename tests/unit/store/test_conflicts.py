"""When a result may replace the one stored for its raw uid (no server)."""

import pytest

from xanes_stream.store.conflicts import conflict_entry, conflict_message, may_replace

DONE = {"status": "done", "result_id": "a", "scan_id": 3, "sample": "good"}


@pytest.mark.parametrize(
    ("stored", "new", "replace_done", "allowed"),
    [
        (DONE, {"result_id": "b"}, False, False),  # another run's maps or failure
        (DONE, {}, False, False),
        ({"status": "done"}, {"result_id": None}, False, False),  # no ids: not the same
        (DONE, {"result_id": "a"}, False, True),  # the same analysis written again
        (DONE, {"result_id": "b"}, True, True),  # an explicit replay
        ({"status": "failed", "result_id": "x"}, {"result_id": "b"}, False, True),
        ({}, {}, False, True),
    ],
)
def test_may_replace(stored, new, replace_done, allowed):
    assert may_replace(stored, new, replace_done=replace_done) is allowed


def test_a_conflict_note_keeps_little_of_what_a_document_said():
    entry = conflict_entry("failure", {"sample": "x" * 10_000, "reason": "abort", "other": 1})
    assert entry["refused"] == "failure" and entry["reason"] == "abort"
    assert len(entry["sample"]) == 200 and "other" not in entry
    message = conflict_message("0123456789", "maps", DONE)
    assert message.startswith("raw run 01234567 already has maps (scan 3, sample 'good'), kept")
