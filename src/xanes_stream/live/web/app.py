"""The live page's web app: JSON under /api, server-sent events, map PNGs under /maps.

Results of a done scan do not change, so its maps (read once from Tiled) and their PNGs are
cached, keyed by the scan's result URI and analysis time so that a re-analysis is seen.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from pathlib import Path
from urllib.parse import quote

import anyio
import numpy as np
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from xanes_stream.errors import StackNotKept, XanesStreamError
from xanes_stream.live.web.guard import HostNames, PageGuard
from xanes_stream.live.web.region_query import parse_pixel, parse_region
from xanes_stream.live.web.render import (
    REFERENCE_COLOURS,
    UnknownMap,
    candidate_colours,
    label_legend,
    layout,
    map_names,
    map_title,
    render_map,
    render_shifts,
    render_spectrum,
)
from xanes_stream.live.web.source import ScanSource
from xanes_stream.pipeline.results import IMAGE_MAPS, Maps, jsonable
from xanes_stream.spectra.pixel import fit_normalized
from xanes_stream.store.tiled_store import CORRECTIONS

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
#: Longest wait of one read of the event log; the stream notices a closing server this soon.
EVENT_WAIT = 1.0
KEEPALIVE_EVERY = 15  # empty waits between keep-alive comments
_MAPS_CACHED = 6
_PNGS_CACHED = 400


class _LRU(OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def put(self, key, value):
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)
        return value


class Results:
    """Maps of done scans read from Tiled through ``source``, their PNGs and digests, cached."""

    def __init__(self, source: ScanSource):
        self.source = source
        self._maps = _LRU(_MAPS_CACHED)
        self._pngs = _LRU(_PNGS_CACHED)
        self._digests: dict[tuple, dict] = {}  # small, kept for the series view
        self._lock = threading.Lock()  # one Tiled read / render at a time: 2 cores

    def key(self, uid: str) -> tuple:
        record = self.source.scan_record(uid)
        if record is not None and record.status != "done":
            raise NotReady(f"scan {uid[:8]} is {record.status}: no maps yet")
        return (uid, None) if record is None else (uid, record.uri, record.analysis_seconds)

    def maps(self, uid: str) -> Maps:
        key = self.key(uid)
        with self._lock:
            if key not in self._maps:
                try:
                    maps = self.source.read_maps(uid).middle_slice()  # of a volume
                except KeyError:
                    raise NoScan(f"no maps of scan {uid!r}") from None
                self._maps.put(key, maps)
            return self._maps[key]

    def png(self, uid: str, name: str) -> bytes:
        key = (*self.key(uid), name)
        if key in self._pngs:
            return self._pngs[key]
        maps = self.maps(uid)
        prefix = f"scan {maps.metadata.get('scan_id', '?')}: "
        with self._lock:
            if name == "spectrum":
                mean = self.mean_fit(maps)
                png = render_spectrum(
                    maps.fit_energies,
                    maps.mean_spectrum,
                    maps.mean_fit,
                    mean.get("components", {}),
                    f"{prefix}mean {mean['kind']} in the mask",
                    candidates=_candidates(maps, mean),
                )
            elif name == "shifts":
                png = render_shifts(maps.energies, maps.shifts, f"{prefix}registration shifts")
            else:
                png = render_map(maps, name, title_prefix=prefix)
        return self._pngs.put(key, png)

    def maps_file(self, uid: str, kind: str) -> Response:
        """Every map of scan ``uid`` as a ``kind`` download (see :func:`_maps_file`)."""
        maps = self.maps(uid)
        with self._lock:  # one render at a time, as for the PNGs
            return _maps_file(maps, uid, kind)

    def mean_fit(self, maps: Maps) -> dict:
        """The mean spectrum, its fit and the reference components (when references load)."""
        out = {
            "energies": maps.fit_energies,
            "normalized": maps.mean_spectrum,
            "fit": maps.mean_fit,
        }
        out["kind"] = maps.mean_spectrum_kind
        look = maps.products.get("first_look")
        if not maps.reference_names:  # a first look: its clusters' spectra, nothing fitted
            if look is not None and "cluster_spectra" in look.spectra:
                names = look.metadata.get("candidate_references", [])
                spectra = look.spectra["cluster_spectra"]
                out["candidates"] = dict(zip(names, spectra, strict=False))
                out["candidate_energies"] = look.energies
            return out
        own = maps.metadata.get("mean_components")
        if own:  # the optical-density model: analyze's own fit of the mean, background and all
            out["components"] = {n: np.asarray(v) for n, v in own["components"].items()}
            out["fractions"] = dict(own["fractions"])
            return out
        fit = maps.metadata.get("settings", {}).get("fit", {})
        try:
            refs = self.source.references(maps.reference_names)
            parts = fit_normalized(
                maps.mean_spectrum,
                maps.fit_energies,
                refs,
                method=fit.get("method", "nnls"),
                sum_to_one=fit.get("sum_to_one", "none"),
            )
            out["components"] = dict(zip(maps.reference_names, parts.components, strict=True))
            out["fractions"] = dict(zip(maps.reference_names, parts.coefficients, strict=True))
        except (XanesStreamError, ValueError) as exc:
            out["components_unavailable"] = str(exc)
        return out

    def digest(self, uid: str) -> dict:
        """Mean fractions and mean E0 in the mask, for the series view."""
        key = self.key(uid)
        if key not in self._digests:
            maps = self.maps(uid)
            inside = maps.mask.astype(bool)
            e0 = maps.edge_energy[inside] if inside.any() else maps.edge_energy.ravel()
            summary = maps.summary()
            self._digests[key] = {
                "uid": uid,
                "scan_id": maps.metadata.get("scan_id"),
                "time": maps.metadata.get("raw_time"),
                "mean_fractions": summary["mean_fractions"],
                "mean_e0": float(np.nanmean(e0)) if np.isfinite(e0).any() else None,
                "median_r_factor": summary["median_r_factor"],
            }
        return self._digests[key]


class NotReady(XanesStreamError):
    """A scan with no maps yet (receiving, queued, analysing or failed)."""


class NoScan(XanesStreamError):
    """A scan the service and the store do not know."""


def _candidates(maps: Maps, mean: dict) -> dict[str, tuple]:
    """A first look's candidate references as :func:`render_spectrum` draws them."""
    colours = candidate_colours(maps)
    energies = mean.get("candidate_energies")
    return {
        name: (energies, values, colours.get(name, "#555"))
        for name, values in (mean.get("candidates") or {}).items()
    }


