"""The numeric core along energy: edge normalization, the linear-combination fit, edge
features, quality masks, references on a scan's energies, and the analyses of spectra beyond the
fit (decomposition, clusters, combinatorial fitting, two-energy maps, machine learning). Arrays
in, arrays or plain dataclasses out; it imports only numpy, scipy, scikit-learn and
:mod:`xanes_stream.errors`. Names are loaded lazily, so ``import xanes_stream.spectra.fit``
loads that module alone."""

from importlib import import_module

#: public name -> the module (of this part) that defines it
_LAZY = {
    "Clusters": "clustering",
    "cluster_mask": "clustering",
    "cluster_spectra": "clustering",
    "elbow": "clustering",
    "CombinatorialFit": "combinatorial",
    "combinatorial_fit": "combinatorial",
    "estimate_noise": "combinatorial",
    "rank_combinations": "combinatorial",
    "Decomposition": "decomposition",
    "SpectraStack": "decomposition",
    "decompose": "decomposition",
    "estimate_components": "decomposition",
    "match_components": "decomposition",
    "scree": "decomposition",
    "singular_values": "decomposition",
    "in_kev": "energies",
    "to_ev": "energies",
    "derivative_operator": "features",
    "edge_energy": "features",
    "peak_energy": "features",
    "fit_spectra": "fit",
    "residual_metrics": "fit",
    "solve": "fit",
    "edge_energy_contours": "fronts",
    "spanning_windows": "fronts",
    "evaluate": "learn",
    "predict_maps": "learn",
    "train": "learn",
    "training_set": "learn",
    "library_matrix": "library",
    "variant": "library",
    "kmeans_clusters": "masks",
    "otsu_threshold": "masks",
    "quality_mask": "masks",
    "EdgeOperator": "normalize",
    "EdgeWindows": "normalize",
    "edge_windows": "normalize",
    "find_e0": "normalize",
    "normalize": "normalize",
    "SpectrumFit": "pixel",
    "fit_normalized": "pixel",
    "pixel_spectrum": "pixel",
    "Reference": "references",
    "looks_normalized": "references",
    "reference_matrix": "references",
    "unit_step": "references",
    "TwoEnergyMaps": "two_energy",
    "choose_energies": "two_energy",
    "estimate_od_noise": "two_energy",
    "two_energy_maps": "two_energy",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*globals(), *__all__]
