"""Command line: ``xanes-stream COMMAND`` (analyze, example-stack, serve, status, replay, ...)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import numpy as np

from xanes_stream.errors import XanesStreamError

log = logging.getLogger("xanes_stream")


def _parse_reference(text: str):
    from xanes_stream.io.references import bundled_reference, read_reference

    if "=" in text:
        name, path = text.split("=", 1)
        return read_reference(path, name.strip())
    return bundled_reference(text.strip())


def _parse_energies(text: str | None) -> np.ndarray | None:
    if text is None:
        return None
    path = Path(text)
    if path.is_file():
        return np.loadtxt(path, delimiter=None, ndmin=1, comments="#").ravel()
    try:
        return np.array([float(v) for v in text.replace(",", " ").split()])
    except ValueError:
        raise XanesStreamError(
            f"--energies {text!r} is neither a file nor a list of numbers"
        ) from None


class _Bars:
    """tqdm bars per analysis stage; they appear only for work longer than a second."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self._bars: dict[str, object] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        bar = self._bars.get(stage)
        if bar is None:
            labels = {"register": "registering frames", "fit": "fitting pixel blocks"}
            bar = self._tqdm(total=total, desc=labels.get(stage, stage), delay=1.0, leave=False)
            self._bars[stage] = bar
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()


def cmd_analyze(args: argparse.Namespace) -> int:
    from xanes_stream.io import read_stack, write_maps
    from xanes_stream.io.stacks import image_ndim
    from xanes_stream.pipeline.analyze import analyze
    from xanes_stream.pipeline.settings import load_settings

    settings = _enable_products(load_settings(args.settings), args.products)
    references = [_parse_reference(r) for r in args.reference]
    if not references:
        raise XanesStreamError("give at least one --reference NAME=FILE (or a bundled NAME)")
    library = references
    if args.library:
        from xanes_stream.io.references import load_library

        library = load_library(args.library)
    elif settings.products.library:
        named = [r.name for r in references]
        library = references + [
            _parse_reference(n) for n in settings.products.library if n not in named
        ]
    if image_ndim(args.stack) == 4:
        return _analyze_volume(args, settings, references)
    args.mode = args.mode or "transmission"
    stack = read_stack(
        args.stack, energies=_parse_energies(args.energies), flat_field=args.flat_field
    )
    for note in stack.notes:
        log.info("%s", note)
    bars = _Bars()
    try:
        maps = analyze(
            stack.frames,
            stack.energies,
            references,
            dark=stack.dark,
            flat=stack.flat,
            mode=args.mode,
            settings=settings,
            progress=bars,
        )
    finally:
        bars.close()
    if settings.products.enabled():
        from xanes_stream.io.models import load_model
        from xanes_stream.pipeline.products import run_products

        maps.products = run_products(
            stack.frames,
            stack.energies,
            maps,
            settings,
            library,
            load_model=load_model,
            dark=stack.dark,
            flat=stack.flat,
            mode=args.mode,
        )
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
    from xanes_stream.pipeline.volume import analyze_volume

    if settings.products.enabled():
        raise XanesStreamError("--products are for 2-D stacks; a volume gets the fitted maps")
    energies = _parse_energies(args.energies)
    with h5py.File(args.stack, "r") as f:
        if energies is None:
            if "X_eng" not in f:
                raise XanesStreamError(f"{args.stack}: no energies X_eng; give --energies")
            energies = f["X_eng"][()]
        volumes = f["img_xanes"]
        vmaps = analyze_volume(
            volumes,
            energies,
            references,
            mode=args.mode or "absorbance",  # reconstructions are absorption
            settings=settings.model_dump(exclude_unset=True),  # volume defaults + YAML's
            progress=True,
        )
    vmaps.metadata["source"] = str(args.stack)
    write_maps(vmaps, args.out)
    inside = vmaps.mask
    print(f"volume {tuple(volumes.shape)}: {int(inside.sum())} voxels in mask")
    for i, name in enumerate(vmaps.reference_names):
        print(
            f"  mean fraction in mask {name}: {float(np.nanmean(vmaps.fractions[i][inside])):.3f}"
        )
    print(f"maps written to {args.out}")
    return 0


