"""One settings merge: a start document's md["xanes"]["settings"] onto the profile's."""

import pytest
from event_model import compose_run

from xanes_stream.documents.router import SafeRouter
from xanes_stream.errors import SettingsError
from xanes_stream.pipeline.settings import AnalysisSettings, merge_settings
from xanes_stream.profiles import load_profile


def test_merge_settings_merges_sections_and_leaves_the_base_alone():
    base = AnalysisSettings.model_validate({"fit": {"method": "admm", "admm_iterations": 50}})
    merged = merge_settings(base, {"fit": {"method": "lstsq"}, "block_pixels": 1024})
    assert merged.fit.method == "lstsq" and merged.fit.admm_iterations == 50
    assert merged.block_pixels == 1024 and merged.registration == base.registration
    assert base.fit.method == "admm" and base.block_pixels == AnalysisSettings().block_pixels
    products = merge_settings(base, {"products": {"clustering": {"enabled": True}}}).products
    assert products.enabled() == ["clustering"]


def test_merge_settings_error_names_the_field():
    with pytest.raises(SettingsError, match=r"fit\.method"):
        merge_settings(AnalysisSettings(), {"fit": {"method": "magic"}})
    with pytest.raises(SettingsError, match="mask"):
        merge_settings(AnalysisSettings(), {"mask": 3})


def _job(tmp_path, overrides):
    jobs = []
    router = SafeRouter(load_profile("sim"), [tmp_path], jobs.append)
    run = compose_run(metadata={"plan_name": "xanes_scan", "xanes": {"settings": overrides}})
    router("start", run.start_doc)
    router("stop", run.compose_stop())
    (job,) = jobs
    return job


def test_start_document_settings_override_the_profile(tmp_path):
    profile = load_profile("sim").settings
    job = _job(tmp_path, {"fit": {"method": "lstsq"}, "mask": {"n_clusters": 0}})
    assert job.settings.fit.method == "lstsq" and job.settings.mask.n_clusters == 0
    assert job.settings.fit.sum_to_one == profile.fit.sum_to_one
    assert job.settings.registration == profile.registration
    assert "settings" not in (job.failure or "")


def test_bad_start_document_settings_fail_the_run_with_the_field(tmp_path):
    job = _job(tmp_path, {"fit": {"method": "magic"}})
    assert job.failure.startswith("md['xanes']['settings']: invalid settings: fit.method")
    assert job.settings == load_profile("sim").settings
