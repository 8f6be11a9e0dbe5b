"""Exports read back: TIFF stacks (pages, labels, pixel size), figures (a panel per map),
CSV and XDI spectra (numbers and header), Athena projects (parsed here, as Larch parses them)."""

import ast
import dataclasses
import gzip
import xml.etree.ElementTree as ET

import matplotlib.image
import numpy as np
import pytest
import tifffile

from xanes_stream.errors import AnalysisError
from xanes_stream.io.exports import (
    export_maps,
    export_mean_spectrum,
    export_spectrum,
    map_images,
)
from xanes_stream.io.maps_file import read_maps, write_maps
from xanes_stream.io.plotting import panel_grid
from xanes_stream.pipeline.results import IMAGE_MAPS
from xanes_stream.pipeline.scan import analyze_scan
from xanes_stream.sim.phantom import make_phantom

REFERENCES = ("NiO", "LiNiO2")


@pytest.fixture(scope="module")
def maps(tmp_path_factory):
    """Maps of a noisy phantom from the real references, as read back from a maps file."""
    p = make_phantom((40, 48), references=REFERENCES, n_particles=3, drift=0, seed=11)
    made = analyze_scan(p.frames, p.energies, p.references, dark=p.dark, flat=p.flat)
    path = write_maps(made, tmp_path_factory.mktemp("maps") / "maps.h5", {"sample": "NMC"})
    return read_maps(path)


def test_tiff_has_a_labelled_page_per_map_and_the_pixel_size(maps, tmp_path):
    path = export_maps(tmp_path / "maps.tif", maps, pixel_size=0.25)
    expected = map_images(maps)
    assert list(expected)[:2] == ["fraction_NiO", "fraction_LiNiO2"]
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        assert len(tif.pages) == len(expected)
        assert tif.imagej_metadata["Labels"] == list(expected)
        assert tif.imagej_metadata["unit"] == "um"
        num, den = tif.pages[0].tags["XResolution"].value
        assert num / den == pytest.approx(4.0)  # pixels per µm
        stack = tif.asarray()
    for page, image in zip(stack, expected.values(), strict=True):
        np.testing.assert_array_equal(page, image)
    np.testing.assert_array_equal(stack[0], maps.fractions[0].astype(np.float32))


def test_tiff_of_chosen_maps_without_a_pixel_size(maps, tmp_path):
    path = export_maps(tmp_path / "two.tiff", maps, names=["LiNiO2", "thickness"])
    with tifffile.TiffFile(path) as tif:
        assert tif.imagej_metadata["Labels"] == ["fraction_LiNiO2", "thickness"]
        assert "unit" not in tif.imagej_metadata
        np.testing.assert_array_equal(tif.asarray()[1], maps.thickness.astype(np.float32))


def test_unknown_map_or_format_is_refused_in_words(maps, tmp_path):
    with pytest.raises(AnalysisError, match="no map 'Fe2O3'"):
        export_maps(tmp_path / "x.tif", maps, names=["Fe2O3"])
    with pytest.raises(AnalysisError, match="format"):
        export_maps(tmp_path / "x.jpg", maps)
    with pytest.raises(AnalysisError, match="pixel size"):
        export_maps(tmp_path / "x.tif", maps, pixel_size=-1)


def test_svg_has_one_panel_per_map(maps, tmp_path):
    names = ["NiO", "LiNiO2", "thickness", "r_factor", "mask"]
    path = export_maps(tmp_path / "maps.svg", maps, names=names, title="NMC")
    ids = [el.get("id") for el in ET.parse(path).iter() if el.get("id", "").startswith("map-")]
    assert ids == [f"map-{n}" for n in ("fraction_NiO", "fraction_LiNiO2", *names[2:])]


def test_png_parses_and_its_grid_fits_the_maps(maps, tmp_path):
    path = export_maps(tmp_path / "maps.png", maps)
    image = matplotlib.image.imread(path)
    rows, cols = panel_grid(len(map_images(maps)))
    assert (rows, cols) == (3, 4)  # 2 fractions + 8 maps
    assert image.shape[:2] == (rows * 340, cols * 400)  # 4 x 3.4 in per panel at 100 dpi
    assert image[..., :3].std() > 0.05  # something is drawn


