"""The numeric core in space: the combining of exposures, the correction of raw frames (dark,
flat, I0, -ln), frame registration (phase correlation, StackReg), particle segmentation and the
curvature of E0 level sets (valence-state topography).
Arrays in, arrays out; it imports only numpy, scipy, scikit-image, pystackreg,
:mod:`xanes_stream.spectra` and :mod:`xanes_stream.errors`. Names are loaded lazily."""

import lazy_loader

# public names, each loaded from its module on first use (as scikit-image does)
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "correct": ["MODES", "correct", "flat_field"],
        "exposures": ["combine_exposures"],
        "particles": ["label_particles", "particle_table"],
        "registration": ["FrameRegistrar", "PhaseCorrelator", "RegisteredFrame", "register_stack"],
        "shift": ["bilinear_noise", "shift_frame"],
        "mesh_curvature": ["boundary_vertices", "mesh_curvatures", "vertex_neighbours_mean"],
        "topography": [
            "Isosurface",
            "contour_curvatures",
            "curvature_histogram",
            "isosurface_curvatures",
            "robust_span",
            "spread_levels",
        ],
    },
)
