"""``xanes-stream serve`` and ``status``: the live service, and how it is doing."""

from __future__ import annotations

import argparse
from pathlib import Path

from xanes_stream.cli.common import dask_option, log, results_dir_option, state_dir_option
from xanes_stream.errors import XanesStreamError


def service_config(args: argparse.Namespace):
    """The service's settings from ``serve``'s options (what they leave out: ``XANES_*``).

    Parameters
    ----------
    args : argparse.Namespace
        ``serve``'s parsed options.

    Returns
    -------
    ServiceConfig
        The settings.

    Raises
    ------
    XanesStreamError
        A setting is unusable (e.g. ``XANES_SOURCE`` neither zmq nor tiled), with why.
    """
    from pydantic import ValidationError

    from xanes_stream.live.config import ServiceConfig

    try:
        return _settings(ServiceConfig, args)
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise XanesStreamError(f"unusable service settings: {reasons}") from None


def _settings(cls, args: argparse.Namespace):
    return cls(
        tiled_uri=args.tiled_uri,
        zmq_address=args.zmq,
        **({"source": args.source} if args.source else {}),  # else XANES_SOURCE, else zmq
        **({"source_uri": args.source_uri} if args.source_uri else {}),
        profile=args.profile,
        results_root=args.root,
        results_dir=args.results_dir,
        allowed_roots=args.allowed_root,
        model_roots=args.model_root,
        allow_pickle=args.allow_pickle,
        **({"state_dir": args.state_dir} if args.state_dir else {}),
        **({"dask": args.dask} if args.dask else {}),  # else XANES_DASK, else in-process
        web_port=args.web_port,
        web_host=args.web_host,
        **({"web_allowed_hosts": args.web_allowed_host} if args.web_allowed_host else {}),
    )


def cmd_serve(args: argparse.Namespace) -> int:
    import signal
    import threading

    from xanes_stream.live.service import XanesService

    config = service_config(args)
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


def add_commands(sub) -> None:
    """Register ``serve`` and ``status``."""
    p = sub.add_parser("serve", help="analyse live energy scans from 0MQ or Tiled into Tiled")
    p.add_argument("--profile", default="sim", help="bundled profile name or a YAML file")
    p.add_argument("--tiled-uri", default="http://127.0.0.1:8000")
    p.add_argument("--zmq", default="127.0.0.1:5578", help="0MQ proxy output, host:port")
    p.add_argument(
        "--source",
        choices=("zmq", "tiled"),
        default=None,
        help="where the documents come from: the 0MQ proxy (--zmq), or the runs TiledWriter "
        "writes into Tiled (needs the server's streaming_cache; followed run by run); "
        "default: XANES_SOURCE, else zmq",
    )
    p.add_argument(
        "--source-uri",
        default=None,
        metavar="URI",
        help="with --source tiled: the Tiled container of the raw runs, if not the root of "
        "--tiled-uri (e.g. http://host:8000/api/v1/metadata/raw)",
    )
    p.add_argument(
        "--root",
        default="xanes",
        help="Tiled container for the maps: a key, or a path such as fxi/xanes",
    )
    results_dir_option(p)
    state_dir_option(p)
    dask_option(p)
    p.add_argument(
        "--allowed-root",
        action="append",
        default=[],
        help="folder detector files may be read from (repeat)",
    )
    p.add_argument(
        "--model-root",
        action="append",
        default=[],
        help="folder model files (the profile's products.ml.model_path) may be read from "
        "(repeat; beside the profile's model_roots)",
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
    p.add_argument(
        "--web-allowed-host",
        action="append",
        metavar="NAME",
        help="a host name the live page answers to (repeat; default: --web-host, localhost, "
        "127.0.0.1, ::1): a browser naming any other gets 400",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("status", help="how a running service is doing (from its state dir)")
    state_dir_option(p)
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(func=cmd_status)