def topography_view(maps: Maps) -> dict | None:
    """The valence topography for the page: a row per E0 level, and per level the
    probability of each local-curvature bin; None without the ``topography`` product."""
    product = maps.products.get("topography")
    tables = product.tables if product is not None else {}
    if "topography/levels" not in tables:
        return None
    levels = tables["topography/levels"]
    rows = [dict(zip(levels, values, strict=True)) for values in zip(*levels.values(), strict=True)]
    stored = tables.get("topography/histogram", {})
    histogram = {
        k: np.asarray(stored.get(k, ()), dtype=float) for k in ("level", "low", "high", "count")
    }
    curves = []
    for level in np.asarray(levels["level"], dtype=float):
        pick = histogram["level"] == level
        counts = histogram["count"][pick]
        total = counts.sum()
        curves.append(
            {
                "level": level,
                "curvature": 0.5 * (histogram["low"][pick] + histogram["high"][pick]),
                "probability": counts / total if total else counts,
            }
        )
    return {"levels": rows, "histograms": curves, "metadata": product.metadata}


def _json(value, status: int = 200) -> JSONResponse:
    return JSONResponse(jsonable(value, finite=True), status_code=status)


def _error(exc: Exception) -> JSONResponse:
    status = {NoScan: 404, UnknownMap: 404, NotReady: 409, StackNotKept: 409}.get(type(exc), 400)
    return _json({"error": str(exc)}, status)


_SPECTRUM_FORMATS = {"csv": "text/csv", "xdi": "text/plain", "prj": "application/gzip"}


