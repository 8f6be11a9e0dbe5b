"""Hostile runs through the router, built with event-model's own composer: uids that are paths
are refused, runs in flight are bounded, a scan's memory is budgeted, and whatever breaks in a
run's handling gives that run a failed job (a record), never silence."""

import logging

import pytest

from tests.helpers.runs import SHAPE, a_run
from xanes_stream.documents.limits import Limits
from xanes_stream.documents.router import SafeRouter
from xanes_stream.profiles import load_profile

PROFILE = load_profile("sim")


def route(limits=Limits(), roots=()):  # noqa: B008
    jobs = []
    return SafeRouter(PROFILE, list(roots), jobs.append, limits=limits), jobs


def feed(router, docs):
    for name, doc in docs:
        router(name, doc)


@pytest.mark.parametrize(
    "uid", ["../../etc/x", "/tmp/abs", "a/b", "it's", 'q"', "..", ".hidden", "", "x" * 129, 42]
)
def test_a_start_whose_uid_could_be_a_path_is_refused_with_one_line(uid, caplog):
    router, jobs = route()
    docs = a_run()
    for name, doc in docs:  # every document of the run says the hostile uid
        if name == "start":
            doc["uid"] = uid
        elif "run_start" in doc:
            doc["run_start"] = uid
    with caplog.at_level(logging.WARNING):
        feed(router, docs)
    assert jobs == []  # never a key, never a file name
    refused = [r for r in caplog.records if "refused a start document" in r.getMessage()]
    assert len(refused) == 1 and "not a run uid" in refused[0].getMessage()
    assert router.rejected >= 1


def test_a_good_run_after_a_hostile_one_is_untouched():
    router, jobs = route()
    feed(router, [("start", {"uid": "../x", "time": 0.0, "plan_name": "xanes_scan"})])
    feed(router, a_run(uid="good-1"))
    (job,) = jobs
    assert job.uid == "good-1" and job.failure is None and job.frames.shape == (3, *SHAPE)


@pytest.mark.parametrize(
    ("md", "why"),
    [
        ({"references": ["../../secrets"]}, "reference '../../secrets' is not a valid name"),
        ({"references": "NiO"}, "references: Input should be a valid list"),
        ({"series": "a/b"}, "md['xanes']['series'] 'a/b' is not a valid name"),
        ({"streams": "primary"}, "md['xanes']['streams']: must be a mapping"),
    ],
)
def test_a_start_with_unusable_names_fails_its_run_with_a_reason(md, why):
    router, jobs = route()
    feed(router, a_run(md=md))
    (job,) = jobs
    assert job.failure is not None and why in job.failure and job.frames is None


def test_the_oldest_run_in_flight_is_evicted_with_a_failed_job():
    router, jobs = route(Limits(max_runs_in_flight=2))
    runs = [a_run(uid=f"run-{i}") for i in range(3)]
    for docs in runs:
        feed(router, docs[:-1])  # started, never stopped
    (evicted,) = jobs
    assert evicted.uid == "run-0" and "evicted before its stop" in evicted.failure
    assert "max_runs_in_flight" in evicted.failure
    assert evicted.frames is None and router.router._start_to_start_doc.keys() == {
        "run-1",
        "run-2",
    }
    feed(router, [runs[1][-1], runs[2][-1]])
    assert [j.uid for j in jobs[1:]] == ["run-1", "run-2"]
    assert all(j.failure is None for j in jobs[1:])
    feed(router, [runs[0][-1]])  # the evicted run's stop, late: read back from Tiled
    assert jobs[-1].uid == "run-0" and jobs[-1].incomplete is not None


def test_starts_without_stops_do_not_pile_up():
    router, jobs = route(Limits(max_runs_in_flight=4))
    for i in range(200):
        feed(router, a_run(uid=f"r{i}", n=2, stop=False)[:1])
    assert len(router._in_flight) == 4 and len(router.router._start_to_start_doc) == 4
    assert len(jobs) == 196 and all("evicted" in j.failure for j in jobs)


def test_a_start_announcing_too_many_energies_fails_at_once_not_at_the_stop():
    router, jobs = route(Limits(max_frames=1000))
    feed(router, a_run(n=100_000))
    (job,) = jobs
    assert "announces 100000 energies, more than the 1000" in job.failure


def test_a_descriptor_announcing_more_than_the_budget_fails_the_run():
    router, jobs = route(Limits(max_scan_bytes=20 * 2**20))
    feed(router, a_run(n=100, shape=(512, 512)))  # 100 x 1 MiB
    (job,) = jobs
    assert "100 frames of (512, 512) would take 100 MiB, more than the 20 MiB" in job.failure


def test_frames_beyond_the_budget_fail_the_run_when_unannounced():
    router, jobs = route(Limits(max_scan_bytes=3 * 4 * 64))  # three 8 x 8 float32 frames
    docs = a_run(n=5)
    docs[0][1].pop("num_points")
    feed(router, docs)
    (job,) = jobs
    assert "allowed for one scan" in job.failure and job.frames is None


@pytest.mark.parametrize("error", [MemoryError(), RuntimeError("boom"), IndexError("x")])
def test_any_exception_in_a_run_gives_it_a_failed_job(error, monkeypatch):
    from xanes_stream.documents import accumulator

    def broken(self, *args, **kwargs):
        raise error

    monkeypatch.setattr(accumulator.ScanAccumulator, "add_frame", broken)
    router, jobs = route()
    feed(router, a_run())
    (job,) = jobs
    assert job.failure and ("out of memory" in job.failure or type(error).__name__ in job.failure)


def test_an_exception_at_the_stop_still_hands_the_run_on(monkeypatch):
    from xanes_stream.documents import accumulator

    def broken(self):
        raise MemoryError

    monkeypatch.setattr(accumulator.ScanAccumulator, "finish", broken)
    router, jobs = route()
    feed(router, a_run())
    (job,) = jobs
    assert "out of memory on a stop document" in job.failure
