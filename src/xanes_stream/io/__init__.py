"""Files: energy stacks in, maps files out, reference spectra and libraries, model files
(skops) and figures. Names are loaded lazily (h5py and matplotlib only when needed)."""

import lazy_loader

# public names, each loaded from its module on first use (as scikit-image does)
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "exports": ["export_maps", "export_spectrum"],
        "maps_file": ["read_maps", "write_maps"],
        "models": ["load_model", "save_model"],
        "plotting": ["parity_plot", "plot_maps"],
        "references": ["bundled_reference", "load_library", "read_reference"],
        "stacks": ["Stack", "read_stack"],
    },
)
