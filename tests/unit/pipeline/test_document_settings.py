"""What a start document may set in the analysis settings: analysis parameters (numbers,
choices, switches, reference names), never a path, a model file or a type to trust; a field
added later is the operator's unless its type is plain or it is marked safe."""

import enum
from pathlib import Path
from typing import Literal

import pytest
from event_model import compose_run
from pydantic import BaseModel, Field

from xanes_stream.documents.router import SafeRouter
from xanes_stream.errors import SettingsError
from xanes_stream.pipeline.section import FROM_DOCUMENTS, OPERATOR_ONLY, _Section
from xanes_stream.pipeline.settings import (
    AnalysisSettings,
    merge_document_settings,
    refused_from_documents,
)
from xanes_stream.profiles import load_profile


def _every_field(model: type[BaseModel], prefix: str = "") -> dict:
    """Every leaf field of ``model`` as a nested update setting it to None."""
    update = {}
    for name, field in model.model_fields.items():
        inner = field.annotation
        is_section = isinstance(inner, type) and issubclass(inner, BaseModel)
        update[name] = _every_field(inner) if is_section else None
    return update


def test_only_the_model_file_and_its_trusted_types_are_refused_today():
    """The allow-list as it stands; a change to it shows up here, to be looked at."""
    assert refused_from_documents(_every_field(AnalysisSettings)) == [
        "products.ml.model_path",
        "products.ml.trusted",
    ]


class Colour(enum.Enum):
    RED = "red"


class Future(_Section):
    """A section with the kinds of field someone might add later."""

    count: int = 3
    ratio: float | None = None
    window: tuple[tuple[float, float], ...] = ()
    choice: Literal["a", "b"] = "a"
    colour: Colour = Colour.RED
    switch: bool = False
    output_dir: str = "."
    calibration: Path | None = None
    options: dict = Field(default_factory=dict)
    names: list[str] = Field(default_factory=list)
    reference: str | None = Field(None, json_schema_extra=FROM_DOCUMENTS)
    threads: int = Field(1, json_schema_extra=OPERATOR_ONLY)


class Outer(_Section):
    future: Future = Future()


def test_a_new_field_is_refused_unless_plain_or_marked_safe():
    update = {"future": {name: None for name in Future.model_fields}, "unknown": 1}
    assert refused_from_documents(update, Outer) == [
        "future.output_dir",
        "future.calibration",
        "future.options",
        "future.names",
        "future.threads",
    ]


def test_refused_fields_fail_with_every_one_named():
    update = {"fit": {"method": "lstsq"}, "products": {"ml": {"model_path": "m", "trusted": []}}}
    with pytest.raises(SettingsError, match=r"products\.ml\.model_path, products\.ml\.trusted"):
        merge_document_settings(AnalysisSettings(), update)


def test_analysis_parameters_are_merged():
    update = {"fit": {"method": "lstsq"}, "products": {"library": ["Ni"], "ml": {"n_train": 200}}}
    merged = merge_document_settings(AnalysisSettings(), update)
    assert merged.fit.method == "lstsq" and merged.products.library == ["Ni"]
    assert merged.products.ml.n_train == 200


@pytest.mark.parametrize("update", [["fit"], "fit: {method: lstsq}", 3])
def test_settings_that_are_no_mapping_are_refused(update):
    with pytest.raises(SettingsError, match="must be a mapping"):
        merge_document_settings(AnalysisSettings(), update)


def _job(tmp_path, overrides):
    jobs = []
    router = SafeRouter(load_profile("sim"), [tmp_path], jobs.append)
    run = compose_run(metadata={"plan_name": "xanes_scan", "xanes": {"settings": overrides}})
    router("start", run.start_doc)
    router("stop", run.compose_stop())
    (job,) = jobs
    return job


def test_a_start_document_naming_a_model_fails_its_run_with_the_field(tmp_path):
    job = _job(tmp_path, {"products": {"ml": {"enabled": True, "model_path": "/etc/hostname"}}})
    assert job.failure.startswith("md['xanes']['settings']: products.ml.model_path cannot be set")
    assert job.settings == load_profile("sim").settings


def test_start_document_settings_that_are_no_mapping_fail_the_run(tmp_path):
    """They were ignored without a word: the scan analysed with settings it did not ask for."""
    job = _job(tmp_path, ["fit", "lstsq"])
    assert (
        job.failure == "md['xanes']['settings']: must be a mapping of analysis settings, not list"
    )
