"""xanes-stream: live 2D-XANES chemical maps from Bluesky documents, written to Tiled.

The package's top level exposes the analysis of one stack lazily, so that importing a part
(``xanes_stream.spectra``, say) loads nothing else.
"""

from importlib.metadata import PackageNotFoundError, version

import lazy_loader

try:
    __version__ = version("xanes-stream")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

# public names, each loaded from its module on first use (as scikit-image does)
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "errors": ["AnalysisError"],
        "io.references": ["read_reference"],
        "pipeline.analyze": ["analyze"],
        "pipeline.results": ["Maps"],
        "pipeline.settings": ["AnalysisSettings"],
        "spectra.references": ["Reference"],
    },
)
