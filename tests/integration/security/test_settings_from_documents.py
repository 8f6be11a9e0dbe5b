"""Hostile start documents through the real 0MQ proxy to a real service: the analysis
settings a document carries may set analysis parameters, never a model file to load, a type
to trust or a path to open; the run is recorded as failed, in Tiled, saying which field."""

import numpy as np
import pytest
from helpers.planted_model import EXEC, planted_model

from xanes_stream.sim.run import run_simulated_experiment

pytestmark = pytest.mark.timeout(300)
ENERGIES = np.concatenate([np.arange(8250, 8330, 10.0), np.arange(8330, 8460, 6.0)])
WAIT = 90.0


@pytest.fixture(scope="module")
def live(start_pipeline):
    return start_pipeline()


def publish(live, settings: dict):
    """One small scan whose start document carries ``md["xanes"]["settings"]``, straight to
    the proxy (anyone on the beamline network can do this); its record once handled."""
    (run,) = run_simulated_experiment(
        None, None, live.proxy.in_address, n_scans=1, detector="inline", shape=(32, 32),
        energies=ENERGIES, data_dir=live.data_dir, md={"xanes": {"settings": settings}},
    )  # fmt: skip
    (record,) = live.service.wait_for([run.uid], WAIT)
    assert record is not None and record.status != "analysing", f"no result in {WAIT} s"
    return run, record


def assert_refused(live, run, record, *fields: str):
    assert record.status == "failed", (record.status, record.reason)
    for field in fields:
        assert field in record.reason, record.reason
    stored = live.client["xanes"][run.uid].metadata  # the scientist sees why, in Tiled
    assert stored["status"] == "failed" and all(f in stored["reason"] for f in fields)


def test_a_planted_model_with_a_trusted_type_runs_no_code(live, tmp_path):
    """The detector folder is writable by users: a model file planted there, named by a start
    document that also asks to trust ``builtins.exec``, ran its code on the service host."""
    marker = tmp_path / "code-ran"
    model = planted_model(live.data_dir / "model.skops", marker)
    settings = {"products": {"ml": {"enabled": True, "model_path": str(model),
                                    "trusted": [EXEC]}}}  # fmt: skip
    run, record = publish(live, settings)
    assert not marker.exists(), "a start document made the service execute code"
    assert_refused(live, run, record, "products.ml.model_path", "products.ml.trusted")


def test_a_document_cannot_make_the_service_open_a_file_outside_the_roots(live):
    """A model path outside every root was opened (its error told whether the file exists:
    a probe of the service host's files); now the run is refused before any file is read."""
    outside = "/etc/hostname"
    run, record = publish(live, {"products": {"ml": {"enabled": True, "model_path": outside}}})
    assert_refused(live, run, record, "products.ml.model_path")
    assert "skops" not in record.reason  # refused for what it is, not for what the file holds


def test_analysis_parameters_from_a_document_still_apply(live):
    """Numbers, choices, switches and reference names stay the document's to set."""
    settings = {"fit": {"method": "lstsq"}, "mask": {"n_clusters": 2},
                "products": {"library": ["Ni"], "two_energy": {"enabled": True}}}  # fmt: skip
    run, record = publish(live, settings)
    assert record.status == "done", record.reason
    maps = live.client["xanes"][run.uid]
    assert "two_energy" in maps["products"]