def _spectrum_file(spectrum: dict, maps: Maps, kind: str) -> Response:
    """A region's spectrum and fit as a CSV, XDI or Athena project download."""
    import tempfile

    from xanes_stream.io.exports import export_spectrum, spectrum_metadata

    energies = np.asarray(spectrum["fit_energies"], dtype=float)
    metadata = {**spectrum_metadata(maps), "label": f"region {spectrum['uid'][:8]}"}
    metadata["comments"] = f"{spectrum['region']}, {spectrum['n_pixels']} pixels"
    with tempfile.TemporaryDirectory() as folder:
        path = export_spectrum(
            Path(folder) / f"region.{kind}",
            energies,
            np.asarray(spectrum["normalized"], dtype=float),
            fit=np.asarray(spectrum["fit"], dtype=float),
            components={k: np.asarray(v, float) for k, v in spectrum["components"].items()},
            metadata=metadata,
            format=kind,
        )
        body = path.read_bytes()
    name = f"region-{spectrum['uid'][:8]}.{kind}"
    return Response(
        body,
        media_type=_SPECTRUM_FORMATS[kind],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


_MAP_FORMATS = {"tiff": "image/tiff", "png": "image/png", "svg": "image/svg+xml"}


def _maps_file(maps: Maps, uid: str, kind: str) -> Response:
    """Every map of a scan as a download: a multi-page TIFF with names and pixel size (Fiji,
    ImageJ), or a PNG or SVG figure of the panels (as ``xanes-stream export`` writes them)."""
    import tempfile

    from xanes_stream.io.exports import export_maps

    name = f"maps-{quote(uid[:8], safe='')}.{kind}"
    with tempfile.TemporaryDirectory() as folder:
        title = f"scan {maps.metadata.get('scan_id', '?')} ({uid[:8]})"
        body = export_maps(Path(folder) / f"maps.{kind}", maps, kind, title=title).read_bytes()
    return Response(
        body,
        media_type=_MAP_FORMATS[kind],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def make_app(source: ScanSource, hosts: HostNames | None = None) -> Starlette:
    """The Starlette app of the live page of ``source`` (a running
    :class:`~xanes_stream.live.source.XanesService`, or anything that is a
    :class:`~xanes_stream.live.web.source.ScanSource`), answering only to ``hosts`` (by
    default this machine's local names) with the headers of :mod:`.guard`."""
    results = Results(source)
    closing = threading.Event()

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def health(request: Request) -> Response:
        return _json(source.status())

    def scans(request: Request) -> Response:
        seq = source.last_event()  # first: an event after it is streamed, none is lost
        records = [r.as_dict() for r in source.scan_records()]
        records.sort(key=lambda r: r.get("received_at") or 0.0)
        kept = set(source.kept_scans())
        for record in records:
            record["pixels_in_memory"] = record["uid"] in kept
        return _json({"seq": seq, "status": source.status(), "scans": records})

    async def events(request: Request) -> Response:
        text = request.headers.get("last-event-id") or request.query_params.get("since") or "0"
        try:
            since = int(text)
        except ValueError:
            return _json({"error": f"since must be an event number, not {text!r}"}, 400)
        return StreamingResponse(
            _stream(request, source, since, closing),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    def scan(request: Request) -> Response:
        uid = request.path_params["uid"]
        try:
            maps = results.maps(uid)
            mean = results.mean_fit(maps)
        except XanesStreamError as exc:
            return _error(exc)
        record = source.scan_record(uid)
        path = quote(uid, safe="")  # the uid is a document's: one path segment, whatever it is
        (width, height), box = layout(maps.thickness.shape)
        names = map_names(maps)
        md = maps.metadata
        return _json(
            {
                "uid": uid,
                "record": record.as_dict() if record else None,
                "scan_id": md.get("scan_id"),
                "sample": md.get("sample"),
                "series": md.get("series"),
                "reference_names": maps.reference_names,
                "colours": dict(zip(maps.reference_names, REFERENCE_COLOURS, strict=False))
                or candidate_colours(maps),
                "method": md.get("method", "fit"),
                "summary": maps.summary(),
                "mean_e0": results.digest(uid)["mean_e0"],
                "shape": list(maps.thickness.shape),
                "energies": maps.energies,
                "shifts": {"dy": maps.shifts[:, 0], "dx": maps.shifts[:, 1]},
                "mean": mean,
                "maps": [
                    {
                        "name": n,
                        "title": map_title(n, maps),
                        "url": f"/maps/{path}/{n}.png",
                        "legend": label_legend(maps, n),
                    }
                    for n in names
                ],
                "plots": {
                    "spectrum": f"/maps/{path}/spectrum.png",
                    "shifts": f"/maps/{path}/shifts.png",
                },
                "image": {"width": width, "height": height, "box": box},
                "pixels_in_memory": uid in source.kept_scans(),
                "normalization": md.get("normalization"),
                "topography": topography_view(maps),
                "thresholds": md.get("thresholds"),
                "corrections": {k: md[k] for k in CORRECTIONS if k in md},
                "notes": md.get("notes", []),
                "timings": md.get("timings"),
            }
        )

    def pixel(request: Request) -> Response:
        uid = request.path_params["uid"]
        try:
            y, x = int(request.query_params["y"]), int(request.query_params["x"])
        except (KeyError, ValueError):
            return _json({"error": "give the pixel as ?y=ROW&x=COLUMN (integers)"}, 400)
        try:
            maps = results.maps(uid)
            spectrum = source.pixel_spectrum(uid, y, x).as_dict()
        except XanesStreamError as exc:
            return _error(exc)
        spectrum.update(
            uid=uid,
            y=y,
            x=x,
            maps={
                "fractions": {
                    n: maps.fractions[i, y, x] for i, n in enumerate(maps.reference_names)
                },
                "thickness": maps.thickness[y, x],
                "r_factor": maps.r_factor[y, x],
                "edge_energy": maps.edge_energy[y, x],
                "in_mask": bool(maps.mask[y, x]),
            },
        )
        return _json(spectrum)

    def region(request: Request) -> Response:
        uid = request.path_params["uid"]
        try:
            wanted = parse_region(request.query_params)
            maps = results.maps(uid)  # 404 for a scan with no maps, 409 before they are done
            spectrum = source.region_spectrum(uid, wanted).as_dict()
        except XanesStreamError as exc:
            return _error(exc)
        spectrum.update(uid=uid, kind=wanted.kind, reference_names=maps.reference_names)
        wanted_format = request.query_params.get("format", "json")
        if wanted_format == "json":
            return _json(spectrum)
        if wanted_format not in _SPECTRUM_FORMATS:
            return _json(
                {"error": f"format must be json, csv, xdi or prj, not {wanted_format!r}"}, 400
            )
        return _spectrum_file(spectrum, maps, wanted_format)

    def value(request: Request) -> Response:
        """Every map's value at one pixel (for the value under the cursor)."""
        uid = request.path_params["uid"]
        try:
            y, x = parse_pixel(request.query_params)
            maps = results.maps(uid)
        except XanesStreamError as exc:
            return _error(exc)
        ny, nx = maps.thickness.shape
        if not (0 <= y < ny and 0 <= x < nx):
            return _json({"error": f"pixel ({y}, {x}) is outside the {ny} x {nx} image"}, 400)
        values = {
            f"fractions/{n}": maps.fractions[i, y, x] for i, n in enumerate(maps.reference_names)
        }
        values.update({name: getattr(maps, name)[y, x] for name in IMAGE_MAPS})
        values["mask"] = bool(values["mask"])
        try:
            particles = source.labels(uid).get("particles")
        except XanesStreamError:  # frames not kept: no particle labels at hand
            particles = None
        if particles is not None:
            values["particle"] = int(particles[y, x])
        return _json({"uid": uid, "y": y, "x": x, "values": values})

    def series(request: Request) -> Response:
        name = request.query_params.get("name")
        if not name:
            return _json({"error": "give the series as ?name=..."}, 400)
        records = source.scan_records()
        uids = [r.uid for r in records if r.series == name and r.status == "done"]
        points = []
        for uid in uids:
            try:
                points.append(results.digest(uid))
            except XanesStreamError as exc:
                log.warning("series %s: scan %s left out: %s", name, uid[:8], exc)
        points.sort(key=lambda p: p["time"] or 0.0)
        return _json({"name": name, "scans": points})

    def download(request: Request) -> Response:
        uid, kind = request.path_params["uid"], request.path_params["format"]
        if kind not in _MAP_FORMATS:
            return _json({"error": f"maps download as {', '.join(_MAP_FORMATS)}"}, 404)
        try:
            return results.maps_file(uid, kind)
        except XanesStreamError as exc:
            return _error(exc)

    def png(request: Request) -> Response:
        uid, name = request.path_params["uid"], request.path_params["name"]
        if not name.endswith(".png"):
            return _json({"error": "map URLs end in .png"}, 404)
        try:
            data = results.png(uid, name[: -len(".png")])
        except XanesStreamError as exc:
            return _error(exc)
        return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=60"})

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/health", health),
            Route("/api/scans", scans),
            Route("/api/events", events),
            Route("/api/series", series),
            Route("/api/scans/{uid}", scan),
            Route("/api/scans/{uid}/pixel", pixel),
            Route("/api/scans/{uid}/region", region),
            Route("/api/scans/{uid}/value", value),
            Route("/api/scans/{uid}/maps.{format}", download),
            Route("/maps/{uid}/{name:path}", png),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[Middleware(PageGuard, hosts=hosts or HostNames("127.0.0.1"))],
    )
    app.state.closing = closing
    app.state.results = results
    return app


async def _stream(request: Request, source: ScanSource, since: int, closing: threading.Event):
    """Server-sent events of ``source`` after ``since``, until the client or server goes.

    A client whose ``since`` is no longer (or not yet) in the log gets a ``reset`` event: it
    should re-read /api/scans.
    """
    seq = since
    yield "retry: 2000\n\n"
    last = source.last_event()
    if since > last:  # numbers from an earlier run of the service
        seq = last
        yield f"id: {seq}\nevent: reset\ndata: {{}}\n\n"
    idle = 0
    while not closing.is_set():
        if await request.is_disconnected():
            return
        found = await anyio.to_thread.run_sync(source.events_since, seq, EVENT_WAIT)
        if found and seq and found[0]["seq"] > seq + 1:
            yield f"id: {found[0]['seq'] - 1}\nevent: reset\ndata: {{}}\n\n"
        for event in found:
            data = json.dumps(jsonable(event, finite=True))
            yield f"id: {event['seq']}\nevent: {event['kind']}\ndata: {data}\n\n"
            seq = event["seq"]
        idle = 0 if found else idle + 1
        if idle >= KEEPALIVE_EVERY:
            idle = 0
            yield ": keep-alive\n\n"
