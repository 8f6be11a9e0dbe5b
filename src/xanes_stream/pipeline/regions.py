"""``region_spectrum``: the mean spectrum of a region of a scan and its fit to the references.

A region is a rectangle, a polygon, one k-means cluster, one particle (the ``particles``
product's labels) or the analysis mask (:class:`Region`, turned into pixels by
:func:`select_region` with :mod:`xanes_stream.imaging.regions`). Its spectrum is the mean
*absorption* (optical density) of its pixels at each frame, then edge-normalized with the
scan's own windows (``maps.metadata["normalization"]``) and fitted as analyze fits a pixel
(:func:`xanes_stream.spectra.pixel.pixel_spectrum`). The fractions of the mean absorption are
the region's amounts of each species (a thickness-weighted mean of the pixels' fractions), as
a region of interest is read in PyXAS; a region of one pure phase gives that phase's fraction 1.

Regions need the absorption stack, which :class:`~xanes_stream.pipeline.results.Maps` does not
keep (only the mask's mean spectrum): the live service keeps the last scans' stacks in memory
(``ServiceConfig.kept_stacks``, :mod:`xanes_stream.live.stacks`), and a notebook passes the
stack it analysed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from xanes_stream.errors import AnalysisError
from xanes_stream.imaging.regions import (
    label_region,
    mask_region,
    polygon_region,
    rectangle_region,
)
from xanes_stream.pipeline.settings import AnalysisSettings, load_settings
from xanes_stream.spectra.pixel import SpectrumFit, pixel_spectrum
from xanes_stream.spectra.references import Reference

__all__ = ["REGION_KINDS", "Region", "RegionSpectrum", "region_spectrum", "select_region"]

RegionKind = Literal["rect", "polygon", "cluster", "particle", "mask"]
REGION_KINDS = ("rect", "polygon", "cluster", "particle", "mask")


@dataclass(frozen=True)
class Region:
    """A region of a scan's image, as a person names it.

    ``rect``: ``bounds`` = (y0, y1, x0, x1), rows y0..y1-1 and columns x0..x1-1; ``polygon``:
    ``points`` = ((row, column), ...); ``cluster`` and ``particle``: ``label``; ``mask``:
    nothing more.
    """

    kind: RegionKind
    bounds: tuple[int, int, int, int] | None = None
    points: tuple[tuple[float, float], ...] = ()
    label: int | None = None

    def describe(self) -> str:
        """The region in words, e.g. ``rows 3..9, columns 0..4``."""
        if self.kind == "rect" and self.bounds is not None:
            y0, y1, x0, x1 = self.bounds
            return f"rows {y0}..{y1 - 1}, columns {x0}..{x1 - 1}"
        if self.kind == "polygon":
            return f"polygon of {len(self.points)} vertices"
        if self.kind in ("cluster", "particle"):
            return f"{self.kind} {self.label}"
        return "the mask"


def select_region(
    region: Region,
    shape: tuple[int, int],
    *,
    clusters: np.ndarray | None = None,
    particles: np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """The pixels of ``region`` in an image of ``shape``, from the scan's label maps.

    Parameters
    ----------
    region : Region
        What to select.
    shape : (int, int)
        The image's (ny, nx).
    clusters, particles, mask : numpy.ndarray, optional
        (ny, nx) ``maps.clusters``, the ``particles/labels`` image and ``maps.mask``: needed
        for those kinds.

    Returns
    -------
    numpy.ndarray
        (ny, nx) bool.

    Raises
    ------
    AnalysisError
        A region off the image, empty, or of a map this scan does not have.
    """
    if region.kind == "rect":
        if region.bounds is None or len(region.bounds) != 4:
            raise AnalysisError("a rectangle needs y0, y1, x0 and x1")
        return rectangle_region(shape, *(int(v) for v in region.bounds))
    if region.kind == "polygon":
        points = np.asarray(region.points, dtype=np.float64).reshape(-1, 2)
        return polygon_region(shape, points[:, 0], points[:, 1])
    if region.kind in ("cluster", "particle"):
        labels = clusters if region.kind == "cluster" else particles
        if labels is None:
            hint = "" if region.kind == "cluster" else " (enable the particles product)"
            raise AnalysisError(f"this scan has no {region.kind} map{hint}")
        if region.label is None:
            raise AnalysisError(f"name the {region.kind} by its label number")
        _same_shape(labels, shape, f"the {region.kind} map")
        return label_region(labels, int(region.label), what=region.kind)
    if region.kind == "mask":
        if mask is None:
            raise AnalysisError("this scan has no mask")
        _same_shape(mask, shape, "the mask")
        return mask_region(mask)
    raise AnalysisError(f"unknown region kind {region.kind!r}; choose one of {REGION_KINDS}")


def _same_shape(image: np.ndarray, shape, what: str) -> None:
    if tuple(np.shape(image)) != tuple(shape):
        raise AnalysisError(f"{what} is {np.shape(image)}, the frames {tuple(shape)}")


@dataclass(frozen=True)
class RegionSpectrum:
    """A region's mean absorption spectrum, its normalized form and their fit.

    ``energies``/``absorption``: the mean optical density at each distinct energy used (sorted,
    repeats averaged); ``fit``: a :class:`~xanes_stream.spectra.pixel.SpectrumFit` on the
    fit energies; ``n_pixels``: pixels averaged (those with a finite value at every frame).
    """

    energies: np.ndarray
    absorption: np.ndarray
    fit: SpectrumFit
    n_pixels: int
    region: Region | None = None

    def as_dict(self) -> dict:
        """Plain lists and numbers: ``energies`` and ``spectrum`` (mean absorption),
        ``fit_energies``, ``normalized``, ``fit``, ``components`` and ``fractions`` by
        reference name, ``r_factor``, ``edge_step``, ``n_pixels``, ``region`` (in words)."""
        fit = self.fit.as_dict()
        return {
            "energies": self.energies.tolist(),
            "spectrum": self.absorption.tolist(),
            "fit_energies": fit.pop("energies"),
            **fit,
            "n_pixels": int(self.n_pixels),
            "region": self.region.describe() if self.region else "the region",
        }


def region_spectrum(
    frames: np.ndarray,
    energies: np.ndarray,
    region: np.ndarray,
    references: Sequence[Reference],
    normalization: Mapping,
    *,
    energies_used: np.ndarray | None = None,
    settings: AnalysisSettings | dict | None = None,
    described: Region | None = None,
) -> RegionSpectrum:
    """The mean absorption of ``region``'s pixels, edge-normalized and fitted as analyze does.

    Parameters
    ----------
    frames : numpy.ndarray
        (n, ny, nx) corrected, registered optical density (the stack analyze fitted).
    energies : numpy.ndarray
        (n,) eV, one per frame.
    region : numpy.ndarray
        (ny, nx) bool, e.g. from :func:`select_region`.
    references : sequence of Reference
        The scan's references.
    normalization : mapping
        ``maps.metadata["normalization"]``: the scan's edge windows.
    energies_used : numpy.ndarray, optional
        ``maps.energies``: frames analyze dropped are left out too.
    settings : AnalysisSettings or dict, optional
        The scan's settings (``maps.metadata["settings"]``); their ``fit.method`` and
        ``fit.sum_to_one`` are used (defaults: the defaults').
    described : Region, optional
        The region as asked, reported with the result.

    Returns
    -------
    RegionSpectrum

    Raises
    ------
    AnalysisError
        A region of the wrong shape, with no pixel finite at every frame, or too few energies.
    """
    fit_settings = load_settings(settings).fit
    frames = np.asarray(frames)
    energies = np.asarray(energies, dtype=np.float64).ravel()
    region = np.asarray(region, dtype=bool)
    if frames.ndim != 3 or frames.shape[0] != energies.size:
        raise AnalysisError(f"frames {frames.shape} do not match {energies.size} energies")
    if region.shape != frames.shape[1:]:
        raise AnalysisError(f"the region is {region.shape}, the frames {frames.shape[1:]}")
    pixels = frames[:, region].astype(np.float64)  # (n, n_region)
    good = np.isfinite(pixels).all(axis=0)  # a pixel with a gap would bend the mean
    if not good.any():
        raise AnalysisError(
            f"none of the region's {int(region.sum())} pixels has a finite value at every energy"
        )
    mean = pixels[:, good].mean(axis=1)
    fit = pixel_spectrum(
        mean[:, None, None],
        energies,
        0,
        0,
        references,
        normalization,
        energies_used=energies_used,
        method=fit_settings.method,
        sum_to_one=fit_settings.sum_to_one,
    )
    keep = np.isfinite(energies)
    if energies_used is not None:
        keep &= np.isclose(energies[:, None], np.asarray(energies_used)[None, :]).any(axis=1)
    unique, inverse = np.unique(energies[keep], return_inverse=True)
    absorption = np.bincount(inverse, mean[keep], minlength=unique.size) / np.bincount(
        inverse, minlength=unique.size
    )
    return RegionSpectrum(
        energies=unique,
        absorption=absorption,
        fit=fit,
        n_pixels=int(good.sum()),
        region=described,
    )
