"""The service's reader of model files: confined to its model roots."""

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from xanes_stream.errors import ModelError
from xanes_stream.io.models import save_model
from xanes_stream.live.config import ServiceConfig
from xanes_stream.live.service import XanesService
from xanes_stream.profiles import load_profile


@pytest.fixture
def model_file(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    return save_model(LinearRegression().fit(np.eye(3), np.arange(3.0)), folder / "m.skops")


def test_the_service_reads_models_only_in_its_model_roots(tmp_path, model_file):
    """The profile's model_roots and ServiceConfig's (``serve --model-root``), nothing else:
    not the detector folders (allowed_roots), where users can put files."""
    profile = load_profile("sim").model_copy(update={"model_roots": [str(tmp_path / "p")]})
    config = ServiceConfig(
        state_dir=str(tmp_path / "state"),
        allowed_roots=[str(model_file.parent)],
        model_roots=[str(tmp_path / "c")],
    )
    load = XanesService(config, profile=profile, client=object()).worker.load_model
    with pytest.raises(ModelError, match=r"outside the model roots \(.*/p, .*/c\)"):
        load(str(model_file), ())
    config = config.model_copy(update={"model_roots": [str(model_file.parent)]})
    load = XanesService(config, profile=profile, client=object()).worker.load_model
    assert hasattr(load(str(model_file), ()), "predict")
