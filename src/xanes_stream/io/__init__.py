"""Files: energy stacks in, maps files out, reference spectra and libraries, model files
(skops) and figures. Names are loaded lazily (h5py and matplotlib only when needed)."""

from importlib import import_module

#: public name -> the module (of this part) that defines it
_LAZY = {
    "read_maps": "maps_file",
    "write_maps": "maps_file",
    "load_model": "models",
    "save_model": "models",
    "parity_plot": "plotting",
    "plot_maps": "plotting",
    "bundled_reference": "references",
    "load_library": "references",
    "read_reference": "references",
    "Stack": "stacks",
    "read_stack": "stacks",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*globals(), *__all__]
