"""Analyses beyond the fit, each as a module with a ``Settings`` model (``enabled`` off by
default) and a uniform adapter ``run(normalized, maps, settings, library) -> Product``.

The integrator plugs them into analyze/CLI/service with one loop::

    for module in MODULES:
        section = getattr(settings, module.NAME)  # a module.Settings
        if section.enabled:
            products[module.NAME] = module.run(normalized, maps, section, library)
"""

from __future__ import annotations

from . import clustering, combinatorial, decomposition, two_energy

#: Every analysis module, in the order to run them.
MODULES = (decomposition, clustering, combinatorial, two_energy)

__all__ = ["MODULES", "clustering", "combinatorial", "decomposition", "two_energy"]
