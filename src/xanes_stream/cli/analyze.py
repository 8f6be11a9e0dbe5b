"""``xanes-stream analyze`` and ``example-stack``: maps of a stack file, and a stack to try."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from xanes_stream.cli.common import (
    ProgressBars,
    dask_option,
    log,
    parse_energies,
    parse_reference,
)
from xanes_stream.errors import XanesStreamError


def cmd_analyze(args: argparse.Namespace) -> int:
    from xanes_stream.cli.tomography import analyze_projections_file
    from xanes_stream.io import read_stack, write_maps
    from xanes_stream.io.models import load_model
    from xanes_stream.io.projections import is_projections_file
    from xanes_stream.io.stacks import image_ndim
    from xanes_stream.pipeline.scan import analyze_scan
    from xanes_stream.pipeline.settings import load_settings

    if is_projections_file(args.stack):  # projections at every energy: reconstruct, then fit
        args.dask = args.dask or os.environ.get("XANES_DASK") or None
        return analyze_projections_file(args)
    settings = _enable_products(load_settings(args.settings), args.products)
    references = [parse_reference(r, args.reference_units) for r in args.reference]
    if not references and args.out_references is None:
        args.out_references = _beside(args.out)
    library = references
    if args.library:
        from xanes_stream.io.references import load_library

        library = load_library(args.library)
    elif settings.products.library:
        named = [r.name for r in references]
        library = references + [
            parse_reference(n) for n in settings.products.library if n not in named
        ]
    args.dask = args.dask or os.environ.get("XANES_DASK") or None
    if image_ndim(args.stack) == 4:
        if not references:
            raise XanesStreamError(
                "a 3-D volume needs at least one --reference NAME=FILE (or a bundled NAME); "
                "a first look without references is for 2-D stacks"
            )
        return _analyze_volume(args, settings, references)
    stack = read_stack(
        args.stack,
        energies=parse_energies(args.energies),
        flat_field=args.flat_field,
        energy_units=args.energy_units,
        i0=args.i0,
    )
    for note in stack.notes:
        log.info("%s", note)
    blocks = _rows_on_cluster(args, stack) if args.dask else None
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
            i0=stack.i0,
            mode=args.mode or "transmission",
            progress=bars,
            load_model=load_model,
            blocks=blocks,
            energy_offset=args.energy_offset,
            energy_units=stack.energy_units,
        )
    finally:
        bars.close()
        if blocks is not None:
            blocks.close()
    if blocks is not None:
        maps.metadata.update(dask=args.dask, analysed_on=sorted(blocks.workers))
        print(f"analysed on the Dask workers {', '.join(maps.metadata['analysed_on'])}")
    maps.metadata["source"] = str(args.stack)
    write_maps(maps, args.out)
    if references:
        _print_summary(maps, stack.frames.shape)
    else:
        _print_first_look(maps, stack.frames.shape, args.out_references)
    _print_products(maps.products)
    print(f"maps written to {args.out}")
    if args.plot:
        from xanes_stream.io.plotting import plot_maps

        plot_maps(maps, args.plot, title=Path(args.stack).name)
        print(f"figure written to {args.plot}")
    return 0


def _beside(out: str) -> Path:
    """The default folder of a first look's candidate references: ``<maps>_references``
    beside the maps file."""
    out = Path(out)
    return out.with_name(f"{out.stem}_references")


def _print_first_look(maps, shape, folder) -> None:
    """A first look's headline numbers, and its cluster spectra written as references."""
    from xanes_stream.io.candidates import write_candidate_references

    n, ny, nx = shape
    print(f"analysed {n} x {ny} x {nx} in {maps.metadata['timings']['total']:.2f} s")
    for note in maps.metadata["notes"]:
        print(f"  note: {note}")
    inside = maps.mask.astype(bool)
    if inside.any():
        e0 = np.nanmedian(maps.edge_energy[inside])
        print(f"median E0 in mask: {e0:.2f} eV; pixels in mask: {int(inside.sum())}")
    table = maps.products["first_look"].tables["clusters"]
    for i, c in enumerate(table["cluster"]):
        print(
            f"cluster{c}: {int(table['pixels'][i])} pixels, E0 {table['edge_energy'][i]:.2f} eV, "
            f"white line {table['peak_energy'][i]:.2f} eV"
        )
    for path in write_candidate_references(maps, folder):
        print(f"candidate reference written to {path} (use: --reference {path.stem}={path})")


def _analyze_volume(args: argparse.Namespace, settings, references) -> int:
    """3D XANES: ``img_xanes`` (n_energy, nz, ny, nx) analysed slice by slice, read in chunks."""
    import h5py

    from xanes_stream.io import write_maps
    from xanes_stream.pipeline.scan import analyze_scan

    energies = parse_energies(args.energies)
    units = args.energy_units or ("auto" if energies is not None else "keV")  # X_eng: keV
    with h5py.File(args.stack, "r") as f:
        if energies is None:
            if "X_eng" not in f:
                raise XanesStreamError(f"{args.stack}: no energies X_eng; give --energies")
            energies = f["X_eng"][()]
        volumes = f["img_xanes"]
        shape = tuple(volumes.shape)
        mode = args.mode or "absorbance"  # reconstructions are absorption
        if not args.dask:
            vmaps = analyze_scan(
                volumes,
                energies,
                references,
                settings=settings,
                mode=mode,
                progress=True,
                energy_units=units,
            )
    if args.dask:
        from xanes_stream.spectra.energies import to_ev

        energies = to_ev(energies, units)
        vmaps = _volume_on_cluster(args, energies, references, settings, mode)
    vmaps.metadata["source"] = str(args.stack)
    write_maps(vmaps, args.out)
    inside = vmaps.mask
    print(f"volume {shape}: {int(inside.sum())} voxels in mask")
    for note in vmaps.metadata["notes"]:
        print(f"  note: {note}")
    for i, name in enumerate(vmaps.reference_names):
        print(
            f"  mean fraction in mask {name}: {float(np.nanmean(vmaps.fractions[i][inside])):.3f}"
        )
    print(f"maps written to {args.out}")
    return 0


