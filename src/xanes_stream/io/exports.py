"""Maps and spectra in the formats other programs open.

- maps: a multi-page TIFF that Fiji/ImageJ opens as a stack, a page per map named by its
  label, with the pixel size when known (:func:`export_maps`, ``format="tiff"``); PNG and SVG
  figures, a panel per map with its colour bar (``"png"``, ``"svg"``, drawn by
  :func:`xanes_stream.io.plotting.plot_map_panels`);
- spectra: energy, mu, fit, residual and per-reference components as CSV, as XDI 1.0
  (written by Tiled's own XDI serializer) and as an Athena project (``.prj``: the gzip'd
  Perl-data text that Athena and Larch's ``read_athena`` read), by :func:`export_spectrum`.

The spectrum functions take plain arrays: the mean spectrum in the mask of a
:class:`~xanes_stream.pipeline.results.Maps` today, a region's spectrum as well tomorrow.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from xanes_stream.errors import AnalysisError
from xanes_stream.pipeline.results import IMAGE_MAPS, Maps

__all__ = [
    "MAP_FORMATS",
    "SPECTRUM_FORMATS",
    "export_maps",
    "export_mean_spectrum",
    "export_spectrum",
    "map_images",
    "pixel_size_of",
    "spectrum_columns",
    "spectrum_metadata",
]

MapFormat = Literal["tiff", "png", "svg"]
SpectrumFormat = Literal["csv", "xdi", "prj"]
MAP_FORMATS: tuple[str, ...] = ("tiff", "png", "svg")
SPECTRUM_FORMATS: tuple[str, ...] = ("csv", "xdi", "prj")
_SUFFIXES = {"tif": "tiff", "tiff": "tiff", "png": "png", "svg": "svg", "csv": "csv"}
_SUFFIXES.update(xdi="xdi", prj="prj")
#: Where a pixel size may be found in a maps' metadata (micrometres).
PIXEL_SIZE_KEYS = ("pixel_size_um", "pixel_size")


def fraction_key(reference: str) -> str:
    """The name of the fraction map of ``reference`` among :func:`map_images`."""
    return f"fraction_{reference}"


def map_images(maps: Maps, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The maps of ``maps`` by export name, in order: ``fraction_<reference>`` per reference,
    then ``thickness``, ``error``, ``r_factor``, ``chi2_red``, ``edge_energy``, ``peak_energy``,
    ``mask``, ``clusters``.

    Parameters
    ----------
    maps : Maps
        The maps (2-D, or a volume's with a z axis).
    names : sequence of str, optional
        Which maps, in this order; a reference's name alone means its fraction map. None: all.

    Returns
    -------
    dict of str to ndarray
        (ny, nx) (or (nz, ny, nx)) float32 images.

    Raises
    ------
    AnalysisError
        A name that is no map of these maps.
    """
    every = {fraction_key(n): maps.fractions[i] for i, n in enumerate(maps.reference_names)}
    every.update({name: getattr(maps, name) for name in IMAGE_MAPS})
    if names is None:
        chosen = list(every)
    else:
        chosen = []
        for name in names:
            key = fraction_key(name) if name in maps.reference_names else name
            if key not in every:
                raise AnalysisError(
                    f"there is no map {name!r}; these maps have {', '.join(every)} "
                    "(a reference's name alone means its fraction map)"
                )
            chosen.append(key)
    if not chosen:
        raise AnalysisError("no maps chosen to export")
    return {key: np.asarray(every[key], dtype=np.float32) for key in chosen}


def pixel_size_of(maps: Maps) -> float | None:
    """The pixel size in micrometres that ``maps.metadata`` records, else None (no profile or
    start document gives one today: pass it to :func:`export_maps`)."""
    for key in PIXEL_SIZE_KEYS:
        value = maps.metadata.get(key)
        if isinstance(value, int | float) and np.isfinite(value) and value > 0:
            return float(value)
    return None


def _format_of(path: Path, format: str | None, allowed: tuple[str, ...], what: str) -> str:
    chosen = format or _SUFFIXES.get(path.suffix.lower().lstrip("."))
    if chosen not in allowed:
        raise AnalysisError(
            f"cannot tell the {what} format of {path.name!r}: give one of {', '.join(allowed)}"
        )
    return chosen


