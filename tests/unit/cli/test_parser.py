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
