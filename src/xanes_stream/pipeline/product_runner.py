"""Run the analyses beyond the fit that ``settings.products`` enables, for the CLI, the service
and replay alike (through :func:`~xanes_stream.pipeline.scan.analyze_scan`).

The analyses themselves are plug-ins in :mod:`xanes_stream.pipeline.products`; this module sits
beside them, not in their package, so the plug-ins and the settings built from their registry
never import the normalization or the settings loader back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from xanes_stream.pipeline.normalized import normalize_stack
from xanes_stream.pipeline.products.registry import analyses
from xanes_stream.pipeline.results import Maps, NormalizedStack, Product
from xanes_stream.pipeline.settings import load_settings
from xanes_stream.spectra.references import Reference

log = logging.getLogger(__name__)

__all__ = ["run_products", "run_volume_products"]


def run_products(
    frames: np.ndarray,
    energies: np.ndarray,
    maps: Maps,
    settings,
    library: Sequence[Reference],
    *,
    load_model: Callable | None = None,
    **analyze_inputs,
) -> dict[str, Product]:
    """Run every analysis ``settings.products`` enables on the scan ``maps`` were made from.

    The frames are edge-normalized once (moved by ``maps.shifts`` unless ``shifts`` says they
    are aligned already), and only if an enabled analysis needs normalized spectra. Products
    the maps hold already are kept, not made again. A failing analysis is logged and gives a
    product whose metadata holds ``error``; it never costs the maps or the other products.

    Parameters
    ----------
    frames, energies : numpy.ndarray
        As given to :func:`~xanes_stream.pipeline.analyze.analyze`.
    maps : Maps
        The scan's maps.
    settings : AnalysisSettings or dict or path or None
        The analysis settings (their ``products`` section).
    library : sequence of Reference
        Reference library for the analyses that use one.
    load_model : callable, optional
        Reader of model files for analyses that load them (``ml`` with a ``model_path``):
        :func:`xanes_stream.io.models.load_model`.
    **analyze_inputs
        ``dark``, ``flat``, ``i0``, ``mode``, ``shifts``, ``energy_units`` as given to ``analyze``.

    Returns
    -------
    dict of str to Product
        By settings key.
    """
    settings = load_settings(settings)
    enabled = set(settings.products.enabled())
    wanted = [a for a in analyses() if a.name in enabled and a.name not in maps.products]
    normalized: NormalizedStack | None = None
    normalize_error: str | None = None
    if any(not a.maps_only for a in wanted):
        inputs = dict(analyze_inputs)
        if inputs.get("shifts") is None and settings.registration.method != "none":
            inputs["apply_shifts"] = maps.shifts
        try:
            normalized = normalize_stack(frames, energies, settings=settings, **inputs)
        except Exception as exc:  # every product needing it fails, the maps stand
            normalize_error = f"normalization failed: {exc}"
            log.warning("products: %s", normalize_error)
    products = dict(maps.products)  # e.g. the two-energy maps of a few-energy scan
    products.update(_run(wanted, normalized, normalize_error, maps, settings, library, load_model))
    return products


def run_volume_products(maps: Maps, settings, library: Sequence[Reference]) -> dict[str, Product]:
    """Run the analyses ``settings.products`` enables that run on a volume's maps (registered
    with ``volumes=True``; they read the maps only), as :func:`run_products` runs them.

    Parameters
    ----------
    maps : Maps
        A volume's maps (``edge_energy`` (nz, ny, nx)).
    settings : AnalysisSettings or dict or path or None
        The analysis settings.
    library : sequence of Reference
        Reference library.

    Returns
    -------
    dict of str to Product
        By settings key: the maps' own products and those made here.
    """
    settings = load_settings(settings)
    enabled = set(settings.products.enabled())
    wanted = [
        a for a in analyses() if a.volumes and a.name in enabled and a.name not in maps.products
    ]
    products = dict(maps.products)
    products.update(_run(wanted, None, None, maps, settings, library, None))
    return products


def _run(wanted, normalized, normalize_error, maps, settings, library, load_model) -> dict:
    """Each analysis of ``wanted`` on the maps; a failure becomes a product with ``error``."""
    products = {}
    for analysis in wanted:
        name = analysis.name
        section = getattr(settings.products, name)
        started = time.perf_counter()
        if normalized is None and not analysis.maps_only:
            products[name] = Product(metadata={"error": normalize_error})
            continue
        extra = {"load_model": load_model} if analysis.loads_models else {}
        try:
            product = analysis.run(normalized, maps, section, library, **extra)
        except Exception as exc:
            log.warning("product %s failed: %s", name, exc, exc_info=True)
            product = Product(metadata={"error": f"{type(exc).__name__}: {exc}"})
        product.metadata["seconds"] = time.perf_counter() - started
        products[name] = product
    return products
