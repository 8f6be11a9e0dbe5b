"""Hostile input, fuzzed: whatever documents arrive, the router never raises, every run gets at
most one job, and a job's problem is a stated reason (or an analysis error with a message), never
a traceback. A good scan routed after the noise is still analysed correctly."""

import copy

import numpy as np
import pytest
from bluesky import RunEngine
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from xanes_stream import analyze
from xanes_stream.documents.router import DOCUMENT_NAMES, SafeRouter
from xanes_stream.errors import XanesStreamError
from xanes_stream.io.references import bundled_reference
from xanes_stream.profiles import load_profile
from xanes_stream.sim.beamline import make_beamline

PROFILE = load_profile("sim")
ENERGIES = np.linspace(8300, 8420, 16)
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """The documents of one real scan (inline 32 x 32 frames) and its truth."""
    beamline = make_beamline(
        detector="inline", data_dir=tmp_path_factory.mktemp("d"), shape=(32, 32), seed=2
    )
    docs = []
    engine = RunEngine({})
    engine.subscribe(lambda name, doc: docs.append((name, copy.deepcopy(doc))))
    engine(beamline.xanes_scan(ENERGIES))
    return docs, beamline.truth(0)


def route(documents):
    jobs = []
    router = SafeRouter(PROFILE, [], jobs.append)
    for name, doc in documents:
        router(name, doc)  # must never raise
    return router, jobs


def check_job(job):
    """A job either says what is wrong, or analyses, or fails analysis with a clear error."""
    if job.failure or job.incomplete:
        assert isinstance(job.failure or job.incomplete, str)
        return "reason"
    refs = [bundled_reference(n) for n in job.references]
    try:
        analyze(
            job.frames,
            job.energies,
            refs,
            mode="absorbance",
            settings={"registration": {"method": "none"}},
            shifts=job.shifts,
        )
    except XanesStreamError as exc:
        assert str(exc)
        return "analysis error"
    return "maps"


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8))
json_like = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
keys = st.sampled_from(
    [
        "uid",
        "run_start",
        "descriptor",
        "seq_num",
        "data",
        "time",
        "name",
        "num_events",
        "exit_status",
        "plan_name",
        "xanes",
        "stream_resource",
        "indices",
        "seq_nums",
        "timestamps",
    ]
)
random_document = st.tuples(
    st.sampled_from(sorted(DOCUMENT_NAMES)) | st.text(max_size=10),
    st.dictionaries(keys, json_like, max_size=6) | json_like,
)


@FUZZ
@given(noise=st.lists(random_document, max_size=30))
def test_random_documents_never_break_the_router(recorded, noise):
    docs, _truth = recorded
    _router, jobs = route([*noise, *docs])
    for job in jobs:
        check_job(job)
    good = [job for job in jobs if job.uid == docs[0][1]["uid"]]
    assert len(good) == 1 and good[0].failure is None and good[0].incomplete is None
    assert good[0].frames.shape == (len(ENERGIES), 32, 32)


def _mutate(docs, data, draw):
    md = docs[0][1].get("xanes", {})
    image_key = md.get("image_key", PROFILE.image_key)
    energy_key = md.get("energy_key", PROFILE.energy_key)
    docs = copy.deepcopy(docs)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(docs) - 1))
        name, doc = docs[i]
        op = draw(
            st.sampled_from(
                [
                    "drop",
                    "duplicate",
                    "swap",
                    "drop_key",
                    "retype",
                    "bad_frame",
                    "bad_energy",
                    "bad_flat",
                    "huge",
                ]
            )
        )
        if op == "drop":
            del docs[i]
        elif op == "duplicate":
            docs.insert(i, (name, copy.deepcopy(doc)))
        elif op == "swap":
            j = draw(st.integers(0, len(docs) - 1))
            docs[i], docs[j] = docs[j], docs[i]
        elif op == "drop_key" and doc:
            doc.pop(draw(st.sampled_from(sorted(doc))), None)
        elif op == "retype" and doc:
            doc[draw(st.sampled_from(sorted(doc)))] = draw(json_like)
        elif op in ("bad_frame", "bad_energy", "bad_flat", "huge") and name == "event":
            if not isinstance(doc.get("data"), dict) or image_key not in doc["data"]:
                continue
            image = np.asarray(doc["data"][image_key])
            if image.ndim < 2:  # already retyped by an earlier mutation
                continue
            doc["data"][image_key] = {
                "bad_frame": draw(
                    st.sampled_from([image[:5], image.astype(np.complex64), "text", image.ravel()])
                ),
                "bad_flat": draw(
                    st.sampled_from([np.zeros_like(image), np.full_like(image, np.nan), -image])
                ),
                "huge": np.full_like(image, np.inf),
                "bad_energy": image,
            }[op]
            if op == "bad_energy":
                doc["data"][energy_key] = draw(st.sampled_from([float("nan"), -1.0, 8300.0, 1e9]))
    return docs


@FUZZ
@given(data=st.data())
def test_mutated_scans_fail_with_reasons(recorded, data):
    docs, _truth = recorded
    mutated = _mutate(docs, data, data.draw)
    _router, jobs = route(mutated)
    assert len({job.uid for job in jobs}) == len(jobs), "a run got two jobs"
    for job in jobs:
        event(check_job(job))  # shown by --hypothesis-show-statistics


def test_pickle_is_refused_by_default():
    import pickle

    from xanes_stream.documents import codec

    payload = pickle.dumps(("start", {"uid": "x"}))
    with pytest.raises(codec.DocumentError):
        codec.unpackb(payload)
