"""For the FXI simulator tests: run a plan into a list, group its documents, expect frames."""

from __future__ import annotations

import numpy as np
from event_model import DocumentNames, schema_validators, unpack_datum_page

from xanes_stream.sim.fxi import FXIBeamline

ENG_LIST = [8.30, 8.34, 8.35, 8.36, 8.40]  # keV, as FXI's eng_list
SHAPE = (24, 32)
CHUNK = 3


def run_plan(RE, plan, callback=None):
    """Run ``plan``; return its uids and the documents in order (all schema-validated)."""
    docs = []
    sink = (lambda name, doc: docs.append((name, doc))) if callback is None else callback(docs)
    token = RE.subscribe(sink)
    try:
        uids = RE(plan)
    finally:
        RE.unsubscribe(token)
    if callback is not None and hasattr(sink, "flush"):
        sink.flush()
    for name, doc in docs:
        schema_validators[DocumentNames(name)].validate(doc)
    return uids, docs


def by_name(docs, name):
    return [doc for n, doc in docs if n == name]


def datums(docs):
    """Every datum, the ``datum_page`` ones unpacked, by datum id."""
    out = {d["datum_id"]: d for d in by_name(docs, "datum")}
    for page in by_name(docs, "datum_page"):
        out.update({d["datum_id"]: d for d in unpack_datum_page(page)})
    return out


def camera_events(docs, streams=("dark", "primary", "flat")):
    """(stream, event) of the streams that read the camera, in the order taken."""
    names = {d["uid"]: d["name"] for d in by_name(docs, "descriptor")}
    return [
        (names[e["descriptor"]], e)
        for e in by_name(docs, "event")
        if names[e["descriptor"]] in streams
    ]


def expected_frames(bl: FXIBeamline, scan: int = 0) -> list[np.ndarray]:
    """What each exposure of the run recorded (noise-free), as the camera's dtype."""
    truth = bl.truth(scan)
    out = []
    for x in truth.exposures:
        mean = bl.sim.mean_frame(x.kind, x.energy, truth.progress, x.drift, x.intensity)
        if bl.settings.dtype == "uint16":
            mean = np.clip(np.rint(mean), 0, 65535).astype(np.uint16)
        out.append(np.repeat(mean.astype(bl.settings.dtype)[None], x.n_frames, axis=0))
    return out


def stream_order(n_energies: int) -> list[str]:
    """FXI's order of camera events: one dark, then primary and flat at every energy."""
    return ["dark"] + ["primary", "flat"] * n_energies
