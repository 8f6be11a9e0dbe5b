"""The command line's parser: the live page's flags (the CLI itself runs in
tests/integration/test_cli.py)."""

from xanes_stream.cli import build_parser


def test_command_line_flags_of_the_page():
    parser = build_parser()
    assert parser.parse_args(["serve"]).web_port is None
    assert parser.parse_args(["serve", "--web-port", "0"]).web_port == 0
    demo = parser.parse_args(["demo"])
    assert demo.web_port == 0 and demo.no_web is False
    assert parser.parse_args(["demo", "--no-web"]).no_web is True


def test_serve_source_option(monkeypatch):
    import pytest

    from xanes_stream.cli.serve import service_config
    from xanes_stream.errors import XanesStreamError

    parser = build_parser()
    monkeypatch.delenv("XANES_SOURCE", raising=False)
    monkeypatch.delenv("XANES_SOURCE_URI", raising=False)
    args = parser.parse_args(["serve"])
    assert (args.source, args.source_uri) == (None, None)
    assert service_config(args).source == "zmq"  # the default: 0MQ, as before
    args = parser.parse_args(
        ["serve", "--source", "tiled", "--source-uri", "http://h:8000/api/v1/metadata/raw"]
    )
    config = service_config(args)
    assert config.source == "tiled"
    assert config.source_uri == "http://h:8000/api/v1/metadata/raw"
    monkeypatch.setenv("XANES_SOURCE", "tiled")  # the environment, when the flag is left out
    assert service_config(parser.parse_args(["serve"])).source == "tiled"
    assert service_config(parser.parse_args(["serve", "--source", "zmq"])).source == "zmq"
    monkeypatch.setenv("XANES_SOURCE", "kafka")
    with pytest.raises(XanesStreamError, match="source"):
        service_config(parser.parse_args(["serve"]))
    with pytest.raises(SystemExit):  # argparse says which choices there are
        parser.parse_args(["serve", "--source", "kafka"])


def test_replay_source_and_force():
    parser = build_parser()
    args = parser.parse_args(["replay", "--scan-ids", "1-20"])
    assert (args.source, args.source_api_key, args.force) == (None, None, False)
    args = parser.parse_args(
        ["replay", "--source", "http://h:8000/api/v1/metadata/fxi/raw", "--force", "u1"]
    )
    assert args.source.endswith("/fxi/raw") and args.force and args.uids == ["u1"]


def test_dask_option(monkeypatch):
    """``--dask ADDRESS`` on serve and replay; left out: XANES_DASK, else in-process (None)."""
    from xanes_stream.cli.serve import service_config

    parser = build_parser()
    monkeypatch.delenv("XANES_DASK", raising=False)
    assert parser.parse_args(["serve"]).dask is None
    assert service_config(parser.parse_args(["serve"])).dask is None  # in-process, as before
    args = parser.parse_args(["serve", "--dask", "tcp://10.0.0.5:8786"])
    assert service_config(args).dask == "tcp://10.0.0.5:8786"
    monkeypatch.setenv("XANES_DASK", "tcp://sched:8786")
    assert service_config(parser.parse_args(["serve"])).dask == "tcp://sched:8786"
    assert service_config(args).dask == "tcp://10.0.0.5:8786"  # the flag wins
    assert parser.parse_args(["replay", "--dask", "127.0.0.1:8786", "u1"]).dask == (
        "127.0.0.1:8786"
    )
    assert parser.parse_args(["replay", "u1"]).dask is None


def test_reference_units_reach_the_reference_files(tmp_path):
    import numpy as np

    from xanes_stream.cli.common import parse_reference

    path = tmp_path / "s_l.txt"  # 160-190: eV or keV cannot be told from the values
    energy = np.linspace(160.0, 190.0, 31)
    np.savetxt(path, np.column_stack([energy, np.clip(energy - 165.0, 0, 1)]))
    args = build_parser().parse_args(
        ["analyze", "stack.h5", "-o", "m.h5", "-r", f"S={path}", "--reference-units", "eV"]
    )
    reference = parse_reference(args.reference[0], args.reference_units)
    assert reference.energy[0] == 160.0
    add = build_parser().parse_args(["references", "add", str(path), "--units", "keV"])
    assert add.units == "keV"
