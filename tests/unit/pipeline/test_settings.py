"""Analysis settings from YAML files: values read as written, a bad field named in the error."""

import pytest

from xanes_stream.errors import SettingsError
from xanes_stream.pipeline.settings import AnalysisSettings, load_settings

YAML = """\
fit:
  method: lstsq
  energy_range: [8300, 8420]
registration:
  reference: first
  upsample_factor: 50
mask:
  n_clusters: 5
products:
  decomposition:
    enabled: true
block_pixels: 1000
"""


def test_yaml_file_is_read_into_the_settings(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text(YAML)
    settings = load_settings(path)
    assert settings.fit.method == "lstsq" and settings.fit.energy_range == (8300.0, 8420.0)
    assert settings.registration.reference == "first"
    assert settings.registration.upsample_factor == 50
    assert settings.mask.n_clusters == 5
    assert settings.products.enabled() == ["decomposition"]
    assert settings.block_pixels == 768  # rounded down to a multiple of 256
    # what was not written keeps its default
    defaults = AnalysisSettings()
    assert settings.fit.sum_to_one == defaults.fit.sum_to_one == "normalize"
    assert settings.normalization == defaults.normalization
    assert load_settings(str(path)) == settings  # a str path too


def test_empty_file_and_none_are_the_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_settings(path) == load_settings(None) == AnalysisSettings()


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("fit:\n  methd: nnls\n", "fit.methd: Extra inputs are not permitted"),
        ("fit:\n  method: svd\n", "fit.method: Input should be 'lstsq', 'nnls' or 'admm'"),
        ("registration:\n  upsample_factor: 0\n", "registration.upsample_factor:"),
        ("products:\n  ml:\n    enabled: maybe\n", "products.ml.enabled:"),
        ("mask:\n  n_clusters: 3\nfitt: {}\n", "fitt: Extra inputs"),
    ],
)
def test_a_bad_field_is_named_in_the_error(tmp_path, text, named):
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    with pytest.raises(SettingsError, match="invalid settings") as info:
        load_settings(path)
    assert named in str(info.value)


def test_unreadable_files_are_settings_errors(tmp_path):
    with pytest.raises(SettingsError, match="cannot read settings file"):
        load_settings(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("fit: [unclosed\n")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- fit\n- mask\n")
    with pytest.raises(SettingsError, match="must hold a mapping"):
        load_settings(listed)
