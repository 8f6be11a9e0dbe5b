"""The analysis of one stack: validated settings, the block pass from frames to
:class:`~xanes_stream.pipeline.results.Maps` (:func:`analyze`), the normalized stack the
analyses beyond the fit start from, volumes and few-energy scans, in-operando series, and the
registry of the analyses beyond the fit (:mod:`xanes_stream.pipeline.products`). It maps
settings onto the numeric core (:mod:`xanes_stream.imaging`, :mod:`xanes_stream.spectra`) and
reads no files. Names are loaded lazily."""

import lazy_loader

# public names, each loaded from its module on first use (as scikit-image does)
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "analyze": ["analyze", "as_references"],
        "normalized": ["normalize_stack"],
        "products": ["run_products"],
        "results": ["Maps", "NormalizedStack", "Product", "jsonable"],
        "series": ["SeriesSummary"],
        "settings": ["AnalysisSettings", "ProductSettings", "load_settings"],
        "volume": ["analyze_volume"],
    },
)
