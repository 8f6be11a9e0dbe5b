"""The live web page of the service: scans, maps, spectra and series, updated as they happen."""

from .app import make_app
from .server import WebServer

__all__ = ["WebServer", "make_app"]
