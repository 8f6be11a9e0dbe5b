"""Model files: read once, only types that are trusted turned into objects, and in the
service only inside the model roots (the operator's folders, not the detector's)."""

import numpy as np
import pytest
from helpers.planted_model import EXEC, planted_model
from sklearn.linear_model import LinearRegression

from xanes_stream.errors import ModelError
from xanes_stream.io.models import load_model, model_loader, save_model


@pytest.fixture
def model_file(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    model = LinearRegression().fit(np.eye(3), np.arange(3.0))
    return save_model(model, folder / "fractions.skops")


def test_a_model_inside_the_roots_loads(model_file):
    model = load_model(model_file, roots=[model_file.parent])
    assert hasattr(model, "predict")


def test_a_model_outside_the_roots_is_not_read(tmp_path, model_file):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(ModelError, match=r"outside the model roots \(.*elsewhere\)"):
        load_model(model_file, roots=[elsewhere])
    with pytest.raises(ModelError, match="outside the model roots"):  # not "no model file"
        load_model(tmp_path / "missing.skops", roots=[elsewhere])
    with pytest.raises(ModelError, match=r"\(none set\)"):
        model_loader([])(model_file, ())


def test_a_link_inside_the_roots_to_a_file_outside_is_refused(tmp_path, model_file):
    root = tmp_path / "root"
    root.mkdir()
    (root / "model.skops").symlink_to(model_file)
    with pytest.raises(ModelError, match="outside the model roots"):
        load_model(root / "model.skops", roots=[root])


def test_a_planted_model_runs_nothing_unless_its_type_is_trusted(tmp_path):
    marker = tmp_path / "code-ran"
    path = planted_model(tmp_path / "model.skops", marker)
    with pytest.raises(ModelError, match=f"not trusted: {EXEC}"):
        load_model(path, roots=[tmp_path])
    assert not marker.exists()
