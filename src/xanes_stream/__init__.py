"""xanes-stream: live 2D-XANES chemical maps from Bluesky documents, written to Tiled."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("xanes-stream")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

from .analysis import AnalysisError, analyze
from .maps import Maps
from .settings import AnalysisSettings
from .spectra.references import Reference, read_reference

__all__ = ["AnalysisError", "AnalysisSettings", "Maps", "Reference", "analyze", "read_reference"]
