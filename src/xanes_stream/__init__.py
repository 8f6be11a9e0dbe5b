"""xanes-stream: live 2D-XANES chemical maps from Bluesky documents, written to Tiled.

The package's top level exposes the analysis of one stack lazily, so that importing a part
(``xanes_stream.spectra``, say) loads nothing else.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("xanes-stream")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

#: public name -> the module that defines it
_LAZY = {
    "AnalysisError": "xanes_stream.errors",
    "AnalysisSettings": "xanes_stream.pipeline.settings",
    "Maps": "xanes_stream.pipeline.results",
    "Reference": "xanes_stream.spectra.references",
    "analyze": "xanes_stream.pipeline.analyze",
    "read_reference": "xanes_stream.io.references",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'xanes_stream' has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*globals(), *__all__]