def _stack_energies(text: str) -> np.ndarray:
    """Energies in eV from a stack file (its ``X_eng``), a text file, or a list."""
    path = Path(text)
    if path.suffix.lower() in (".h5", ".hdf5", ".hdf", ".nxs") and path.is_file():
        import h5py

        with h5py.File(path, "r") as f:
            if "X_eng" not in f:
                raise XanesStreamError(f"{path}: no energies X_eng")
            energies = np.asarray(f["X_eng"][()], dtype=float).ravel()
    else:
        energies = _parse_energies(text)
    from xanes_stream.spectra.energies import to_ev

    return to_ev(energies)


def cmd_ml_train(args: argparse.Namespace) -> int:
    """Train a fractions model on synthetic mixtures of the references; save it (skops)."""
    from xanes_stream.io.models import save_model
    from xanes_stream.io.plotting import parity_plot
    from xanes_stream.spectra import learn

    references = [_parse_reference(r) for r in args.reference]
    if len(references) < 2:
        raise XanesStreamError("give at least two --reference NAME=FILE (or bundled NAMEs)")
    energies = _stack_energies(args.energies)
    names = [r.name for r in references]
    x, y = learn.training_set(references, energies, args.n_train, args.noise, args.seed)
    split = int(0.8 * len(x))
    model = learn.train(
        x[:split], y[:split], args.model, seed=args.seed, energies=energies, targets=names
    )
    metrics = learn.evaluate(model, x[split:], y[split:])
    print(f"held-out ({metrics['n']} spectra): MAE {metrics['mae']:.4f}, R2 {metrics['r2']:.4f}")
    for name, m in metrics["per_target"].items():
        print(f"  {name}: MAE {m['mae']:.4f}, R2 {m['r2']:.4f}")
    save_model(model, args.out)
    print(f"model written to {args.out}")
    if args.parity:
        parity_plot(y[split:], model.predict(x[split:]), args.parity, names)
        print(f"parity plot written to {args.parity}")
    return 0


#: ``--products`` aliases: a decomposition method names the decomposition with that method.
_METHODS = ("pca", "nmf", "ica", "svd", "fa")


