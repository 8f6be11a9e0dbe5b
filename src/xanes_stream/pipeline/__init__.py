"""The analysis of one stack: validated settings, the block pass from frames to
:class:`~xanes_stream.pipeline.results.Maps` (:func:`analyze`), the normalized stack the
analyses beyond the fit start from, volumes and few-energy scans, in-operando series, and the
registry of the analyses beyond the fit (:mod:`xanes_stream.pipeline.products`). It maps
settings onto the numeric core (:mod:`xanes_stream.imaging`, :mod:`xanes_stream.spectra`) and
reads no files. Names are loaded lazily."""

from importlib import import_module

#: public name -> the module (of this part) that defines it
_LAZY = {
    "analyze": "analyze",
    "as_references": "analyze",
    "normalize_stack": "normalized",
    "run_products": "products",
    "Maps": "results",
    "NormalizedStack": "results",
    "Product": "results",
    "jsonable": "results",
    "SeriesSummary": "series",
    "AnalysisSettings": "settings",
    "ProductSettings": "settings",
    "load_settings": "settings",
    "analyze_volume": "volume",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*globals(), *__all__]
