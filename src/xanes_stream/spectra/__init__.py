"""The numeric core along energy: edge normalization, the linear-combination fit, edge
features, quality masks, references on a scan's energies, and the analyses of spectra beyond the
fit (decomposition, clusters, combinatorial fitting, two-energy maps, machine learning). Arrays
in, arrays or plain dataclasses out; it imports only numpy, scipy, scikit-learn, numba (the
fused block pass, :mod:`~xanes_stream.spectra.fused`) and :mod:`xanes_stream.errors`. Names are
loaded lazily, so ``import xanes_stream.spectra.fit`` loads that module alone."""

import lazy_loader

# public names, each loaded from its module on first use (as scikit-image does)
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "clustering": ["Clusters", "cluster_mask", "cluster_spectra", "elbow"],
        "combinatorial": [
            "CombinatorialFit",
            "combinatorial_fit",
            "estimate_noise",
            "rank_combinations",
        ],
        "decomposition": [
            "Decomposition",
            "SpectraStack",
            "decompose",
            "estimate_components",
            "match_components",
            "scree",
            "singular_values",
        ],
        "energies": ["in_kev", "to_ev"],
        "features": ["derivative_operator", "edge_energy", "peak_energy"],
        "fit": ["fit_spectra", "residual_metrics", "solve"],
        "fronts": ["edge_energy_contours", "spanning_windows"],
        "learn": ["evaluate", "predict_maps", "train", "training_set"],
        "library": ["library_matrix", "variant"],
        "masks": ["kmeans_clusters", "otsu_threshold", "quality_mask", "snr_mask"],
        "normalize": ["EdgeOperator", "EdgeWindows", "edge_windows", "find_e0", "normalize"],
        "pixel": ["SpectrumFit", "fit_normalized", "pixel_spectrum"],
        "references": ["Reference", "looks_normalized", "reference_matrix", "unit_step"],
        "two_energy": ["TwoEnergyMaps", "choose_energies", "estimate_od_noise", "two_energy_maps"],
    },
)