def _enable_products(settings, names: str | None):
    """``settings`` with the comma-separated analyses ``names`` enabled (``nmf``, ``pca``, ...
    enable the decomposition with that method); other parameters stay as the settings say."""
    if not names:
        return settings
    products = settings.products
    known = products.analyses()
    for name in (n.strip() for n in names.split(",") if n.strip()):
        update: dict = {"enabled": True}
        if name in _METHODS:
            name, update["method"] = "decomposition", name
        if name not in known:
            raise XanesStreamError(
                f"--products: unknown analysis {name!r}; have {known + list(_METHODS)}"
            )
        section = getattr(products, name).model_copy(update=update)
        products = products.model_copy(update={name: section})
    return settings.model_copy(update={"products": products})


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
        energies=_parse_energies(args.energies),
    )
    print(f"example stack written to {path} (FXI layout: X_eng in keV, img_xanes transmission)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Tiled, the 0MQ proxy and the service on this machine; a simulated in-operando series."""
    from xanes_stream.devtools.demo import run_demo

    return run_demo(
        Path(args.output),
        n_scans=args.scans,
        size=args.size,
        keep=args.keep,
        detector=args.detector,
        web_port=None if args.no_web else args.web_port,
    )


def _tiled_client(args: argparse.Namespace):
    import os

    from tiled.client import from_uri

    key = os.environ.get("XANES_TILED_API_KEY")
    if not key:
        raise XanesStreamError("set XANES_TILED_API_KEY to the Tiled server's API key")
    try:
        return from_uri(args.tiled_uri, api_key=key)
    except Exception as exc:
        raise XanesStreamError(f"cannot reach Tiled at {args.tiled_uri}: {exc}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    import signal
    import threading

    from xanes_stream.live.service import ServiceConfig, XanesService

    config = ServiceConfig(
        tiled_uri=args.tiled_uri,
        zmq_address=args.zmq,
        profile=args.profile,
        results_root=args.root,
        results_dir=args.results_dir,
        allowed_roots=args.allowed_root,
        allow_pickle=args.allow_pickle,
        **({"state_dir": args.state_dir} if args.state_dir else {}),
        web_port=args.web_port,
        web_host=args.web_host,
    )
    if config.api_key is None:
        raise XanesStreamError("set XANES_TILED_API_KEY: results are written with it")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    service = XanesService(config).start()
    if service.web is not None:
        print(f"live page: {service.web.url}", flush=True)
    try:
        while not stop.wait(60):
            log.info("status: %s", service.status())
    finally:
        service.stop()
    return 0


def cmd_references(args: argparse.Namespace) -> int:
    from xanes_stream.store.tiled_store import TiledResultStore

    store = TiledResultStore(_tiled_client(args))
    if args.action == "add":
        if args.name and len(args.files) != 1:
            raise XanesStreamError("--name goes with exactly one file")
        from xanes_stream.io.references import read_reference

        for path in args.files:
            reference = read_reference(path, args.name)
            uri = store.add_reference(reference)
            kind = "normalized" if reference.normalized else "raw"
            print(
                f"added {reference.name} ({kind}, {reference.energy.size} points, "
                f"{reference.energy[0]:.0f}-{reference.energy[-1]:.0f} eV): {uri}"
            )
    else:
        library = (
            store.client[store.references_root] if store.references_root in store.client else {}
        )
        for name in library:
            md = library[name].metadata
            print(f"{name}: {'normalized' if md.get('normalized') else 'raw'}, {md.get('source')}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from xanes_stream.live.replay import find_runs, replay
    from xanes_stream.pipeline.settings import load_settings
    from xanes_stream.profiles import load_profile

    client = _tiled_client(args)
    if args.file:
        return _replay_file(args, client)
    scan_ids = None
    if args.scan_ids:
        low, _, high = args.scan_ids.partition("-")
        try:
            scan_ids = (int(low), int(high or low))
        except ValueError:
            raise XanesStreamError(f"--scan-ids {args.scan_ids!r}: use N or N-M") from None
    uids = find_runs(
        client,
        uids=args.uids,
        scan_ids=scan_ids,
        sample=args.sample,
        plan_name=args.plan,
        since=args.since,
        until=args.until,
    )
    if not uids:
        raise XanesStreamError("no raw runs match")
    profile = load_profile(args.profile)
    settings = load_settings(args.settings) if args.settings else None
    bars = _Bars()
    try:
        records = replay(
            client,
            uids,
            profile=profile,
            settings=settings,
            root=args.root,
            results_dir=args.results_dir,
            allowed_roots=args.allowed_root,
            progress=lambda done, total: bars("replay", done, total),
        )
    finally:
        bars.close()
    return _print_records(records)


def _print_records(records) -> int:
    for record in records:
        outcome = record.uri if record.status == "done" else f"{record.status}: {record.reason}"
        print(f"{record.uid[:8]}  scan {record.scan_id}  {outcome}")
    return 0 if all(r.status == "done" for r in records) else 1


def _replay_file(args: argparse.Namespace, client) -> int:
    from xanes_stream.live.replay import replay_file
    from xanes_stream.pipeline.settings import load_settings
    from xanes_stream.profiles import load_profile

    bars = _Bars()
    try:
        records = replay_file(
            client,
            args.file,
            profile=load_profile(args.profile),
            settings=load_settings(args.settings) if args.settings else None,
            root=args.root,
            results_dir=args.results_dir,
            allowed_roots=args.allowed_root,
            progress=lambda done, total: bars("runs", done, total),
        )
    finally:
        bars.close()
    if not records:
        raise XanesStreamError(f"no runs in {args.file}")
    return _print_records(records)


def _results_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results-dir",
        default=os.environ.get("XANES_RESULTS_DIR"),
        help="folder in the Tiled server's readable_storage: each scan's maps are written "
        "there as one HDF5 file and registered in one request (default $XANES_RESULTS_DIR; "
        "unset: every map is uploaded)",
    )


def _state_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        help="spooled results and status.json "
        "(default $XANES_STATE_DIR or ~/.local/state/xanes-stream)",
    )


def cmd_status(args: argparse.Namespace) -> int:
    import json
    import time

    from xanes_stream.live.service import ServiceConfig

    folder = Path(args.state_dir or ServiceConfig().state_dir)
    path = folder / "status.json"
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        raise XanesStreamError(f"no status at {path}: is the service running there?") from None
    age = time.time() - float(status.get("updated") or 0)
    if args.json:
        print(json.dumps(status, indent=1))
    else:
        for key, value in status.items():
            if key != "updated":
                print(f"{key:>20}: {value}")
        print(f"{'status written':>20}: {age:.0f} s ago")
    if age > 10:
        print(f"the service has not written its status for {age:.0f} s: is it running?")
        return 1
    return 0 if status.get("listening") and not status.get("spooled") else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xanes-stream", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

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

    p = sub.add_parser("serve", help="analyse live energy scans from 0MQ into Tiled")
    p.add_argument("--profile", default="sim", help="bundled profile name or a YAML file")
    p.add_argument("--tiled-uri", default="http://127.0.0.1:8000")
    p.add_argument("--zmq", default="127.0.0.1:5578", help="0MQ proxy output, host:port")
    p.add_argument("--root", default="xanes", help="Tiled container for the maps")
    _results_dir_option(p)
    _state_dir_option(p)
    p.add_argument(
        "--allowed-root",
        action="append",
        default=[],
        help="folder detector files may be read from (repeat)",
    )
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        help="accept pickled documents (unsafe: only on a trusted network)",
    )
    p.add_argument(
        "--web-port", type=int, default=None, help="serve the live page on this port (0: any)"
    )
    p.add_argument("--web-host", default="127.0.0.1", help="address of the live page")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("status", help="how a running service is doing (from its state dir)")
    _state_dir_option(p)
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("replay", help="re-analyse archived raw runs from Tiled")
    p.add_argument("uids", nargs="*", help="raw run uids (or use the filters)")
    p.add_argument(
        "--file", help="replay the runs in a documents file instead (.jsonl or .msgpack)"
    )
    p.add_argument("--scan-ids", help="N or N-M, inclusive")
    p.add_argument("--sample")
    p.add_argument("--plan", help="plan name")
    p.add_argument("--since", help="ISO date/time of the start document")
    p.add_argument("--until", help="ISO date/time of the start document")
    p.add_argument("--profile", default="sim")
    p.add_argument("--settings", help="YAML of analysis settings to use instead")
    p.add_argument("--root", default="xanes", help="Tiled container for the maps")
    _results_dir_option(p)
    p.add_argument(
        "--allowed-root",
        action="append",
        default=[],
        help="folder detector files may be read from (repeat)",
    )
    p.add_argument("--tiled-uri", default="http://127.0.0.1:8000")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("ml", help="machine-learning models of fractions")
    ml_sub = p.add_subparsers(dest="ml_command", required=True)
    p = ml_sub.add_parser("train", help="train on synthetic mixtures of the references")
    p.add_argument(
        "--reference", "-r", action="append", default=[], metavar="NAME=FILE",
        help="reference spectrum (repeat); a bare NAME takes a bundled one",
    )  # fmt: skip
    p.add_argument(
        "--energies", required=True, help="the scan's energies: a stack file, text file or list"
    )
    p.add_argument("--out", "-o", required=True, help="model file to write (.skops)")
    p.add_argument("--model", default="mlp", choices=["mlp", "forest"])
    p.add_argument("--parity", help="save a parity plot of the held-out spectra (PNG)")
    p.add_argument("--n-train", type=int, default=3000, help="synthetic spectra (80%% to train)")
    p.add_argument("--noise", type=float, default=0.03, help="largest noise, normalized units")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_ml_train)

    p = sub.add_parser("references", help="the reference library in Tiled (/references)")
    p.add_argument("action", choices=["add", "list"])
    p.add_argument("files", nargs="*", help="spectra to add (XDI or two-column text)")
    p.add_argument("--name", help="library name (default: the file's stem)")
    p.add_argument("--tiled-uri", default="http://127.0.0.1:8000")
    p.set_defaults(func=cmd_references)

    p = sub.add_parser("demo", help="run the main job end to end on embedded defaults")
    p.add_argument("--output", default="demo-output", help="folder for what the demo writes")
    p.add_argument("--scans", type=int, default=4, help="scans in the in-operando series")
    p.add_argument("--size", type=int, default=128, help="frame size in pixels")
    p.add_argument("--detector", default="hdf5", choices=["hdf5", "inline"])
    p.add_argument("--keep", action="store_true", help="keep serving until Ctrl-C")
    p.add_argument("--web-port", type=int, default=0, help="port of the live page (0: any)")
    p.add_argument("--no-web", action="store_true", help="no live page")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not args.verbose:  # one line per HTTP request drowns what a person needs to read
        for chatty in ("httpx", "httpcore", "bluesky"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        return args.func(args)
    except XanesStreamError as exc:
        print(f"xanes-stream: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xanes-stream: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
