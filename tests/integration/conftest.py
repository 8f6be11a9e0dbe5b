"""Servers for the integration tests (a real Tiled, the 0MQ proxy, the service), and the
``integration`` mark on every test under this folder."""

import contextlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before ``-m`` selects on the marks
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)


@dataclass
class Live:
    """A running local pipeline: Tiled, the proxy, the service, and the detector's folder."""

    tiled: object
    proxy: object
    service: object
    data_dir: Path
    running: contextlib.ExitStack

    def adopt(self, server):
        """``server`` (one a test started in place of a piece) stops with the pipeline."""
        self.running.callback(server.stop)
        return server

    @cached_property
    def client(self):
        """A Tiled client with the API key (made on first use)."""
        return self.tiled.client()


@pytest.fixture(scope="module")
def start_pipeline(tmp_path_factory):
    """``start_pipeline(**options)`` starts a local pipeline (``local_pipeline``'s options) and
    returns its :class:`Live`; everything started stops when the module's tests are done."""
    from xanes_stream.devtools.launcher import local_pipeline

    with contextlib.ExitStack() as running:

        def start(**options) -> Live:
            data_dir = tmp_path_factory.mktemp("detector")
            root = tmp_path_factory.mktemp("tiled")
            tiled, proxy, service = running.enter_context(local_pipeline(root, data_dir, **options))
            return Live(tiled, proxy, service, data_dir, running)

        yield start


@pytest.fixture(scope="module")
def tiled():
    """A Tiled server of its own, stopped when the module's tests are done."""
    from xanes_stream.devtools.launcher import start_tiled

    with start_tiled(timeout=60) as server:
        yield server
