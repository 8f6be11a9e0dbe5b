"""``first_look``: the maps of a stack when no reference spectra are known yet.

A first stack of an unknown sample has nothing to fit with, but it still has its edge: this
module gives the reference-free maps (edge energy E0, white-line energy and height, edge step
= thickness, pre-edge level, the mask), the PCA of the normalized spectra with its scree, and
k-means clusters with each cluster's mean normalized spectrum: candidate references for the
next analysis.

It reuses the block pass of :func:`~xanes_stream.pipeline.analyze.analyze` (windows from the
mean spectrum, E0, white line, thickness, mask, clusters, mean spectrum) by fitting a flat
placeholder reference whose fit it then throws away, and
:func:`~xanes_stream.pipeline.normalized.normalize_stack` (the same windows) for the white-line
height, the pre-edge level, the cluster spectra and the PCA. It holds the normalized stack
(n_energy x ny x nx float32) in memory, as the decomposition product does.

The result is an ordinary :class:`~xanes_stream.pipeline.results.Maps` with no references:
``reference_names`` is empty, ``fractions`` is (0, ny, nx), ``error``, ``r_factor``,
``chi2_red`` and ``mean_fit`` are NaN (there is no fit), ``metadata["method"]`` is
``"first_look"``. What Maps has no field for is in ``products``:

- ``first_look``: images ``white_line_height`` (the normalized spectrum's maximum in the
  white-line window) and ``pre_edge`` (the pre-edge line at E0, in absorbance); spectra
  ``cluster_spectra`` (k, n_energy) on ``energies``, row ``i`` the mean normalized spectrum of
  cluster ``i + 1``; table ``clusters`` (cluster, pixels, edge_energy, peak_energy,
  white_line_height); metadata ``candidate_references`` (``cluster1`` ...) and ``note``.
- ``decomposition``: the PCA (``pca/maps``, ``pca/components``, ``pca/scree``), as the
  decomposition product writes it, with ``explained_variance_ratio`` in its metadata.
"""

from __future__ import annotations

import numpy as np

from xanes_stream.errors import AnalysisError
from xanes_stream.pipeline.analyze import BlockRunner, Mode, Progress, analyze
from xanes_stream.pipeline.normalized import normalize_stack
from xanes_stream.pipeline.products.decomposition import as_product
from xanes_stream.pipeline.results import Maps, NormalizedStack, Product
from xanes_stream.pipeline.settings import AnalysisSettings, load_settings
from xanes_stream.spectra.decomposition import decompose
from xanes_stream.spectra.energies import Units, to_ev
from xanes_stream.spectra.references import Reference

__all__ = ["FIRST_LOOK_NOTE", "candidate_name", "first_look", "first_look_settings"]

#: What a first look's metadata and the service's record say.
FIRST_LOOK_NOTE = (
    "no references: a first look (edge energy, white line, edge step, clusters and their spectra)"
)

#: A flat normalized spectrum over every energy: the block pass needs one column to fit.
_PLACEHOLDER = Reference("placeholder", np.array([0.0, 5.0e6, 1.0e7]), np.ones(3), True)


def candidate_name(cluster: int) -> str:
    """The name of cluster ``cluster``'s (1-based) spectrum as a candidate reference."""
    return f"cluster{cluster}"


def first_look_settings(settings: AnalysisSettings) -> AnalysisSettings:
    """``settings`` as the first look's block pass runs them: the mask from the edge step only
    (there is no fit to judge), no fitted energy shifts (there are no references to shift) and
    the normalized model (a model chosen by the placeholder's fit would mean nothing, and its
    fitted step is no pixel's)."""
    mask = settings.mask.model_copy(update={"r_factor_threshold": float("inf")})
    fit = settings.fit.model_copy(update={"energy_shift": "none", "model": "normalized"})
    return settings.model_copy(update={"mask": mask, "fit": fit})


