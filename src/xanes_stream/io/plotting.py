"""Figures of maps and spectra, for people who would rather look than read."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from xanes_stream.errors import AnalysisError, ModelError
from xanes_stream.pipeline.results import Maps


def rgb_composite(maps: Maps) -> np.ndarray:
    """Fractions of up to three references as red, green, blue; black outside the mask."""
    k = min(3, len(maps.reference_names))
    rgb = np.zeros((*maps.thickness.shape, 3), dtype=np.float32)
    rgb[..., :k] = np.moveaxis(np.nan_to_num(maps.fractions[:k]), 0, -1)
    rgb *= maps.mask[..., None]
    return np.clip(rgb, 0, 1)


def _image(ax, fig, values, title, cmap="viridis", vmin=None, vmax=None, log=False):
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    if log:
        values = np.log10(np.where(values > 0, values, np.nan))
        finite = values[np.isfinite(values)]
        title = f"log10 {title}"
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    if not finite.size:  # e.g. E0 of a few-energy scan
        ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
        return
    if vmin is None:
        vmin, vmax = np.percentile(finite, [1, 99])
    im = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    bar.formatter.set_useOffset(False)  # energies read as eV, not offsets from 8.3e3
    bar.update_ticks()


def plot_maps(maps: Maps, path: str | Path, title: str = "") -> Path:
    """Save a one-page figure: fractions, RGB composite, thickness, R-factor, E0, white line,
    mask and clusters, the mean spectrum with its fit, and the registration shifts."""
    names = maps.reference_names
    panels = len(names) + 9
    cols = 4
    rows = int(np.ceil(panels / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.4 * rows))
    axes = axes.ravel()
    i = 0
    masked = np.where(maps.mask, 1.0, np.nan)
    for j, name in enumerate(names):
        _image(axes[i], fig, maps.fractions[j] * masked, f"fraction {name}", vmin=0, vmax=1)
        i += 1
    look = maps.products.get("first_look")  # no references: no fractions, no fit
    if look is not None and not names:
        height = look.images.get("white_line_height", maps.thickness * np.nan)
        _image(axes[i], fig, height * masked, "white-line height (normalized)", cmap="viridis")
    else:
        axes[i].imshow(rgb_composite(maps), interpolation="nearest")
        axes[i].set_title("RGB: " + " / ".join(names[:3]), fontsize=9)
        axes[i].set_xticks([])
        axes[i].set_yticks([])
    i += 1
    _image(axes[i], fig, maps.thickness, "thickness (edge step)", cmap="gray")
    i += 1
    if look is not None and not names:
        pre = look.images.get("pre_edge", maps.thickness * np.nan)
        _image(axes[i], fig, pre, "pre-edge level at E0", cmap="gray")
    else:
        _image(axes[i], fig, maps.r_factor, "R-factor", cmap="magma", log=True)
    i += 1
    _image(axes[i], fig, maps.edge_energy * masked, "edge energy E0 (eV)", cmap="plasma")
    i += 1
    _image(axes[i], fig, maps.peak_energy * masked, "white-line peak (eV)", cmap="plasma")
    i += 1
    _image(axes[i], fig, maps.mask.astype(float), "mask", cmap="gray", vmin=0, vmax=1)
    i += 1
    n_clusters = int(maps.clusters.max())
    _image(
        axes[i],
        fig,
        maps.clusters.astype(float),
        "phases: 1 A-rich, 2 mixed, 3 B-rich"
        if maps.metadata.get("method") == "two_energy"
        else "clusters",
        cmap="tab10",
        vmin=0,
        vmax=max(n_clusters, 1),
    )
    i += 1
    ax = axes[i]
    ax.plot(maps.fit_energies, maps.mean_spectrum, "k.", ms=3, label="mean in mask")
    if np.isfinite(maps.mean_fit).any():
        ax.plot(maps.fit_energies, maps.mean_fit, "r-", lw=1, label="fit")
    if look is not None and "cluster_spectra" in look.spectra:  # in the clusters' colours
        for c, spectrum in enumerate(look.spectra["cluster_spectra"], 1):
            colour = plt.cm.tab10(c / max(n_clusters, 1))
            ax.plot(look.energies, spectrum, "-", lw=1, color=colour, label=f"cluster{c}")
    ax.set_xlabel("energy (eV)", fontsize=8)
    ax.set_title(f"mean {maps.mean_spectrum_kind}", fontsize=9)
    ax.legend(fontsize=7)
    i += 1
    ax = axes[i]
    ax.plot(
        maps.energies
        if maps.shifts.shape[0] == maps.energies.size
        else np.arange(maps.shifts.shape[0]),
        maps.shifts,
        ".-",
        ms=3,
    )
    ax.legend(["dy", "dx"], fontsize=7)
    ax.set_title("registration shifts (px)", fontsize=9)
    i += 1
    for ax in axes[i:]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def parity_plot(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    path: str | Path,
    names: Sequence[str] | None = None,
    *,
    max_points: int = 5000,
) -> Path:
    """A PNG of predicted against true values, one panel per target, with MAE and R^2."""
    from sklearn.metrics import mean_absolute_error, r2_score

    y_true = np.asarray(y_true).reshape(len(y_true), -1)
    y_pred = np.asarray(y_pred).reshape(len(y_pred), -1)
    if y_true.shape != y_pred.shape:
        raise ModelError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ")
    m = y_true.shape[1]
    names = list(names) if names is not None else [f"target {i}" for i in range(m)]
    keep = np.random.default_rng(0).permutation(len(y_true))[:max_points]
    figure = Figure(figsize=(3.6 * m, 3.6), layout="constrained")
    for i, axes in enumerate(np.atleast_1d(figure.subplots(1, m))):
        t, p = y_true[keep, i], y_pred[keep, i]
        lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
        axes.plot([lo, hi], [lo, hi], color="0.5", lw=1)
        axes.scatter(t, p, s=3, alpha=0.4, linewidths=0)
        mae = mean_absolute_error(y_true[:, i], y_pred[:, i])
        r2 = r2_score(y_true[:, i], y_pred[:, i])
        axes.set(xlabel=f"true {names[i]}", ylabel="predicted", aspect="equal")
        axes.set_title(f"{names[i]}: MAE {mae:.3g}, R² {r2:.3f}", fontsize=9)
    path = Path(path)
    figure.savefig(path, dpi=100)
    return path


#: How :func:`plot_map_panels` draws each map: colour map, fixed range, log scale, masked.
_PANEL_STYLE = {
    "thickness": dict(title="thickness (edge step)", cmap="gray"),
    "error": dict(title="fit error", cmap="magma", log=True),
    "r_factor": dict(title="R-factor", cmap="magma", log=True),
    "chi2_red": dict(title="reduced chi-square", cmap="magma", log=True),
    "edge_energy": dict(title="edge energy E0 (eV)", cmap="plasma", masked=True),
    "peak_energy": dict(title="white-line peak (eV)", cmap="plasma", masked=True),
    "mask": dict(title="mask", cmap="gray", vmin=0, vmax=1),
    "clusters": dict(title="clusters", cmap="tab10", vmin=0),
}


def panel_grid(n: int, cols: int = 4) -> tuple[int, int]:
    """(rows, cols) of :func:`plot_map_panels`' grid for ``n`` panels."""
    cols = max(1, min(cols, n))
    return int(np.ceil(n / cols)), cols


