"""Chemical maps of a scan of only a few energies (2 to 4), which cannot be edge-normalized.

:func:`~xanes_stream.pipeline.analyze.analyze` hands such a scan here: the two-energy method of
seed 002
(:func:`~xanes_stream.spectra.two_energy.two_energy_maps`) on its optical density, with the
result laid out as the maps of a full scan, so the CLI, the service and Tiled treat it alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from xanes_stream import __version__
from xanes_stream.errors import AnalysisError
from xanes_stream.pipeline.products.two_energy import maps_of_od
from xanes_stream.pipeline.results import Maps
from xanes_stream.pipeline.settings import AnalysisSettings
from xanes_stream.spectra.references import Reference

#: Maps a few energies cannot give (no residual, no edge position): NaN.
_UNDEFINED = ("error", "r_factor", "chi2_red", "edge_energy", "peak_energy")


def few_energy_maps(
    od: np.ndarray,
    energies: np.ndarray,
    references: Sequence[Reference],
    settings: AnalysisSettings,
    *,
    od_noise: np.ndarray | None = None,
    registered: bool = False,
) -> Maps:
    """Maps of optical density (m, ny, nx) at ``m`` sorted distinct ``energies`` (eV), m >= 2.

    The two references are ``settings.products.two_energy.reference_a/b``, else the first two
    given; its E1, E2, pre-edge and threshold apply too. ``fractions`` are (f_A, 1 - f_A),
    ``fraction_errors`` their 1-sigma error (the same for both), ``thickness`` the edge step
    C_A + C_B, ``mask`` Otsu's on it, ``clusters`` the A-rich (1) / mixed (2) / B-rich (3)
    segmentation; maps a few energies cannot give are NaN. The whole two-energy product is
    ``products["two_energy"]``;
    ``od_noise`` (per energy) is estimated from ``od`` when None; ``registered`` frames add
    the settings' ``misregistration`` to the stated error.

    Parameters
    ----------
    od : numpy.ndarray
        (m, ny, nx) optical density.
    energies : numpy.ndarray
        (m,) sorted distinct eV.
    references : sequence of Reference
        The scan's references.
    settings : AnalysisSettings
        The analysis settings.
    od_noise : numpy.ndarray, optional
        (m,) noise per energy.
    registered : bool
        Whether the frames were moved into register.

    Returns
    -------
    Maps
    """
    od = np.asarray(od)
    energies = np.asarray(energies, dtype=np.float64)
    if energies.size < 2:
        raise AnalysisError(
            f"{energies.size} usable energy: chemical maps need at least two (E1 and E2)"
        )
    product = maps_of_od(
        od,
        energies,
        settings.products.two_energy,
        [r.name for r in references],
        references,
        registered=registered,
        od_noise=od_noise,
    )
    reference_a, reference_b = product.metadata["references"]
    images = product.images
    fraction = images["two_energy/fraction_a"]
    fraction_error = images["two_energy/fraction_error"]
    mask = images["two_energy/phases"] > 0
    nan = np.full(fraction.shape, np.nan, dtype=np.float32)
    mean_spectrum = np.array(
        [np.nanmean(frame[mask]) if mask.any() else np.nan for frame in od], dtype=np.float64
    )
    notes = [
        f"{energies.size} energies: two-energy method (seed 002) at "
        f"{product.metadata['e1']:.1f} and {product.metadata['e2']:.1f} eV; fit-quality and "
        "edge-energy maps are NaN"
    ]
    if not product.metadata["pre_edge"]:
        notes.append(
            "no pre-edge frame: the non-resonant background is not subtracted, which biases "
            "the fractions unless the edge dwarfs it (soft X-ray L-edges); add an energy "
            "below the edge"
        )
    return Maps(
        reference_names=[reference_a, reference_b],
        fractions=np.stack([fraction, 1.0 - fraction]).astype(np.float32),
        fraction_errors=np.stack([fraction_error, fraction_error]).astype(np.float32),
        thickness=images["two_energy/thickness"],
        **{name: nan for name in _UNDEFINED},
        mask=mask,
        clusters=images["two_energy/phases"],
        shifts=np.zeros((energies.size, 2)),
        energies=energies,
        mean_spectrum=mean_spectrum,
        mean_fit=np.full(energies.size, np.nan),
        fit_energies=energies,
        metadata={
            "software": "xanes-stream",
            "version": __version__,
            "method": "two_energy",
            "references": [reference_a, reference_b],
            "reference_sources": {
                r.name: r.source for r in references if r.name in (reference_a, reference_b)
            },
            "settings": settings.model_dump(mode="json"),
            "notes": notes,
        },
        products={"two_energy": product},
    )
