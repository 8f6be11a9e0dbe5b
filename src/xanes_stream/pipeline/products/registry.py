"""The one registry of the analyses beyond the fit.

Each plug-in module registers itself with :func:`register` (a settings section, whose
``enabled`` is off by default, and an adapter ``run(normalized, maps, settings, library) ->
Product``); :class:`~xanes_stream.pipeline.settings.ProductSettings` is built from the registry
and :func:`~xanes_stream.pipeline.product_runner.run_products` runs what it enables, in its order.
Plug-ins import :mod:`~xanes_stream.pipeline.section` and :mod:`~xanes_stream.pipeline.results`,
never :mod:`~xanes_stream.pipeline.settings` (which imports this registry).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

from xanes_stream.pipeline.section import _Section

#: The built-in plug-ins (modules of this package), in the order they run; others registered
#: later run after them.
BUILTIN = (
    "decomposition",
    "clustering",
    "combinatorial",
    "two_energy",
    "particles",
    "fronts",
    "ml",
    "topography",
)


@dataclass(frozen=True)
class Analysis:
    """One registered analysis.

    ``maps_only``: it reads only the maps, so the frames need not be edge-normalized for it;
    ``loads_models``: its ``run`` takes a ``load_model`` keyword (a reader of model files,
    which the layers above the pipeline provide); ``volumes``: it also runs on a volume's
    maps (their ``edge_energy`` (nz, ny, nx)), from
    :func:`~xanes_stream.pipeline.product_runner.run_volume_products`.
    """

    name: str
    settings: type[_Section]
    run: Callable
    maps_only: bool = False
    loads_models: bool = False
    volumes: bool = False


_REGISTRY: dict[str, Analysis] = {}


def register(
    name: str,
    settings: type[_Section],
    *,
    maps_only: bool = False,
    loads_models: bool = False,
    volumes: bool = False,
) -> Callable[[Callable], Callable]:
    """Decorator that registers an adapter ``run`` as the analysis ``name``.

    Parameters
    ----------
    name : str
        The key of its settings section (``settings.products.<name>``) and of its product.
    settings : type
        Its settings section (a :class:`~xanes_stream.pipeline.section._Section` with an
        ``enabled`` field).
    maps_only, loads_models, volumes : bool
        As in :class:`Analysis` (``volumes`` needs ``maps_only``).

    Returns
    -------
    callable
        The decorator; it returns ``run`` unchanged.
    """

    def decorate(run: Callable) -> Callable:
        if volumes and not maps_only:
            raise ValueError(f"analysis {name!r}: only maps-only analyses can run on volumes")
        _REGISTRY[name] = Analysis(name, settings, run, maps_only, loads_models, volumes)
        return run

    return decorate


def analyses() -> list[Analysis]:
    """Every registered analysis, the built-in ones first, in the order they run.

    Returns
    -------
    list of Analysis
    """
    for module in BUILTIN:
        import_module(f"{__package__}.{module}")
    rank = {name: i for i, name in enumerate(BUILTIN)}
    return sorted(_REGISTRY.values(), key=lambda a: rank.get(a.name, len(rank)))


def analysis(name: str) -> Analysis:
    """The registered analysis ``name``.

    Parameters
    ----------
    name : str
        Its settings key.

    Returns
    -------
    Analysis
    """
    for entry in analyses():
        if entry.name == name:
            return entry
    raise KeyError(f"no analysis {name!r}; have {[a.name for a in analyses()]}")