def export_maps(
    path: str | Path,
    maps: Maps,
    format: MapFormat | None = None,
    *,
    names: Sequence[str] | None = None,
    pixel_size: float | None = None,
    title: str = "",
) -> Path:
    """Write chosen maps of ``maps`` to ``path`` as a TIFF stack or a figure.

    Parameters
    ----------
    path : str or Path
        The file to write.
    maps : Maps
        The maps.
    format : {"tiff", "png", "svg"}, optional
        None: from the file's suffix.
    names : sequence of str, optional
        Which maps (see :func:`map_images`); None: all.
    pixel_size : float, optional
        Micrometres per pixel, written as the TIFF's resolution; None: the maps' metadata's
        (:func:`pixel_size_of`), else no size.
    title : str
        The figure's title (PNG, SVG).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    AnalysisError
        An unknown format or map name, or a pixel size that is not a positive number.
    """
    path = Path(path)
    format = _format_of(path, format, MAP_FORMATS, "maps")
    images = map_images(maps, names)
    if format == "tiff":
        size = pixel_size if pixel_size is not None else pixel_size_of(maps)
        return _write_tiff(path, images, size)
    from xanes_stream.io.plotting import plot_map_panels

    shown = maps.middle_slice()  # a figure shows a volume's middle slice
    return plot_map_panels(shown, path, names=list(map_images(shown, list(images))), title=title)


def _write_tiff(path: Path, images: dict[str, np.ndarray], pixel_size: float | None) -> Path:
    """An ImageJ TIFF: a page per map (2-D maps), or a hyperstack of z-slices with a channel
    per map (a volume's), each page labelled."""
    import tifffile

    if pixel_size is not None and not (np.isfinite(pixel_size) and pixel_size > 0):
        raise AnalysisError(f"the pixel size must be a positive number of µm, not {pixel_size}")
    stack = np.stack(list(images.values()))  # (c, ny, nx) or (c, nz, ny, nx)
    labels = list(images)
    metadata: dict = {"unit": "um"} if pixel_size is not None else {}
    if stack.ndim == 4:  # ImageJ's order: z, then channel
        nz = stack.shape[1]
        stack = np.moveaxis(stack, 1, 0)
        metadata["axes"] = "ZCYX"
        labels = [f"{label} z{z}" for z in range(nz) for label in labels]
    else:
        metadata["axes"] = "ZYX"  # ImageJ shows the maps as slices named by their labels
    metadata["Labels"] = labels
    kwargs = {}
    if pixel_size is not None:
        kwargs["resolution"] = (1.0 / pixel_size, 1.0 / pixel_size)
    try:
        tifffile.imwrite(path, stack, imagej=True, metadata=metadata, **kwargs)
    except OSError as exc:
        raise AnalysisError(f"cannot write {path}: {exc}") from None
    return path