def _spectrum(maps):
    energy, mu, fit = maps.fit_energies, maps.mean_spectrum, maps.mean_fit
    components = {"NiO": 0.4 * mu, "LiNiO2": 0.6 * mu}
    return energy, mu, fit, components


def test_csv_round_trips(maps, tmp_path):
    energy, mu, fit, components = _spectrum(maps)
    path = export_spectrum(
        tmp_path / "mean.csv", energy, mu, fit=fit, components=components, metadata=maps.metadata
    )
    table = np.genfromtxt(path, delimiter=",", names=True, comments="#")
    assert table.dtype.names == ("energy", "mu", "fit", "residual", "NiO", "LiNiO2")
    np.testing.assert_allclose(table["energy"], energy, rtol=1e-12)
    np.testing.assert_allclose(table["mu"], mu, rtol=1e-7)
    np.testing.assert_allclose(table["residual"], mu.astype(float) - fit, atol=1e-7)
    np.testing.assert_allclose(table["LiNiO2"], 0.6 * mu, rtol=1e-7)
    assert path.read_text().startswith("energy,mu,fit,residual,NiO,LiNiO2\n")


def parse_xdi(text):
    """Header fields, column labels and data of an XDI 1.0 file, by the specification."""
    lines = text.splitlines()
    assert lines[0].startswith("# XDI/1.0")
    fields, i = {}, 1
    while not lines[i].startswith("# ///"):
        key, value = lines[i][2:].split(":", 1)
        fields[key.strip()] = value.strip()
        i += 1
    while not lines[i].startswith("#----") and not lines[i].startswith("# ----"):
        i += 1
    labels = lines[i + 1][1:].split()
    data = np.array([[float(v) for v in line.split()] for line in lines[i + 2 :] if line])
    return fields, labels, data


def test_xdi_header_parses_and_numbers_round_trip(maps, tmp_path):
    energy, mu, fit, _ = _spectrum(maps)
    md = {"sample": "NMC", "element": "Ni", "edge": "K", "e0": 8345.2, "scan_id": 7}
    path = export_spectrum(tmp_path / "mean.xdi", energy, mu, fit=fit, metadata=md)
    fields, labels, data = parse_xdi(path.read_text())
    assert fields["Column.1"] == "energy eV"
    assert [fields[f"Column.{i}"] for i in (2, 3, 4)] == ["mu", "fit", "residual"]
    assert fields["Element.symbol"] == "Ni" and fields["Element.edge"] == "K"
    assert fields["Sample.name"] == "NMC"
    assert labels == ["energy", "mu", "fit", "residual"]
    np.testing.assert_allclose(data[:, 0], energy, rtol=1e-12)
    np.testing.assert_allclose(data[:, 1], mu, rtol=1e-7)
    np.testing.assert_allclose(data[:, 2], fit, rtol=1e-7)


def parse_athena(path):
    """The groups of an Athena project: gunzip, then each ``@args``/``@x``/``@y`` list is a
    Perl list of quoted strings, which reads as a Python tuple (as Larch's reader does)."""
    groups, group = [], {}
    with gzip.open(path, "rt") as f:
        text = f.read()
    assert text.startswith("# Athena project file -- Demeter version")
    for line in text.splitlines():
        if line.startswith("#") or len(line) < 2:
            continue
        key, _, value = line.partition("=")
        key = key.strip().lstrip("$@")
        if key == "[record] #" or line.startswith("[record]"):
            groups.append(group)
            group = {}
        elif key in ("args", "x", "y"):
            group[key] = ast.literal_eval(value.strip().rstrip(";"))
        elif key == "old_group":
            group["key"] = ast.literal_eval(value.strip().rstrip(";"))
    out = {}
    for group in groups:
        args = dict(zip(group["args"][::2], group["args"][1::2], strict=True))
        out[args["label"]] = (
            np.array(group["x"], dtype=float),
            np.array(group["y"], dtype=float),
            args,
        )
    return out


