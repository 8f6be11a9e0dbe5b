"""Analyses beyond the fit, each a plug-in module that joins the registry
(:mod:`~xanes_stream.pipeline.products.registry`) with a settings section (``enabled`` off by
default) and an adapter ``run(normalized, maps, settings, library) -> Product``.

:func:`xanes_stream.pipeline.product_runner.run_products` runs the ones ``settings.products``
enables (see :class:`xanes_stream.pipeline.settings.ProductSettings`, built from the registry).
To add one: a module here that calls :func:`~xanes_stream.pipeline.products.registry.register`,
named in the registry's list of plug-in modules.
"""

__all__: list[str] = []