def spectrum_columns(
    energy: np.ndarray,
    spectrum: np.ndarray,
    *,
    fit: np.ndarray | None = None,
    components: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """The columns of an exported spectrum: ``energy``, ``mu``, and with a fit ``fit`` and
    ``residual`` (mu - fit), then one column per component (a reference's share of the fit).

    Raises
    ------
    AnalysisError
        Columns of different lengths, or no points.
    """
    columns = {"energy": energy, "mu": spectrum}
    if fit is not None and np.isfinite(np.asarray(fit, dtype=float)).any():
        columns["fit"] = fit
        columns["residual"] = np.asarray(spectrum, dtype=float) - np.asarray(fit, dtype=float)
    for name, values in (components or {}).items():
        columns[str(name)] = values
    out = {k: np.asarray(v, dtype=np.float64).ravel() for k, v in columns.items()}
    n = out["energy"].size
    if n == 0:
        raise AnalysisError("the spectrum has no points to export")
    wrong = [f"{k} ({v.size})" for k, v in out.items() if v.size != n]
    if wrong:
        raise AnalysisError(
            f"every column must have one value per energy ({n}); not {', '.join(wrong)}"
        )
    return out


def export_spectrum(
    path: str | Path,
    energy: np.ndarray,
    spectrum: np.ndarray,
    *,
    fit: np.ndarray | None = None,
    components: Mapping[str, np.ndarray] | None = None,
    metadata: Mapping | None = None,
    format: SpectrumFormat | None = None,
) -> Path:
    """Write a spectrum, its fit and the fit's components to ``path``.

    Parameters
    ----------
    path : str or Path
        The file to write.
    energy, spectrum : ndarray
        (n,) energies in eV and the spectrum (normalized mu, or optical density).
    fit : ndarray, optional
        (n,) the fit of ``spectrum``; its residual is written too. All NaN counts as none.
    components : mapping of str to ndarray, optional
        (n,) each reference's share of the fit, by reference name.
    metadata : mapping, optional
        Facts for the header: ``sample``, ``scan_id``, ``raw_uid``, ``element``, ``edge``,
        ``e0`` (eV), ``mono_d_spacing`` (Å), ``label`` (the Athena group name), ``normalized``
        (bool, default True), ``comments`` (text).
    format : {"csv", "xdi", "prj"}, optional
        None: from the file's suffix.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    AnalysisError
        An unknown format, or columns that do not match the energies.
    """
    path = Path(path)
    format = _format_of(path, format, SPECTRUM_FORMATS, "spectrum")
    columns = spectrum_columns(energy, spectrum, fit=fit, components=components)
    metadata = dict(metadata or {})
    writer = {"csv": _write_csv, "xdi": _write_xdi, "prj": _write_prj}[format]
    try:
        writer(path, columns, metadata)
    except OSError as exc:
        raise AnalysisError(f"cannot write {path}: {exc}") from None
    return path


def _header_facts(metadata: Mapping) -> list[str]:
    facts = [f"{k}: {metadata[k]}" for k in ("sample", "scan_id", "raw_uid") if metadata.get(k)]
    return [*facts, "written by xanes-stream"]


def _write_csv(path: Path, columns: dict[str, np.ndarray], metadata: Mapping) -> None:
    """Plain CSV, a header row of column names then numbers, as spreadsheets and pandas read
    it (the facts of the scan go in XDI and Athena headers, which have a place for them)."""
    lines = [",".join(columns)]
    table = np.column_stack(list(columns.values()))
    lines += [",".join(repr(float(v)) for v in row) for row in table]
    path.write_text("\n".join(lines) + "\n")


def _xdi_fields(columns: dict[str, np.ndarray], metadata: Mapping) -> dict[str, dict]:
    units = {"energy": "eV"}
    fields: dict[str, dict] = {
        "Column": {
            str(i + 1): f"{name} {units.get(name, '')}".strip() for i, name in enumerate(columns)
        }
    }
    element = {k: metadata[k] for k in ("element", "edge") if metadata.get(k)}
    if element:
        fields["Element"] = {"symbol" if k == "element" else k: v for k, v in element.items()}
    if metadata.get("mono_d_spacing"):
        fields["Mono"] = {"d_spacing": metadata["mono_d_spacing"]}
    sample = {"name": metadata.get("sample"), "id": metadata.get("raw_uid")}
    if any(sample.values()):
        fields["Sample"] = {k: v for k, v in sample.items() if v}
    if metadata.get("e0") is not None:
        fields["Scan"] = {"edge_energy": f"{float(metadata['e0']):.2f} eV"}
    if metadata.get("scan_id") is not None:
        fields["XANES_Stream"] = {"scan_id": metadata["scan_id"]}
    return fields


def _write_xdi(path: Path, columns: dict[str, np.ndarray], metadata: Mapping) -> None:
    """XDI 1.0 by Tiled's serializer (``tiled.serialization.xdi``): the same text Tiled gives
    for a table with XDI metadata."""
    import pandas as pd
    from tiled.serialization.xdi import serialize_xdi

    comments = "\n".join(_header_facts(metadata) + str(metadata.get("comments", "")).splitlines())
    frame = pd.DataFrame({name.replace(" ", "_"): values for name, values in columns.items()})
    text = serialize_xdi(
        "application/x-xdi",
        frame,
        {"xdi_version": "1.0", "fields": _xdi_fields(columns, metadata), "comments": comments},
    )
    path.write_bytes(text)


def _perl_text(text: object) -> str:
    """A Perl single-quoted string of ``text`` (quotes and backslashes dropped)."""
    return "'" + str(text).replace("\\", "").replace("'", "") + "'"


def _perl_list(values: Sequence) -> str:
    return "(" + ",".join(_perl_text(v) for v in values) + ")"


def _athena_key(i: int) -> str:
    """A five-letter Athena group key (Athena's own are random; these are reproducible)."""
    letters = []
    for _ in range(5):
        i, r = divmod(i, 26)
        letters.append(chr(ord("a") + r))
    return "".join(reversed(letters))


def _write_prj(path: Path, columns: dict[str, np.ndarray], metadata: Mapping) -> None:
    """An Athena project: the Perl-data text Athena writes, gzip'd, one record (group) per
    column after ``energy``; the spectrum's record is named by ``metadata['label']``."""
    from xanes_stream import __version__

    energy = columns["energy"]
    base = str(metadata.get("label") or metadata.get("sample") or "mean spectrum")
    normalized = bool(metadata.get("normalized", True))
    lines = [
        "# Athena project file -- Demeter version 0.9.26",
        f"# This file created at {time.strftime('%Y-%m-%dT%H:%M:%S')}",
        f"# Using xanes-stream {__version__}",
        "",
        "$journal = [];",
    ]
    for i, (name, values) in enumerate(columns.items()):
        if name == "energy":
            continue
        label = base if name == "mu" else f"{base} {name}"
        args = {
            "label": label,
            "datatype": "xanes",
            "is_xmu": "1",
            "is_nor": "1" if normalized else "0",
            "npts": str(energy.size),
            "xmin": f"{energy.min():.3f}",
            "xmax": f"{energy.max():.3f}",
        }
        if metadata.get("e0") is not None:
            args["bkg_e0"] = repr(float(metadata["e0"]))
        if metadata.get("element"):
            args["bkg_z"] = str(metadata["element"])
        if metadata.get("edge"):
            args["fft_edge"] = str(metadata["edge"])
        pairs = [item for key in sorted(args) for item in (key, args[key])]
        lines += [
            "",
            f"$old_group = {_perl_text(_athena_key(i))};",
            f"@args = {_perl_list(pairs)};",
            f"@x = {_perl_list([repr(float(e)) for e in energy])};",
            f"@y = {_perl_list([repr(float(v)) for v in values])};",
            "[record] # ",
        ]
    lines += ["", "1;", ""]
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines))


