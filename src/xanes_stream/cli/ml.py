"""``xanes-stream ml train``: a fractions model trained on synthetic mixtures of the references."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from xanes_stream.cli.common import parse_energies, parse_reference
from xanes_stream.errors import XanesStreamError


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
        energies = parse_energies(text)
    from xanes_stream.spectra.energies import to_ev

    return to_ev(energies)


def cmd_ml_train(args: argparse.Namespace) -> int:
    """Train a fractions model on synthetic mixtures of the references; save it (skops)."""
    from xanes_stream.io.models import save_model
    from xanes_stream.io.plotting import parity_plot
    from xanes_stream.spectra import learn

    references = [parse_reference(r) for r in args.reference]
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


def add_commands(sub) -> None:
    """Register ``ml train``."""
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
