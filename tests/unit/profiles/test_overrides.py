"""A start document's md["xanes"] overrides of the profile: keys, choices and names of the
right kind, else the run is recorded as failed naming the key (it was dropped without a
record, or analysed with values it did not mean)."""

import pytest
from event_model import compose_run

from xanes_stream.documents.router import SafeRouter
from xanes_stream.errors import SettingsError
from xanes_stream.profiles import load_profile
from xanes_stream.profiles.overrides import run_overrides

SIM = load_profile("sim")


def _job(tmp_path, xanes):
    jobs = []
    router = SafeRouter(SIM, [tmp_path], jobs.append)
    run = compose_run(metadata={"plan_name": "xanes_scan", "xanes": xanes})
    router("start", run.start_doc)
    router("stop", run.compose_stop())
    (job,) = jobs  # a record, whatever the document held
    return job


@pytest.mark.parametrize(
    ("xanes", "named"),
    [
        ({"streams": "primary"}, "md['xanes']['streams']: must be a mapping, not str"),
        ({"streams": {"primary": ["x"]}}, "md['xanes']: streams.primary"),
        ({"references": [{"name": "NiO"}]}, "md['xanes']: references.0"),
        ({"references": "NiO"}, "md['xanes']: references"),  # was ['N', 'i', 'O']
        ({"energy_units": "kev"}, "md['xanes']: energy_units"),  # was read as eV
        ({"mode": "magic"}, "md['xanes']: mode"),
        ({"image_key": ["a"]}, "md['xanes']: image_key"),
        ({"energies": 5}, "md['xanes']: energies"),
        ({"settings": {"products": {"ml": {"trusted": ["builtins.exec"]}}}},
         "md['xanes']['settings']: products.ml.trusted cannot be set"),
    ],
)  # fmt: skip
def test_an_override_of_the_wrong_kind_fails_the_run_naming_it(tmp_path, xanes, named):
    job = _job(tmp_path, xanes)
    assert job.failure is not None and job.failure.startswith(named), job.failure
    assert job.settings == SIM.settings and job.references == SIM.references


def test_overrides_of_the_right_kind_apply(tmp_path):
    xanes = {"image_key": "cam", "energy_units": "keV", "mode": "absorbance",
             "streams": {"flat": "white"}, "references": ["Ni"], "energies": [8.3, 8.4],
             "settings": {"fit": {"method": "lstsq"}}, "sample": "LNO", "series": "s1"}  # fmt: skip
    run = run_overrides(SIM, xanes)
    assert (run.image_key, run.energy_key, run.energy_units) == ("cam", SIM.energy_key, "keV")
    assert run.streams.model_dump() == {"primary": "primary", "dark": "dark", "flat": "white"}
    assert run.references == ["Ni"] and run.mode == "absorbance"
    assert run.settings.fit.method == "lstsq" and run.energies == [8.3, 8.4]
    job = _job(tmp_path, xanes)
    assert job.failure is None or "md['xanes']" not in job.failure
    assert job.references == ["Ni"] and job.settings.fit.method == "lstsq"


def test_no_overrides_keep_the_profile():
    run = run_overrides(SIM, {"references": []})
    assert run.references == SIM.references and run.settings == SIM.settings
    with pytest.raises(SettingsError, match=r"md\['xanes'\]: i0_key"):
        run_overrides(SIM, {"i0_key": 3})