def spectrum_metadata(maps: Maps) -> dict:
    """The header facts :func:`export_spectrum` takes, from what ``maps.metadata`` records:
    sample, scan id, raw uid, E0, element and edge (when given), whether it is normalized
    (not after a few-energy scan, whose mean is optical density)."""
    md = maps.metadata
    out = {k: md[k] for k in ("sample", "scan_id", "raw_uid", "element", "edge") if md.get(k)}
    e0 = (md.get("normalization") or {}).get("e0")
    if isinstance(e0, int | float) and np.isfinite(e0):
        out["e0"] = float(e0)
    out["normalized"] = md.get("method", "fit") != "two_energy"
    label = md.get("sample") or (Path(str(md["source"])).stem if md.get("source") else "")
    out["label"] = f"{label} mean in mask".strip()
    return out


def export_mean_spectrum(
    path: str | Path,
    maps: Maps,
    format: SpectrumFormat | None = None,
    *,
    components: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Write the mean spectrum in the mask of ``maps`` with its fit (:func:`export_spectrum`;
    header facts from :func:`spectrum_metadata`).

    Raises
    ------
    AnalysisError
        Maps without a mean spectrum (as Tiled kept them before it was recorded).
    """
    if np.asarray(maps.mean_spectrum).size == 0:
        raise AnalysisError("these maps carry no mean spectrum to export")
    return export_spectrum(
        path,
        maps.fit_energies,
        maps.mean_spectrum,
        fit=maps.mean_fit,
        components=components,
        metadata=spectrum_metadata(maps),
        format=format,
    )
