"""When a result may replace the one already stored for a raw uid, and how a refusal is noted.

Anyone on the beamline network can publish a run that claims an analysed scan's uid, so a live
result never replaces good maps (``status: done``) of another run: the maps stay, and the
refused result is noted in their node's metadata under ``conflicts`` (the newest
:data:`CONFLICTS_KEPT`). A failure record may be replaced by anything; a result carrying the
same ``result_id`` as the stored one (the same analysis written again, e.g. a spooled result
whose first write reached Tiled before the service died) replaces it; an explicit replay
replaces whatever is there.
"""

from __future__ import annotations

import datetime

from xanes_stream.pipeline.results import jsonable

__all__ = ["CONFLICTS_KEPT", "conflict_entry", "conflict_message", "may_replace"]

#: Refused results noted in a node's metadata (the newest); older notes are dropped.
CONFLICTS_KEPT = 20
_TEXT = 200  # characters kept of each string a document gave


def may_replace(stored: dict, new: dict, *, replace_done: bool) -> bool:
    """Whether a result with metadata ``new`` may replace the node whose metadata is
    ``stored``."""
    if replace_done or stored.get("status") != "done":
        return True
    result_id = stored.get("result_id")
    return result_id is not None and result_id == new.get("result_id")


def _short(value):
    return value[:_TEXT] if isinstance(value, str) else value


def conflict_entry(refused: str, new: dict) -> dict:
    """The note of a refused result (``refused``: ``maps`` or ``failure``) of metadata
    ``new``: when, and what the other run said it was."""
    entry = {
        "refused": refused,
        "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "why": "this raw uid already has maps from another run; they were kept",
    }
    for key in ("result_id", "scan_id", "sample", "plan_name", "raw_time", "reason"):
        if new.get(key) is not None:
            entry[key] = _short(new[key])
    return jsonable(entry, finite=True)


def conflict_message(uid: str, refused: str, stored: dict) -> str:
    """What a person reads of a refused result for raw uid ``uid``."""
    what = "maps" if refused == "maps" else "failure record"
    return (
        f"raw run {uid[:8]} already has maps (scan {stored.get('scan_id')}, sample "
        f"{_short(stored.get('sample'))!r}), kept: a later run with the same uid did not "
        f"replace them (its {what} is noted under 'conflicts' in their metadata)"
    )