def test_athena_project_has_a_group_per_curve(maps, tmp_path):
    energy, mu, fit, components = _spectrum(maps)
    path = export_spectrum(
        tmp_path / "mean.prj",
        energy,
        mu,
        fit=fit,
        components=components,
        metadata={"label": "NMC mean", "e0": 8345.0},
    )
    groups = parse_athena(path)
    assert list(groups) == [
        "NMC mean",
        "NMC mean fit",
        "NMC mean residual",
        "NMC mean NiO",
        "NMC mean LiNiO2",
    ]
    x, y, args = groups["NMC mean"]
    np.testing.assert_allclose(x, energy, rtol=1e-12)
    np.testing.assert_allclose(y, mu, rtol=1e-7)
    np.testing.assert_allclose(groups["NMC mean fit"][1], fit, rtol=1e-7)
    assert args["is_nor"] == "1" and float(args["bkg_e0"]) == 8345.0
    assert int(args["npts"]) == energy.size


def test_spectrum_columns_must_match_the_energies(tmp_path):
    with pytest.raises(AnalysisError, match="one value per energy"):
        export_spectrum(tmp_path / "x.csv", np.arange(5.0), np.arange(4.0))
    with pytest.raises(AnalysisError, match="format"):
        export_spectrum(tmp_path / "x.dat", np.arange(5.0), np.arange(5.0))


def test_a_fit_of_nan_is_no_fit(tmp_path):
    """A few-energy scan's mean fit is NaN: no fit and no residual columns are written."""
    e = np.array([8300.0, 8350.0, 8400.0])
    path = export_spectrum(tmp_path / "od.csv", e, [0.1, 0.5, 0.9], fit=np.full(3, np.nan))
    assert np.genfromtxt(path, delimiter=",", names=True).dtype.names == ("energy", "mu")


def test_volume_tiff_is_a_hyperstack_and_its_figure_the_middle_slice(maps, tmp_path):
    """A volume's maps: z-slices of channels, one per map, each page labelled with its z."""
    nz = 3
    scale = np.arange(1, nz + 1, dtype=np.float32)[:, None, None]
    images = {name: getattr(maps, name) * scale for name in ("thickness", "r_factor")}
    volume = dataclasses.replace(
        maps,
        fractions=maps.fractions[:, None] * scale,
        **images,
        **{n: np.stack([getattr(maps, n)] * nz) for n in IMAGE_MAPS if n not in images},
    )
    path = export_maps(tmp_path / "volume.tif", volume, names=["NiO", "thickness"])
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].axes == "ZCYX" and len(tif.pages) == 2 * nz
        assert tif.imagej_metadata["Labels"][:3] == [
            "fraction_NiO z0",
            "thickness z0",
            "fraction_NiO z1",
        ]
        stack = tif.asarray()
    np.testing.assert_array_equal(stack[2, 1], maps.thickness.astype(np.float32) * 3)
    svg = export_maps(tmp_path / "volume.svg", volume, names=["thickness"])
    assert ET.parse(svg).getroot().tag.endswith("svg")


def test_mean_spectrum_carries_what_the_maps_record(maps, tmp_path):
    path = export_mean_spectrum(tmp_path / "mean.xdi", maps)
    fields, _, data = parse_xdi(path.read_text())
    assert fields["Sample.name"] == "NMC"
    e0 = maps.metadata["normalization"]["e0"]
    assert fields["Scan.edge_energy"] == f"{e0:.2f} eV"
    np.testing.assert_allclose(data[:, 1], maps.mean_spectrum, rtol=1e-7)
    groups = parse_athena(export_mean_spectrum(tmp_path / "mean.prj", maps))
    assert list(groups) == ["NMC mean in mask", "NMC mean in mask fit", "NMC mean in mask residual"]