def plot_map_panels(
    maps: Maps, path: str | Path, names: Sequence[str] | None = None, title: str = ""
) -> Path:
    """Save a figure of chosen maps, a panel per map with its colour bar and title; the file
    type (PNG, SVG, PDF) follows the suffix of ``path``.

    Parameters
    ----------
    maps : Maps
        2-D maps (a volume's: take :meth:`~xanes_stream.pipeline.results.Maps.middle_slice`).
    path : str or Path
        The figure file.
    names : sequence of str, optional
        ``fraction_<reference>`` and map names (``thickness``, ``r_factor``, ...), in panel
        order; None: every fraction, then every other map.
    title : str
        The figure's title.

    Returns
    -------
    Path
        ``path``. In an SVG each panel is the group ``map-<name>``.
    """
    fractions = {f"fraction_{n}": i for i, n in enumerate(maps.reference_names)}
    names = list(names) if names is not None else [*fractions, *_PANEL_STYLE]
    unknown = [n for n in names if n not in fractions and n not in _PANEL_STYLE]
    if unknown or not names:
        raise AnalysisError(f"no maps {unknown} to draw; have {[*fractions, *_PANEL_STYLE]}")
    rows, cols = panel_grid(len(names))
    figure = Figure(figsize=(4 * cols, 3.4 * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, cols)).ravel()
    masked = np.where(maps.mask, 1.0, np.nan)
    for ax, name in zip(axes, names, strict=False):
        ax.set_gid(f"map-{name}")
        if name in fractions:
            values = maps.fractions[fractions[name]] * masked
            _image(ax, figure, values, f"fraction {name[9:]}", vmin=0, vmax=1)
            continue
        style = dict(_PANEL_STYLE[name])
        values = np.asarray(getattr(maps, name), dtype=float)
        if style.pop("masked", False):
            values = values * masked
        if name == "clusters":
            style["vmax"] = max(int(np.nanmax(values, initial=0)), 1)
            if maps.metadata.get("method") == "two_energy":
                style["title"] = "phases: 1 A-rich, 2 mixed, 3 B-rich"
        _image(ax, figure, values, style.pop("title"), **style)
    for ax in axes[len(names) :]:
        ax.axis("off")
    if title:
        figure.suptitle(title)
    path = Path(path)
    figure.savefig(path, dpi=100)
    return path
