"""Analyses beyond the fit, each as a module with a ``Settings`` model (``enabled`` off by
default) and a uniform adapter ``run(normalized, maps, settings, library) -> Product``.

:func:`run_products` runs the ones ``settings.products`` enables (see
:class:`xanes_stream.pipeline.settings.ProductSettings`), for the CLI and the service alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from xanes_stream.imaging import particles
from xanes_stream.pipeline.products import clustering, combinatorial, decomposition, ml, two_energy
from xanes_stream.pipeline.results import Maps, NormalizedStack, Product
from xanes_stream.spectra import fronts
from xanes_stream.spectra.references import Reference

log = logging.getLogger(__name__)

#: Every analysis module, in the order to run them.
MODULES = (decomposition, clustering, combinatorial, two_energy)

#: Analyses that read only the maps, not the normalized spectra.
_MAPS_ONLY = frozenset({"particles", "fronts"})


#: Every runnable analysis by its ``settings.products`` key.
RUNNERS: dict[str, Callable[..., Product]] = {
    **{module.NAME: module.run for module in MODULES},
    "particles": particles.run,
    "fronts": fronts.run,
    "ml": ml.run,
}


def run_products(
    frames: np.ndarray,
    energies: np.ndarray,
    maps: Maps,
    settings,
    library: Sequence[Reference],
    **analyze_inputs,
) -> dict[str, Product]:
    """Run every analysis ``settings.products`` enables on the scan ``maps`` were made from.

    ``frames``, ``energies`` and ``analyze_inputs`` (dark, flat, i0, mode, shifts) are those
    given to :func:`~xanes_stream.pipeline.analyze.analyze`; the frames are edge-normalized once
    (moved by ``maps.shifts`` unless ``shifts`` says they are aligned already), and only if an
    enabled analysis needs normalized spectra. Products the maps hold already are kept, not
    made again. A failing analysis is logged and gives a product
    whose metadata holds ``error``; it never costs the maps or the other products.
    """
    from xanes_stream.pipeline.normalized import normalize_stack
    from xanes_stream.pipeline.settings import load_settings

    settings = load_settings(settings)
    names = [name for name in settings.products.enabled() if name not in maps.products]
    normalized: NormalizedStack | None = None
    normalize_error: str | None = None
    if set(names) - _MAPS_ONLY:
        inputs = dict(analyze_inputs)
        if inputs.get("shifts") is None and settings.registration.method != "none":
            inputs["apply_shifts"] = maps.shifts
        try:
            normalized = normalize_stack(frames, energies, settings=settings, **inputs)
        except Exception as exc:  # every product needing it fails, the maps stand
            normalize_error = f"normalization failed: {exc}"
            log.warning("products: %s", normalize_error)
    products = dict(maps.products)  # e.g. the two-energy maps of a few-energy scan
    for name in names:
        section = getattr(settings.products, name)
        started = time.perf_counter()
        if normalized is None and name not in _MAPS_ONLY:
            products[name] = Product(metadata={"error": normalize_error})
            continue
        try:
            product = RUNNERS[name](normalized, maps, section, library)
        except Exception as exc:
            log.warning("product %s failed: %s", name, exc, exc_info=True)
            product = Product(metadata={"error": f"{type(exc).__name__}: {exc}"})
        product.metadata["seconds"] = time.perf_counter() - started
        products[name] = product
    return products


__all__ = [
    "MODULES",
    "RUNNERS",
    "clustering",
    "combinatorial",
    "decomposition",
    "run_products",
    "two_energy",
]
