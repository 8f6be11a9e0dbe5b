"""A legacy archive as NSLS-II serves older raw data: databroker 2.0's ``MongoAdapter`` (on
mongomock, as databroker's own tests do) with area-detector-handlers' handlers registered,
served read-only by a real Tiled server (uvicorn on 127.0.0.1, in a thread of this process,
where the mongomock database lives)."""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class LegacyArchive:
    """The running archive: ``uri``, ``insert(name, doc)`` (a RunEngine callback writing the
    normalized collections as suitcase-mongo-normalized does), ``client()`` (read-only)."""

    uri: str
    insert: object
    api_key: str

    def client(self):
        """An anonymous client: read scopes only, as a facility's archive gives."""
        from tiled.client import from_uri

        return from_uri(self.uri, api_key=None)


@contextlib.contextmanager
def serve_legacy_archive(*, timeout: float = 30.0) -> Iterator[LegacyArchive]:
    """Serve an empty ``MongoAdapter`` on a free port of 127.0.0.1 (waiting at most ``timeout``
    s for it to answer); stopped, its port freed, on leaving the block."""
    import uvicorn
    from area_detector_handlers.handlers import (
        AreaDetectorHDF5Handler,
        AreaDetectorHDF5TimestampHandler,
        AreaDetectorTiffHandler,
    )
    from databroker.mongo_normalized import MongoAdapter
    from tiled.config import Authentication
    from tiled.server.app import build_app

    from xanes_stream.devtools.launcher import free_port

    adapter = MongoAdapter.from_mongomock(
        handler_registry={
            "AD_HDF5": AreaDetectorHDF5Handler,
            "AD_HDF5_TS": AreaDetectorHDF5TimestampHandler,
            "AD_TIFF": AreaDetectorTiffHandler,
        }
    )
    api_key = secrets.token_hex(16)  # writes need it; nothing here uses it over HTTP
    app = build_app(
        adapter,
        authentication=Authentication(single_user_api_key=api_key, allow_anonymous_access=True),
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="legacy-archive", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the legacy archive did not start on port {port}")
            time.sleep(0.05)
        yield LegacyArchive(f"http://127.0.0.1:{port}", adapter.get_serializer(), api_key)
    finally:
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(5.0)
