"""The local Tiled server's configuration: the shipped template is what the launcher builds."""

from helpers import REPO
from tiled.utils import expand_environment_variables, parse

from xanes_stream.devtools.launcher import tiled_config

TEMPLATE = REPO / "services" / "tiled" / "config.yml"


def test_config_template_matches_tiled_config(monkeypatch, tmp_path):
    monkeypatch.setenv("XANES_TILED_API_KEY", "abc123")
    monkeypatch.setenv("XANES_TILED_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("XANES_DETECTOR_DIR", str(tmp_path / "det"))
    from_template = parse(TEMPLATE)  # what `tiled serve config` reads (variables expanded)
    built = expand_environment_variables(tiled_config(tmp_path / "root", [tmp_path / "det"]))
    assert from_template == built
    assert from_template["authentication"]["single_user_api_key"] == "abc123"
    assert from_template["catalog"]["uri"] == f"sqlite:///{tmp_path}/root/catalog.db"


def test_postgres_template_matches_tiled_config(monkeypatch, tmp_path):
    env = {
        "XANES_TILED_API_KEY": "abc123",
        "XANES_TILED_ROOT": str(tmp_path / "root"),
        "XANES_DETECTOR_DIR": str(tmp_path / "det"),
        "XANES_POSTGRES_USER": "xanes",
        "XANES_POSTGRES_PASSWORD": "pw1",
        "XANES_POSTGRES_HOST": "db.example:5432",
        "XANES_REDIS_HOST": "cache.example:6379",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from_template = parse(REPO / "services" / "tiled" / "config-postgres.yml")
    built = tiled_config(
        tmp_path / "root",
        [tmp_path / "det"],
        catalog_uri="postgresql+asyncpg://xanes:pw1@db.example:5432/tiled_catalog",
        tabular_uri="postgresql://xanes:pw1@db.example:5432/tiled_tabular",
        streaming_cache="redis://cache.example:6379",
    )
    assert from_template == expand_environment_variables(built)