def _rows_on_cluster(args: argparse.Namespace, stack):
    """The Dask runner of a 2-D stack's blocks of rows: the workers read the raw frames of an
    HDF5 stack from the file (at its absolute path, which they must share)."""
    from xanes_stream.live.cluster_stack import H5Dataset, RowsOnCluster

    log.info("analysing %s on the Dask cluster at %s, in blocks of rows", args.stack, args.dask)
    path = Path(args.stack).resolve()
    file = None
    if path.suffix.lower() in (".h5", ".hdf5", ".hdf", ".nxs"):
        file = H5Dataset(str(path), "img_xanes", tuple(stack.frames.shape), stack.frames.dtype)
    return RowsOnCluster(args.dask, file=file, file_frames=stack.frames)


def _volume_on_cluster(args: argparse.Namespace, energies, references, settings, mode):
    """The volume's z-slabs fitted on the Dask workers, each reading its slabs from the file."""
    from xanes_stream.live.cluster_stack import volume_on_cluster
    from xanes_stream.pipeline.scan import VOLUME_PRODUCTS_NOTE, volume_scan_settings

    log.info("analysing %s on the Dask cluster at %s", args.stack, args.dask)
    vmaps = volume_on_cluster(
        str(Path(args.stack).resolve()),
        energies,
        references,
        address=args.dask,
        mode=mode,
        settings=volume_scan_settings(settings),
    )
    if set(settings.products.enabled()) - set(vmaps.products):  # topography runs on volumes
        vmaps.metadata["notes"].append(VOLUME_PRODUCTS_NOTE)
    print(f"analysed on the Dask workers {', '.join(vmaps.metadata['analysed_on'])}")
    return vmaps


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
        help="HDF5 (FXI/PyXAS layout, or NeXus NXstxm), multi-page TIFF, SDF .hdr (STXM, with "
        "its .xim images) or aXis2000 .ncb; an HDF5 img_xanes of (n_energy, nz, ny, nx) is "
        "analysed as 3D XANES, and so is a DXchange file of projections /exchange/data "
        "(n_energy, n_angles, nz, nx) with /exchange/theta, reconstructed per energy first",
    )
    p.add_argument(
        "--reference",
        "-r",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="reference spectrum (repeat); a bare NAME takes a bundled one (NiO, LiNiO2, Ni, Cu); "
        "none: a first look (E0, white line, edge step, PCA, clusters and their spectra)",
    )
    p.add_argument(
        "--reference-units",
        choices=["eV", "keV"],
        help="the unit of the --reference files' energies (default: what each file's header "
        "states, XDI '# Column.1: energy eV'; else told by the values, an error for 20-200)",
    )
    p.add_argument(
        "--out-references",
        type=Path,
        metavar="DIR",
        help="without --reference: where each cluster's mean spectrum is written as a candidate "
        "reference (cluster1.xdi, ...; default: <maps>_references beside the maps file)",
    )
    p.add_argument("--out", "-o", required=True, help="maps file to write (HDF5)")
    p.add_argument("--settings", help="YAML file of analysis settings")
    p.add_argument("--plot", help="save a figure of the maps (PNG)")
    p.add_argument("--energies", help="energies (eV or keV): a text file or a list")
    p.add_argument(
        "--energy-units",
        choices=["eV", "keV"],
        help="the unit of the energies (default: what the file states: FXI X_eng keV, STXM "
        "formats eV; for --energies, told by the values below 20 (keV) or from 200 (eV), "
        "an error between)",
    )
    p.add_argument(
        "--i0",
        default="auto",
        metavar="SOURCE",
        help="I0 of a raw-count STXM stack (.hdr, .ncb, NXstxm): auto (the *i0*.xsp file next "
        "to it or NXstxm control data, else the brightest pixels), an .xsp file, a region "
        "y0:y1,x0:x1, bright, or none",
    )
    p.add_argument(
        "--mode",
        choices=["transmission", "fluorescence", "absorbance"],
        help="what the images hold (default: transmission; absorbance for a 4-D volume)",
    )
    p.add_argument(
        "--energy-offset",
        type=float,
        metavar="EV",
        help="eV added to the stack's energies first (e.g. a foil's known minus measured "
        "E0); fit.energy_shift in --settings fits the references' shifts instead",
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
    dask_option(
        p,
        help="a Dask scheduler (tcp://host:8786): a 3-D volume's z-slabs are fitted on the "
        "cluster's workers, each reading its slabs from the file at the same path (default "
        "$XANES_DASK; unset: in this process)",
    )
    p.add_argument(
        "--tomography-method",
        choices=["fbp", "sart"],
        help="projections files: reconstruction (default fbp, or the settings' tomography.method)",
    )
    p.add_argument(
        "--center",
        type=float,
        help="projections files: detector column of the rotation axis (default: found)",
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