def first_look(
    frames: np.ndarray,
    energies: np.ndarray,
    *,
    dark: np.ndarray | None = None,
    flat: np.ndarray | None = None,
    i0: np.ndarray | None = None,
    mode: Mode = "transmission",
    settings: AnalysisSettings | dict | None = None,
    shifts: np.ndarray | None = None,
    progress: Progress | None = None,
    blocks: BlockRunner | None = None,
    energy_offset: float | None = None,
    energy_units: Units = "auto",
) -> Maps:
    """Reference-free maps of an energy stack, and its clusters' spectra as candidate references.

    Parameters
    ----------
    frames, energies, dark, flat, i0, mode, settings, shifts, progress, blocks, energy_offset,
    energy_units
        As for :func:`~xanes_stream.pipeline.analyze.analyze`; ``settings.mask.n_clusters``
        is the number of clusters, ``settings.features`` the E0 and white-line windows.

    Returns
    -------
    Maps
        With no references (see the module's description of what it holds).

    Raises
    ------
    AnalysisError
        Fewer than 5 energies (no edge to normalize), or what ``analyze`` refuses.
    """
    settings = load_settings(settings)
    n_energies = np.unique(np.asarray(energies, dtype=np.float64)).size
    if n_energies < 5:
        raise AnalysisError(
            f"a first look without references needs the edge: at least 5 energies, this scan "
            f"has {n_energies}; give a reference spectrum for the two-energy method"
        )
    look = first_look_settings(settings)
    maps = analyze(
        frames,
        energies,
        [_PLACEHOLDER],
        dark=dark,
        flat=flat,
        i0=i0,
        mode=mode,
        settings=look,
        shifts=shifts,
        progress=progress,
        blocks=blocks,
        energy_offset=energy_offset,
        energy_units=energy_units,
    )
    moved = to_ev(np.asarray(energies, dtype=np.float64), energy_units)
    if energy_offset is not None:
        moved = moved + float(energy_offset)
    register = shifts is None and look.registration.method != "none"
    normalized = normalize_stack(
        frames,
        moved,
        dark=dark,
        flat=flat,
        i0=i0,
        mode=mode,
        settings=look,
        shifts=shifts,
        apply_shifts=maps.shifts if register else None,
    )
    maps.products = {
        "first_look": _look_product(normalized, maps, look),
        "decomposition": _pca_product(normalized, maps.mask, look.mask.seed),
    }
    return _without_fit(maps, settings)


def _look_product(normalized: NormalizedStack, maps: Maps, settings) -> Product:
    """White-line height, pre-edge level and the clusters' mean spectra."""
    energy, spectra = normalized.energies, normalized.spectra
    e0 = normalized.e0
    window = (e0 + settings.features.peak_window[0], e0 + settings.features.peak_window[1])
    inside = np.flatnonzero((energy >= window[0]) & (energy <= window[1]))
    ny, nx = maps.thickness.shape
    if inside.size:
        height = spectra[inside[0] : inside[-1] + 1].max(axis=0)  # NaN where invalid
    else:
        height = np.full((ny, nx), np.nan, dtype=np.float32)
    height = np.where(np.isfinite(maps.thickness), height, np.nan).astype(np.float32)
    labels = maps.clusters
    k = int(labels.max()) if labels.size else 0
    flat = spectra.reshape(energy.size, -1)
    cluster_spectra = np.full((k, energy.size), np.nan, dtype=np.float32)
    table: dict[str, list] = {
        name: [] for name in ("cluster", "pixels", "edge_energy", "peak_energy", "white_line")
    }
    for c in range(1, k + 1):
        members = (labels == c).ravel()
        columns = flat[:, members]
        columns = columns[:, np.isfinite(columns).all(axis=0)]
        if columns.shape[1]:
            cluster_spectra[c - 1] = columns.mean(axis=1)
        table["cluster"].append(c)
        table["pixels"].append(int(members.sum()))
        for name, image in (
            ("edge_energy", maps.edge_energy),
            ("peak_energy", maps.peak_energy),
            ("white_line", height),
        ):
            values = image.ravel()[members]
            values = values[np.isfinite(values)]
            table[name].append(float(values.mean()) if values.size else float("nan"))
    return Product(
        images={"white_line_height": height, "pre_edge": normalized.pre_edge},
        spectra={"cluster_spectra": cluster_spectra},
        tables={"clusters": {name: np.asarray(values) for name, values in table.items()}},
        energies=energy,
        metadata={
            "note": FIRST_LOOK_NOTE,
            "n_clusters": k,
            "candidate_references": [candidate_name(c) for c in range(1, k + 1)],
            "white_line_window": list(window),
        },
    )


def _pca_product(normalized: NormalizedStack, mask: np.ndarray, seed: int) -> Product:
    """PCA of the masked normalized spectra with its scree; an error product when the mask
    holds too few pixels (the maps stand)."""
    try:
        return as_product(decompose(normalized, "pca", mask=mask, seed=seed))
    except AnalysisError as exc:
        return Product(metadata={"error": f"PCA: {exc}"})


def _without_fit(maps: Maps, settings: AnalysisSettings) -> Maps:
    """``maps`` with the placeholder's fit removed: no references, NaN fit quality."""
    shape = maps.thickness.shape
    nan = np.full(shape, np.nan, dtype=np.float32)
    metadata = dict(maps.metadata)
    metadata.update(
        method="first_look",
        references=[],
        reference_sources={},
        settings=settings.model_dump(mode="json"),
        thresholds={**metadata.get("thresholds", {}), "r_factor": None},
        notes=[*metadata.get("notes", []), FIRST_LOOK_NOTE],
        first_look=FIRST_LOOK_NOTE,
    )
    maps.reference_names = []
    maps.fractions = np.empty((0, *shape), dtype=np.float32)
    maps.error, maps.r_factor, maps.chi2_red = nan, nan.copy(), nan.copy()
    maps.mean_fit = np.full(maps.mean_spectrum.shape, np.nan, dtype=np.float32)
    maps.metadata = metadata
    return maps
