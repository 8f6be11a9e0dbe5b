"""What an analysis hands back: :class:`Maps` (the chemical maps of one stack, with what is
needed to trace and re-make them), :class:`Product` (the named results of one analysis beyond the
fit) and :class:`NormalizedStack` (the edge-normalized spectra those analyses start from)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class NormalizedStack:
    """Edge-normalized spectra of every pixel: ``spectra`` is (n_energy, ny, nx), edge step 1."""

    energies: np.ndarray  # (n,) eV, sorted and unique
    spectra: np.ndarray  # (n, ny, nx) float32
    e0: float
    edge_step: np.ndarray  # (ny, nx)
    mask: np.ndarray | None = None  # (ny, nx) bool: sample pixels, when known
    pre_edge: np.ndarray | None = None  # (ny, nx) the pre-edge line at E0 (mu), when known


@dataclass
class Product:
    """Named results of one analysis.

    ``images``: (ny, nx) or (k, ny, nx) arrays; ``spectra``: (m, n_energy) arrays on
    ``energies``; ``tables``: column name -> 1-D array, all columns of one length;
    ``metadata``: JSON-able facts (chosen k, scores, thresholds, ...).
    """

    images: dict[str, np.ndarray] = field(default_factory=dict)
    spectra: dict[str, np.ndarray] = field(default_factory=dict)
    tables: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    energies: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)


#: The 2-D maps, by name, in the order they are written.
IMAGE_MAPS = (
    "thickness",
    "error",
    "r_factor",
    "chi2_red",
    "edge_energy",
    "peak_energy",
    "mask",
    "clusters",
)


@dataclass
class Maps:
    """Chemical maps of one energy stack.

    ``fractions`` is (k, ny, nx), one map per reference in ``reference_names`` order; every other
    image map is (ny, nx) (a volume's, from
    :func:`~xanes_stream.pipeline.volume.analyze_volume`, have
    a z axis: (k, nz, ny, nx) and (nz, ny, nx)); ``shifts`` is (n_energy, 2) = (dy, dx) in
    pixels; ``energies`` in eV.
    ``metadata`` holds the settings, the normalization windows, thresholds, timings and notes;
    ``products`` the results of the enabled analyses beyond the fit, by settings key.
    """

    reference_names: list[str]
    fractions: np.ndarray
    thickness: np.ndarray
    error: np.ndarray
    r_factor: np.ndarray
    chi2_red: np.ndarray
    edge_energy: np.ndarray
    peak_energy: np.ndarray
    mask: np.ndarray
    clusters: np.ndarray
    shifts: np.ndarray
    energies: np.ndarray
    mean_spectrum: np.ndarray
    mean_fit: np.ndarray
    fit_energies: np.ndarray
    metadata: dict = field(default_factory=dict)
    products: dict[str, Product] = field(default_factory=dict)
    #: (k, ny, nx) 1-sigma standard error of each fraction (``fit.errors``, and always for
    #: the two-energy method); None when not made (``fit.errors: false``)
    fraction_errors: np.ndarray | None = None

    @property
    def mean_spectrum_kind(self) -> str:
        """What ``mean_spectrum`` is: ``"optical density"`` (the optical-density model, or a
        few energies' two-energy method) or ``"normalized spectrum"``."""
        od = self.metadata.get("fit_model", {}).get("model") == "optical_density"
        return (
            "optical density"
            if od or self.metadata.get("method") == "two_energy"
            else ("normalized spectrum")
        )

    def fraction(self, name: str) -> np.ndarray:
        """The fraction map of one reference, by name."""
        try:
            return self.fractions[self.reference_names.index(name)]
        except ValueError:
            raise KeyError(f"no reference {name!r}; have {self.reference_names}") from None

    def middle_slice(self) -> Maps:
        """A volume's maps at its middle z-slice, as 2-D maps (2-D maps are returned as they
        are); for views that show images."""
        if self.thickness.ndim == 2:
            return self
        z = self.thickness.shape[0] // 2
        images = {name: getattr(self, name)[z] for name in IMAGE_MAPS}
        fields = {n: getattr(self, n) for n in ("shifts", "energies", "mean_spectrum")}
        fields.update(mean_fit=self.mean_fit, fit_energies=self.fit_energies)
        note = f"z-slice {z} of {self.thickness.shape[0]}"
        return Maps(
            reference_names=self.reference_names,
            fractions=self.fractions[:, z],
            fraction_errors=None if self.fraction_errors is None else self.fraction_errors[:, z],
            metadata={**self.metadata, "slice": note},
            **images,
            **fields,
        )

    def summary(self) -> dict:
        """Mean fraction per reference inside the mask, median R-factor, pixels in the mask."""
        inside = self.mask.astype(bool)
        means = {
            name: float(np.nanmean(self.fractions[i][inside])) if inside.any() else float("nan")
            for i, name in enumerate(self.reference_names)
        }
        r = self.r_factor[inside] if inside.any() else self.r_factor.ravel()
        r = r[np.isfinite(r)]  # none after a few-energy scan, which has no residual
        return {
            "mean_fractions": means,
            "median_r_factor": float(np.nanmedian(r)) if r.size else float("nan"),
            "mask_pixels": int(inside.sum()),
        }


def jsonable(value, *, finite: bool = False):
    """``value`` with numpy scalars and arrays made plain Python, recursively, for JSON or
    Tiled metadata; unknown objects become their ``str``. ``finite`` turns NaN and inf
    into None (strict JSON, as Tiled's metadata needs).

    Parameters
    ----------
    value : object
        Any value.
    finite : bool
        Turn NaN and inf into None.

    Returns
    -------
    object
        Plain Python (dict, list, float, int, str, bool, None).
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v, finite=finite) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v, finite=finite) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if finite and not np.isfinite(value) else value
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)
