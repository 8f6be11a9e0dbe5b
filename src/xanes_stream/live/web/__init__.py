"""The live web page of the service: scans, maps, spectra and series, updated as they happen."""

from xanes_stream.live.web.app import make_app
from xanes_stream.live.web.server import WebServer

__all__ = ["WebServer", "make_app"]
