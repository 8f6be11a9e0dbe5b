"""``xanes-stream analyze`` and ``example-stack``: maps of a stack file, and a stack to try."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from xanes_stream.cli.common import ProgressBars, log, parse_energies, parse_reference
from xanes_stream.errors import XanesStreamError


def cmd_analyze(args: argparse.Namespace) -> int:
    from xanes_stream.io import read_stack, write_maps
    from xanes_stream.io.models import load_model
    from xanes_stream.io.stacks import image_ndim
    from xanes_stream.pipeline.scan import analyze_scan
    from xanes_stream.pipeline.settings import load_settings

    settings = _enable_products(load_settings(args.settings), args.products)
    references = [parse_reference(r) for r in args.reference]
    if not references:
        raise XanesStreamError("give at least one --reference NAME=FILE (or a bundled NAME)")
    library = references
    if args.library:
        from xanes_stream.io.references import load_library

        library = load_library(args.library)
    elif settings.products.library:
        named = [r.name for r in references]
        library = references + [
            parse_reference(n) for n in settings.products.library if n not in named
        ]
    if image_ndim(args.stack) == 4:
        return _analyze_volume(args, settings, references)
    stack = read_stack(
        args.stack, energies=parse_energies(args.energies), flat_field=args.flat_field
    )
    for note in stack.notes:
        log.info("%s", note)
    bars = ProgressBars()
    try:
        maps = analyze_scan(
            stack.frames,
            stack.energies,
            references,
            settings=settings,
            library=library,
            dark=stack.dark,
            flat=stack.flat,
            mode=args.mode or "transmission",
            progress=bars,
            load_model=load_model,
        )
    finally:
        bars.close()
    maps.metadata["source"] = str(args.stack)
    write_maps(maps, args.out)
    _print_summary(maps, stack.frames.shape)
    _print_products(maps.products)
    print(f"maps written to {args.out}")
    if args.plot:
        from xanes_stream.io.plotting import plot_maps

        plot_maps(maps, args.plot, title=Path(args.stack).name)
        print(f"figure written to {args.plot}")
    return 0


def _analyze_volume(args: argparse.Namespace, settings, references) -> int:
    """3D XANES: ``img_xanes`` (n_energy, nz, ny, nx) analysed slice by slice, read in chunks."""
    import h5py

    from xanes_stream.io import write_maps
    from xanes_stream.pipeline.scan import analyze_scan

    energies = parse_energies(args.energies)
    with h5py.File(args.stack, "r") as f:
        if energies is None:
            if "X_eng" not in f:
                raise XanesStreamError(f"{args.stack}: no energies X_eng; give --energies")
            energies = f["X_eng"][()]
        volumes = f["img_xanes"]
        vmaps = analyze_scan(
            volumes,
            energies,
            references,
            settings=settings,
            mode=args.mode or "absorbance",  # reconstructions are absorption
            progress=True,
        )
    vmaps.metadata["source"] = str(args.stack)
    write_maps(vmaps, args.out)
    inside = vmaps.mask
    print(f"volume {tuple(volumes.shape)}: {int(inside.sum())} voxels in mask")
    for note in vmaps.metadata["notes"]:
        print(f"  note: {note}")
    for i, name in enumerate(vmaps.reference_names):
        print(
            f"  mean fraction in mask {name}: {float(np.nanmean(vmaps.fractions[i][inside])):.3f}"
        )
    print(f"maps written to {args.out}")
    return 0


#: ``--products`` aliases: a decomposition method names the decomposition with that method.
_METHODS = ("pca", "nmf", "ica", "svd", "fa")


def _enable_products(settings, names: str | None):
    """``settings`` with the comma-separated analyses ``names`` enabled (``nmf``, ``pca``, ...
    enable the decomposition with that method); other parameters stay as the settings say."""
    from xanes_stream.pipeline.settings import merge_settings

    if not names:
        return settings
    known = settings.products.analyses()
    update: dict[str, dict] = {}
    for name in (n.strip() for n in names.split(",") if n.strip()):
        section: dict = {"enabled": True}
        if name in _METHODS:
            name, section["method"] = "decomposition", name
        if name not in known:
            raise XanesStreamError(
                f"--products: unknown analysis {name!r}; have {known + list(_METHODS)}"
            )
        update.setdefault(name, {}).update(section)
    return merge_settings(settings, {"products": update})


def _print_products(products: dict) -> None:
    """One line per product: its headline numbers, or its error."""
    headline = ("n_particles", "n_active", "k", "method", "n_components", "references", "e1", "e2")
    for name, product in products.items():
        meta = product.metadata
        if meta.get("error"):
            print(f"product {name}: FAILED: {meta['error']}")
            continue
        facts = [f"{key}={meta[key]}" for key in headline if key in meta]
        keys = [*product.images, *product.spectra, *product.tables]
        print(f"product {name}: {' '.join(facts) or 'done'} ({', '.join(keys)})")


def _print_summary(maps, shape) -> None:
    summary = maps.summary()
    timings = maps.metadata["timings"]
    n, ny, nx = shape
    print(f"analysed {n} x {ny} x {nx} in {timings['total']:.2f} s")
    for note in maps.metadata["notes"]:
        print(f"  note: {note}")
    width = max(len(n) for n in maps.reference_names) + 2
    print(f"{'reference':<{width}} mean fraction in mask")
    for name, value in summary["mean_fractions"].items():
        print(f"{name:<{width}} {value:.3f}")
    share = summary["mask_pixels"] / (ny * nx)
    print(
        f"median R-factor in mask: {summary['median_r_factor']:.4g}; "
        f"pixels in mask: {summary['mask_pixels']} ({share:.0%})"
    )


def cmd_example_stack(args: argparse.Namespace) -> int:
    from xanes_stream.sim.example import write_example_stack

    path = write_example_stack(
        args.out,
        shape=(args.size, args.size),
        seed=args.seed,
        references=tuple(args.references),
        energies=parse_energies(args.energies),
    )
    print(f"example stack written to {path} (FXI layout: X_eng in keV, img_xanes transmission)")
    return 0


def add_commands(sub) -> None:
    """Register ``analyze`` and ``example-stack``."""
    p = sub.add_parser("analyze", help="chemical maps of a stack file")
    p.add_argument(
        "stack",
        help="HDF5 (FXI/PyXAS layout) or multi-page TIFF; an HDF5 img_xanes of "
        "(n_energy, nz, ny, nx) is analysed as 3D XANES",
    )
    p.add_argument(
        "--reference",
        "-r",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="reference spectrum (repeat); a bare NAME takes a bundled one (NiO, LiNiO2, Ni, Cu)",
    )
    p.add_argument("--out", "-o", required=True, help="maps file to write (HDF5)")
    p.add_argument("--settings", help="YAML file of analysis settings")
    p.add_argument("--plot", help="save a figure of the maps (PNG)")
    p.add_argument("--energies", help="energies (eV or keV): a text file or a list")
    p.add_argument(
        "--mode",
        choices=["transmission", "fluorescence", "absorbance"],
        help="what the images hold (default: transmission; absorbance for a 4-D volume)",
    )
    p.add_argument(
        "--flat-field",
        default="auto",
        choices=["auto", "apply", "skip"],
        help="use img_bkg/img_dark of an HDF5 stack (auto: only on raw counts)",
    )
    p.add_argument(
        "--products",
        help="analyses to run beyond the fit, comma-separated: decomposition (or pca, nmf, ica, "
        "svd, fa), clustering, combinatorial, two_energy, particles, fronts, ml; "
        "parameters come from --settings (products: ...)",
    )
    p.add_argument(
        "--library",
        help="folder of reference spectra for combinatorial fitting and component matching "
        "(default: the --reference spectra)",
    )
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("example-stack", help="write a synthetic Ni K-edge stack to try things")
    p.add_argument("out", help="HDF5 file to write")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--references", nargs="+", default=["NiO", "LiNiO2", "Ni"])
    p.add_argument(
        "--energies", help="eV, e.g. '8290 8344 8351' for a few-energy scan (default: 81)"
    )
    p.set_defaults(func=cmd_example_stack)
