"""Which Host headers the live page answers to (DNS rebinding), without a server."""

import pytest

from xanes_stream.live.web.guard import HostNames


@pytest.fixture
def local():
    hosts = HostNames("127.0.0.1")
    hosts.port = 8123
    return hosts


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8123", "localhost:8123", "LocalHost:8123", "[::1]:8123"]
)
def test_the_local_names_with_the_port_are_answered(local, host):
    assert local.allows(host)


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:8123",
        "127.0.0.1",  # the port is part of the name a browser sends
        "127.0.0.1:8124",
        "localhost:8123.evil.example",
        "127.0.0.1:80",
        "[::1]",
        "[::1]x",
        "::1:8123",
        "localhost:",
        "localhost:-1",
        "",
        " ",
    ],
)
def test_any_other_host_is_refused(local, host):
    assert not local.allows(host)


def test_configured_names_replace_the_defaults():
    hosts = HostNames("0.0.0.0", ["txm-page.beamline.example", "[fe80::1]"])
    hosts.port = 80
    assert hosts.allows("txm-page.beamline.example")  # port 80 may be left out
    assert hosts.allows("txm-page.beamline.example:80")
    assert hosts.allows("[fe80::1]:80")
    assert not hosts.allows("localhost:80")


def test_a_wildcard_bind_answers_to_this_machine_by_name():
    import socket

    hosts = HostNames("0.0.0.0")
    hosts.port = 9000
    assert hosts.allows(f"{socket.gethostname()}:9000")
    assert not hosts.allows("0.0.0.0:9000")
