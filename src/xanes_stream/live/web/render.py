"""PNG images of maps with colour bars, at a fixed layout so a click can be mapped to a pixel.

Figures are made with matplotlib's object API and the Agg canvas (no pyplot state), so pages
can be drawn from several threads.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import BoundaryNorm, ListedColormap, to_hex
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from xanes_stream.errors import XanesStreamError
from xanes_stream.io.plotting import rgb_composite
from xanes_stream.pipeline.results import IMAGE_MAPS, Maps

#: Colours of references 1, 2, 3 (as in the RGB composite), then more.
REFERENCE_COLOURS = ("#d62728", "#2ca02c", "#1f77b4", "#9467bd", "#ff7f0e", "#8c564b")
_DPI = 100
_TITLE_PX, _PAD_PX, _BAR_PX = 30, 8, 92  # space above, around, and right of the image
_NAN_COLOUR = "#d0d0d0"


class UnknownMap(XanesStreamError):
    """A map name that the scan does not have."""


@dataclass(frozen=True)
class MapSpec:
    """How one map is drawn: title (with units), colour map, scale."""

    title: str
    cmap: str = "viridis"
    vmin: float | None = None
    vmax: float | None = None
    log: bool = False
    in_mask: bool = False  # grey outside the mask


MAP_SPECS = {
    "thickness": MapSpec("thickness: edge step (OD)", "gray"),
    "r_factor": MapSpec("R-factor (log10)", "magma", log=True),
    "error": MapSpec("fit error (RMS, normalized)", "magma", in_mask=True),
    "chi2_red": MapSpec("reduced chi-square (log10)", "magma", log=True, in_mask=True),
    "edge_energy": MapSpec("edge energy E0 (eV)", "plasma", in_mask=True),
    "peak_energy": MapSpec("white-line peak (eV)", "plasma", in_mask=True),
    "mask": MapSpec("mask: pixels analysed", "gray", 0.0, 1.0),
    "clusters": MapSpec("k-means clusters", "tab10"),
    # a first look's (no references), from its product
    "white_line_height": MapSpec("white-line height (normalized)", "viridis", in_mask=True),
    "pre_edge": MapSpec("pre-edge level at E0 (OD)", "gray"),
}

#: The maps of a first look (no references): no fractions, no fit quality, its own images.
FIRST_LOOK_MAPS = ("thickness", "edge_energy", "peak_energy", "white_line_height", "pre_edge")


def _first_look_images(maps: Maps) -> dict[str, np.ndarray]:
    look = maps.products.get("first_look")
    return look.images if look is not None and not maps.reference_names else {}


def map_names(maps: Maps) -> list[str]:
    """Every image this scan has, as served: fractions first, the composite, then the rest
    (a first look's: its edge, white-line and pre-edge maps, the mask and the clusters)."""
    if not maps.reference_names:
        images = _first_look_images(maps)
        return [
            *(n for n in FIRST_LOOK_MAPS if n in IMAGE_MAPS or n in images),
            "mask",
            "clusters",
        ]
    return [
        *(f"fractions/{name}" for name in maps.reference_names),
        "rgb",
        "thickness",
        "r_factor",
        "edge_energy",
        "peak_energy",
        "mask",
        "clusters",
        "error",
        "chi2_red",
        *(
            f"fraction_errors/{name}"
            for name in (maps.reference_names if maps.fraction_errors is not None else ())
        ),
    ]


#: Maps of labels (a few discrete values): drawn with a key of each label's colour.
LABEL_MAPS = ("clusters", "mask")


def label_legend(maps: Maps, name: str) -> list[dict] | None:
    """The discrete colour key of a label map: ``[{"value", "label", "colour"}, ...]`` in the
    colours :func:`render_map` draws them; None for a map of continuous values.

    Parameters
    ----------
    maps : Maps
        The scan's maps.
    name : str
        A served map name.

    Returns
    -------
    list of dict or None
    """
    if name == "mask":
        return [
            {"value": 0, "label": "outside the mask", "colour": to_hex(colormaps["gray"](0.0))},
            {"value": 1, "label": "in the mask", "colour": to_hex(colormaps["gray"](1.0))},
        ]
    if name != "clusters":
        return None
    colours = _cluster_colours(maps)
    return [
        {"value": i, "label": "no cluster" if i == 0 else f"cluster {i}", "colour": c}
        for i, c in enumerate(colours)
    ]


def candidate_colours(maps: Maps) -> dict[str, str]:
    """A first look's candidate references (``cluster1``, ...) in their clusters' colours."""
    colours = _cluster_colours(maps)
    look = maps.products.get("first_look")
    names = look.metadata.get("candidate_references", []) if look is not None else []
    return {name: colours[i % (len(colours) - 1) + 1] for i, name in enumerate(names)}


def _cluster_colours(maps: Maps) -> list[str]:
    """Colour of cluster 0 (none), 1, 2, ...: grey, then tab10 (then tab20 past 10)."""
    values = np.asarray(maps.clusters, dtype=float)
    finite = values[np.isfinite(values)]
    n = max(int(finite.max()) if finite.size else 0, 1)
    palette = colormaps["tab10" if n <= 10 else "tab20"].colors
    return [_NAN_COLOUR, *(to_hex(palette[i % len(palette)]) for i in range(n))]


def layout(shape: tuple[int, int]) -> tuple[tuple[int, int], tuple[float, float, float, float]]:
    """Figure size (w, h) in px and the image's box (left, top, width, height) as fractions
    of it, for a map of ``shape`` (ny, nx). The image fills its box exactly (no letterbox)."""
    ny, nx = shape
    longest = float(np.clip(max(ny, nx), 320, 512))
    scale = longest / max(ny, nx)
    w_img, h_img = max(round(nx * scale), 40), max(round(ny * scale), 40)
    width = _PAD_PX + w_img + _BAR_PX
    height = _TITLE_PX + h_img + _PAD_PX
    box = (_PAD_PX / width, _TITLE_PX / height, w_img / width, h_img / height)
    return (width, height), box


def map_title(name: str, maps: Maps) -> str:
    """A person's title of a served map name."""
    if name.startswith("fractions/"):
        return f"fraction of {name.split('/', 1)[1]}"
    if name.startswith("fraction_errors/"):
        if maps.fraction_errors is None or name not in map_names(maps):
            raise UnknownMap(f"no map {name!r}; have {map_names(maps)}")
        return f"1-sigma error of the {name.split('/', 1)[1]} fraction"
    if name == "rgb":
        return "RGB: " + " / ".join(maps.reference_names[:3])
    if name not in MAP_SPECS or name not in map_names(maps):
        raise UnknownMap(f"no map {name!r}; have {map_names(maps)}")
    return MAP_SPECS[name].title


def render_map(maps: Maps, name: str, *, title_prefix: str = "") -> bytes:
    """The PNG of one map (``fractions/<reference>``, ``rgb``, or an image map's name)."""
    title = map_title(name, maps)
    (width, height), (left, top, w, h) = layout(maps.thickness.shape)
    fig = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((left, 1 - top - h, w, h))
    ax.set_xticks([])
    ax.set_yticks([])
    upscale = w * width >= maps.thickness.shape[1]
    interpolation = "nearest" if upscale else "antialiased"
    label = f"{title_prefix}{title}"
    fig.text(left, 1 - 0.5 * top / 1.0, label, fontsize=10, va="center", ha="left")
    cax = fig.add_axes((left + w + 10 / width, 1 - top - h, 14 / width, h))
    if name == "rgb":
        ax.imshow(rgb_composite(maps), interpolation=interpolation, aspect="auto")
        cax.axis("off")
        handles = [
            Patch(color=c, label=n)
            for n, c in zip(maps.reference_names[:3], ("red", "lime", "blue"), strict=False)
        ]
        cax.legend(handles=handles, loc="upper left", fontsize=8, frameon=False, borderpad=0)
        return _png(fig)
    inside = np.where(maps.mask, 1.0, np.nan)
    if name.startswith("fractions/"):
        values = maps.fraction(name.split("/", 1)[1]) * inside
        spec = MapSpec(title, "viridis", 0.0, 1.0)
    elif name.startswith("fraction_errors/"):
        index = maps.reference_names.index(name.split("/", 1)[1])
        values = maps.fraction_errors[index] * inside
        spec = MapSpec(title, "magma")
    else:
        spec = MAP_SPECS[name]
        images = _first_look_images(maps)
        values = np.asarray(images[name] if name in images else getattr(maps, name), dtype=float)
        if spec.in_mask:
            values = values * inside
    values = np.asarray(values, dtype=float)
    if spec.log:
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.log10(np.where(values > 0, values, np.nan))
    cmap = colormaps[spec.cmap].with_extremes(bad=_NAN_COLOUR)
    vmin, vmax, norm = spec.vmin, spec.vmax, None
    finite = values[np.isfinite(values)]
    if vmin is None and finite.size:
        vmin, vmax = (float(v) for v in np.percentile(finite, [1, 99]))
        if vmin == vmax:
            vmin, vmax = vmin - 0.5, vmax + 0.5
    if name == "clusters":
        colours = _cluster_colours(maps)  # 0: outside the mask
        n = len(colours) - 1
        cmap = ListedColormap(colours).with_extremes(bad=_NAN_COLOUR)
        norm = BoundaryNorm(np.arange(-0.5, n + 1.5), cmap.N)
        vmin = vmax = None
    image = ax.imshow(
        values,
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        norm=norm,
        interpolation=interpolation,
        aspect="auto",
    )
    legend = label_legend(maps, name)
    if legend is not None:  # discrete labels: a key of colours, not a colour bar
        cax.axis("off")
        short = {"outside the mask": "out", "in the mask": "in", "no cluster": "none"}  # 92 px
        handles = [
            Patch(facecolor=e["colour"], edgecolor="#888", label=short.get(e["label"], e["value"]))
            for e in legend
        ]
        cax.legend(handles=handles, loc="upper left", fontsize=8, frameon=False, borderpad=0)
        return _png(fig)
    bar = fig.colorbar(image, cax=cax)
    bar.ax.tick_params(labelsize=8)
    bar.formatter.set_useOffset(False)  # 8345 eV, not 45 + 8.3e3
    bar.update_ticks()
    return _png(fig)


def render_spectrum(
    energies: np.ndarray,
    spectrum: np.ndarray,
    fit: np.ndarray,
    components: dict[str, np.ndarray],
    title: str,
    candidates: dict[str, tuple[np.ndarray, np.ndarray, str]] | None = None,
) -> bytes:
    """A PNG of a normalized spectrum, its fit and the fitted reference components; a first
    look's ``candidates`` (name -> energies, spectrum, colour) as solid lines."""
    fig = Figure(figsize=(5.6, 3.4), dpi=_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(energies, spectrum, "k.", ms=4, label="data")
    if np.isfinite(np.asarray(fit, dtype=float)).any():  # a first look has none
        ax.plot(energies, fit, "-", color="#444", lw=1.5, label="fit")
    for (name, values), colour in zip(components.items(), REFERENCE_COLOURS, strict=False):
        ax.plot(energies, values, "--", color=colour, lw=1, label=name)
    for name, (x, values, colour) in (candidates or {}).items():
        ax.plot(x, values, "-", color=colour, lw=1, label=f"{name} (candidate reference)")
    ax.set_xlabel("energy (eV)")
    ax.set_ylabel("normalized absorption")
    ax.set_title(title, fontsize=10)
    ax.xaxis.get_major_formatter().set_useOffset(False)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return _png(fig)


def render_shifts(energies: np.ndarray, shifts: np.ndarray, title: str) -> bytes:
    """A PNG of the registration shifts (dy, dx) in pixels against energy."""
    fig = Figure(figsize=(5.6, 3.0), dpi=_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = energies if len(energies) == len(shifts) else np.arange(len(shifts))
    ax.plot(x, shifts[:, 0], ".-", ms=3, label="dy")
    ax.plot(x, shifts[:, 1], ".-", ms=3, label="dx")
    ax.set_xlabel("energy (eV)" if x is energies else "frame")
    ax.set_ylabel("shift (px)")
    ax.set_title(title, fontsize=10)
    ax.xaxis.get_major_formatter().set_useOffset(False)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return _png(fig)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()
