"""Candidate references from a first look: each cluster's mean spectrum as a reference file.

A first look (:func:`~xanes_stream.pipeline.first_look.first_look`) clusters the normalized
spectra of a stack that had no references. Each cluster's mean spectrum is written as an XDI
file (``cluster1.xdi``, ...: columns ``energy`` in eV and ``mu``, the normalized spectrum; the
header's ``Sample.name`` is the candidate's name), which :func:`~xanes_stream.io.references.
read_reference` reads back, so ``--reference cluster1=cluster1.xdi`` and ``references add``
take it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xanes_stream.errors import AnalysisError
from xanes_stream.io.exports import export_spectrum
from xanes_stream.pipeline.results import Maps

__all__ = ["candidate_spectra", "write_candidate_references"]


def candidate_spectra(maps: Maps) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The candidate references of a first look: name -> (energies in eV, normalized mu).

    Parameters
    ----------
    maps : Maps
        A first look's maps (their ``first_look`` product).

    Returns
    -------
    dict of str to (numpy.ndarray, numpy.ndarray)
        By name (``cluster1``, ...); clusters without a finite spectrum are left out.

    Raises
    ------
    AnalysisError
        Maps that are not a first look's.
    """
    product = maps.products.get("first_look")
    if product is None or "cluster_spectra" not in product.spectra:
        raise AnalysisError(
            "these maps hold no cluster spectra: candidate references come from a first look "
            "(an analysis without references)"
        )
    names = product.metadata.get("candidate_references") or []
    spectra = np.asarray(product.spectra["cluster_spectra"])
    energies = np.asarray(product.energies, dtype=np.float64)
    return {
        str(name): (energies, spectrum.astype(np.float64))
        for name, spectrum in zip(names, spectra, strict=False)
        if np.isfinite(spectrum).all()
    }


def write_candidate_references(maps: Maps, folder: str | Path) -> list[Path]:
    """Write each cluster's mean spectrum of a first look as ``<folder>/<name>.xdi``.

    Parameters
    ----------
    maps : Maps
        A first look's maps.
    folder : str or Path
        Where to write (made if missing).

    Returns
    -------
    list of Path
        The files written, in cluster order (none when the mask held no clusters).

    Raises
    ------
    AnalysisError
        Maps that are not a first look's, or a folder that cannot be written.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AnalysisError(f"cannot make the folder {folder}: {exc.strerror}") from None
    md = maps.metadata
    table = maps.products["first_look"].tables.get("clusters", {}) if maps.products else {}
    pixels = dict(zip(table.get("cluster", []), table.get("pixels", []), strict=False))
    source = md.get("sample") or md.get("source") or "this scan"
    e0 = (md.get("normalization") or {}).get("e0")
    written = []
    for name, (energy, mu) in candidate_spectra(maps).items():
        cluster = int(name.removeprefix("cluster"))
        facts = {k: md[k] for k in ("scan_id", "raw_uid") if md.get(k)}
        comments = (
            f"mean normalized spectrum of cluster {cluster} ({int(pixels.get(cluster, 0))} "
            f"pixels) of {source}: a candidate reference from a first look without references"
        )
        metadata = {"sample": name, "comments": comments, **facts}
        if isinstance(e0, int | float) and np.isfinite(e0):
            metadata["e0"] = float(e0)
        written.append(export_spectrum(folder / f"{name}.xdi", energy, mu, metadata=metadata))
    return written
