"""``xanes-stream analyze`` on a projections file, and ``example-tomo``: 3D XANES from
tomographic projections at every energy."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yaml

from xanes_stream.cli.common import log, parse_energies, parse_reference
from xanes_stream.errors import SettingsError, XanesStreamError


def _settings(path: str | None):
    """The analysis settings and the ``tomography`` section of a settings file."""
    from xanes_stream.pipeline.projections import split_settings
    from xanes_stream.pipeline.scan import volume_scan_settings
    from xanes_stream.pipeline.settings import load_settings

    source: dict = {}
    if path:
        try:
            source = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as exc:
            raise SettingsError(f"cannot read settings file {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise SettingsError(f"settings file {path} is not valid YAML: {exc}") from None
        if not isinstance(source, dict):
            raise SettingsError(f"settings file {path} must hold a mapping")
    rest, tomography = split_settings(source)
    return volume_scan_settings(load_settings(rest)), tomography


def analyze_projections_file(args: argparse.Namespace) -> int:
    """Reconstruct every energy of ``args.stack`` and write the volume's maps to ``args.out``."""
    from xanes_stream.io import write_maps
    from xanes_stream.io.projections import open_projections
    from xanes_stream.pipeline.projections import analyze_projections

    if args.dask:
        raise XanesStreamError("--dask is not supported for projections files yet")
    settings, tomography = _settings(args.settings)
    if getattr(args, "tomography_method", None):
        tomography = tomography.model_copy(update={"method": args.tomography_method})
    if getattr(args, "center", None) is not None:
        tomography = tomography.model_copy(update={"center": args.center})
    references = [parse_reference(r) for r in args.reference]
    if not references:
        raise XanesStreamError("give at least one --reference NAME=FILE (or a bundled NAME)")
    with open_projections(args.stack) as p:
        for note in p.notes:
            log.info("%s", note)
        energies = parse_energies(args.energies)
        energies = p.energies if energies is None else energies
        if energies is None:
            raise XanesStreamError(f"{args.stack}: no energies /exchange/energy; give --energies")
        mode = args.mode or p.mode
        shape = tuple(p.data.shape)
        maps = analyze_projections(
            p.data,
            energies,
            p.angles,
            references,
            mode=mode,
            settings=settings,
            tomography=tomography,
            progress=True,
        )
    if settings.products.enabled() or getattr(args, "products", None):
        from xanes_stream.pipeline.scan import VOLUME_PRODUCTS_NOTE

        maps.metadata["notes"].append(VOLUME_PRODUCTS_NOTE)
    maps.metadata["source"] = str(args.stack)
    write_maps(maps, args.out)
    tomo = maps.metadata["tomography"]
    centers = ", ".join(f"{c:.2f}" for c in tomo["centers"])
    print(
        f"projections {shape}: {tomo['method']} about centre {centers} "
        f"in {tomo['seconds']:.1f} s; {int(maps.mask.sum())} voxels in mask"
    )
    for note in maps.metadata["notes"]:
        print(f"  note: {note}")
    for i, name in enumerate(maps.reference_names):
        mean = float(np.nanmean(maps.fractions[i][maps.mask]))
        print(f"  mean fraction in mask {name}: {mean:.3f}")
    print(f"maps written to {args.out}")
    return 0


def cmd_example_tomo(args: argparse.Namespace) -> int:
    from xanes_stream.sim.tomography import make_tomo_phantom, write_projections

    phantom = make_tomo_phantom(
        args.size,
        energies=parse_energies(args.energies),
        references=tuple(args.references),
        n_angles=args.angles,
        center_offset=args.center_offset,
        seed=args.seed,
    )
    path = write_projections(phantom, args.out)
    print(
        f"tomographic XANES written to {path} (DXchange layout: /exchange/data "
        f"{phantom.projections.shape} transmission, /exchange/theta degrees, "
        "/exchange/energy eV)"
    )
    return 0


def add_commands(sub) -> None:
    """Register ``example-tomo`` (``analyze`` takes projections files itself)."""
    p = sub.add_parser(
        "example-tomo", help="write a synthetic tomographic XANES scan (projections per energy)"
    )
    p.add_argument("out", help="HDF5 file to write")
    p.add_argument("--size", type=int, default=32, help="voxels along each axis")
    p.add_argument("--angles", type=int, default=60, help="projections per energy over 0-180")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--center-offset", type=float, default=0.0, help="rotation axis offset, px")
    p.add_argument("--references", nargs="+", default=["NiO", "LiNiO2"])
    p.add_argument("--energies", help="eV (default: 20 across the Ni K-edge)")
    p.set_defaults(func=cmd_example_tomo)
