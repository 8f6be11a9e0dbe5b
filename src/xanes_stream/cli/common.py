"""What the commands share: reference and energy arguments, progress bars, the Tiled client,
the folder options."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import numpy as np

from xanes_stream.errors import XanesStreamError

log = logging.getLogger("xanes_stream")


def parse_reference(text: str, units: str | None = None):
    """``NAME=FILE`` (read in ``units``, None: as the file states or its values tell) or a
    bundled ``NAME``."""
    from xanes_stream.io.references import bundled_reference, read_reference

    if "=" in text:
        name, path = text.split("=", 1)
        return read_reference(path, name.strip(), units=units or "auto")
    return bundled_reference(text.strip())


def parse_energies(text: str | None) -> np.ndarray | None:
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


class ProgressBars:
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


def tiled_client(args: argparse.Namespace):
    """The Tiled server at ``--tiled-uri``, with the key from ``XANES_TILED_API_KEY``."""
    from xanes_stream.store.client import tiled_client as client_of

    try:
        return client_of(args.tiled_uri, require_key=True)
    except XanesStreamError:
        raise
    except Exception as exc:
        from xanes_stream.store.refusals import server_words

        if getattr(exc, "response", None) is not None:  # it answered: say what it said
            raise XanesStreamError(
                f"the Tiled at {args.tiled_uri} refused the connection: {server_words(exc)}"
            ) from None
        raise XanesStreamError(f"cannot reach Tiled at {args.tiled_uri}: {exc}") from None


def results_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results-dir",
        default=os.environ.get("XANES_RESULTS_DIR"),
        help="folder in the Tiled server's readable_storage: each scan's maps are written "
        "there as one HDF5 file and registered in one request (default $XANES_RESULTS_DIR; "
        "unset: every map is uploaded)",
    )


def state_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        help="spooled results and status.json "
        "(default $XANES_STATE_DIR or ~/.local/state/xanes-stream)",
    )


def dask_option(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--dask ADDRESS``; ``help`` says what runs on the cluster (default: the service's)."""
    parser.add_argument(
        "--dask",
        metavar="ADDRESS",
        default=None,
        help=help
        or "a Dask scheduler (tcp://host:8786): each scan is analysed on the cluster's "
        "workers, several at once, in-process again if the cluster goes away (default "
        "$XANES_DASK; unset: in this process)",
    )
