"""Maps in Tiled: one container per analysed raw run, ``/<root>/<raw uid>``, spec ``XANESMaps``.

The root may be a path, ``fxi/xanes``: one Tiled for several beamlines
(:mod:`xanes_stream.store.roots`).

Layout (what clients rely on; see the README):

- ``fractions`` (k, ny, nx), one layer per reference; its metadata ``reference_names`` says
  which (also the container's ``references``); ``fraction_errors`` (k, ny, nx), the 1-sigma
  standard error of each fraction, the same metadata (with ``fit.errors``; never for the
  two-energy method);
- ``thickness``, ``error``, ``r_factor``, ``chi2_red``, ``edge_energy``, ``peak_energy``,
  ``mask``, ``clusters`` (ny, nx); ``shifts`` (n, 2); ``energies`` (n,);
- metadata: ``status`` (done | failed), ``raw_uid``, ``scan_id``, ``sample``, ``plan_name``,
  ``energies``, ``references``, ``settings``, ``summary``, ``mean_spectrum`` (energies,
  spectrum, fit), ``method`` (``fit``, or ``two_energy`` for a scan of 2-4 energies, whose
  fit-quality and edge-energy maps are NaN, or ``first_look`` for a scan without references:
  ``fractions`` (0, ny, nx), NaN fit quality, ``first_look`` (note, energies,
  ``cluster_spectra`` by candidate name ``cluster1``, ...) in the metadata and
  ``products/first_look`` (``white_line_height``, ``pre_edge``, ``cluster_spectra``, table
  ``clusters``) and ``products/decomposition`` (the PCA and its scree)), ``software``,
  ``version``, ``timings``, ``notes``, ``frames_from``; ``energy_shifts`` (eV) when
  calibrated; ``reason`` when failed;
- ``products/<name>/`` per enabled analysis (metadata: the product's), e.g.
  ``products/particles/labels`` (array) and ``products/particles/table`` (a table when
  uploaded; a record array with named fields when registered from the HDF5 file).

Each in-operando series (start document ``xanes.series``) also has a summary table, one row per
scan, at ``/<root>_series/<series>`` (``/fxi/xanes_series/...`` for root ``fxi/xanes``)
(:class:`~xanes_stream.pipeline.series.SeriesSummary`),
replaced
as each scan of it is analysed.

Two ways to write, the same layout for readers:

- with ``results_dir`` (a directory the Tiled server may read, as it reads detector files), the
  maps are written there as one HDF5 file (:mod:`xanes_stream.io.maps_file`) and registered
  as one node: a single request, whatever the number of maps;
- without it, each array is uploaded: one HTTP request each (about 0.2 s for a 1024^2 map).

Writing replaces an earlier failure record of the run, so re-analysis never duplicates; good
maps (``status: done``) are replaced only by the same analysis written again (the same
``result_id``) or by a store made with ``replace_done`` (an explicit replay): any other result
for that uid is refused with :class:`~xanes_stream.store.sink.ResultConflict` and noted under
``conflicts`` in the kept maps' metadata (:mod:`xanes_stream.store.conflicts`).
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from xanes_stream.documents.identifiers import check_uid, inside
from xanes_stream.io.maps_file import product_path, storable
from xanes_stream.io.maps_file import write_maps as write_maps_file
from xanes_stream.pipeline.results import IMAGE_MAPS, Maps, Product, jsonable
from xanes_stream.spectra.references import Reference
from xanes_stream.store.conflicts import (
    CONFLICTS_KEPT,
    conflict_entry,
    conflict_message,
    may_replace,
)
from xanes_stream.store.refusals import check_writable, refusal
from xanes_stream.store.roots import ensure_root, find_root, root_keys
from xanes_stream.store.sink import ResultConflict

log = logging.getLogger(__name__)

SPEC = "XANESMaps"
FAILED_SPEC = "XANESMapsFailed"
REFERENCE_SPEC = "XANESReference"
_VECTORS = ("shifts", "energies")


def _container(parent, key: str, **kwargs):
    if key in parent:
        return parent[key]
    try:
        return parent.create_container(key, **kwargs)
    except Exception:  # created meanwhile by another writer
        if key in parent:
            return parent[key]
        raise


def _upload_products(parent, products: dict[str, Product]) -> None:
    """Products into container ``parent``: arrays by ``write_array``, tables by
    ``write_table``, at the paths :func:`~xanes_stream.io.maps_file.product_path` gives."""
    import pandas as pd

    for name, product in products.items():
        node = parent.create_container(name, metadata=jsonable(product.metadata, finite=True))
        items = [(k, v, "image") for k, v in product.images.items()]
        items += [(k, v, "spectrum") for k, v in product.spectra.items()]
        items += [(k, v, "table") for k, v in product.tables.items()]
        if product.energies is not None:
            items.append(("energies", product.energies, "energies"))
        for key, value, kind in items:
            *folders, leaf = product_path(name, key).split("/")
            target = node
            for folder in folders:
                target = _container(target, folder)
            metadata = {"key": key, "kind": kind}
            if kind == "table":
                target.write_table(pd.DataFrame(value), key=leaf, metadata=metadata)
            else:
                target.write_array(storable(value), key=leaf, metadata=metadata)


def _register_file(parent, key: str, metadata: dict, specs: list[str], file: Path):
    """Node ``key`` of ``parent``: the HDF5 ``file`` (which the server can read) registered."""
    from tiled.structures.core import StructureFamily
    from tiled.structures.data_source import Asset, DataSource, Management

    source = DataSource(
        structure_family=StructureFamily.container,
        mimetype="application/x-hdf5",
        structure=None,
        parameters={},
        management=Management.external,
        assets=[Asset(data_uri=file.as_uri(), is_directory=False, parameter="data_uris", num=0)],
    )
    return parent.new(StructureFamily.container, [source], key=key, metadata=metadata, specs=specs)


#: The maps' metadata keys that say how the spectra were corrected before the fit: the energy
#: calibration's shifts (eV, pipeline.calibration), the self-absorption correction's
#: parameters, the PCA denoising and spike removal, the tomographic reconstruction.
CORRECTIONS = ("energy_shifts", "self_absorption", "denoise", "tomography")


def _maps_metadata(uid: str, maps: Maps, metadata: dict) -> dict:
    """The metadata of the maps node of raw run ``uid``: ``metadata`` and what ``maps`` say."""
    md = {
        **metadata,
        "status": "done",
        "raw_uid": uid,
        "references": maps.reference_names,
        "energies": [float(e) for e in maps.energies],
        "summary": maps.summary(),
        "settings": maps.metadata.get("settings", {}),
        "normalization": maps.metadata.get("normalization", {}),
        "thresholds": maps.metadata.get("thresholds", {}),
        "software": "xanes-stream",
        "version": maps.metadata.get("version"),
        "method": maps.metadata.get("method", "fit"),
        "timings": {**maps.metadata.get("timings", {}), **metadata.get("timings", {})},
        "notes": list(maps.metadata.get("notes", [])) + list(metadata.get("notes", [])),
    }
    for key in CORRECTIONS:  # what was done to the spectra, where it was done
        if key in maps.metadata:
            md[key] = maps.metadata[key]
    md["mean_spectrum"] = {
        "energies": maps.fit_energies,
        "spectrum": maps.mean_spectrum,
        "fit": maps.mean_fit,
    }
    look = maps.products.get("first_look")
    if look is not None and "cluster_spectra" in look.spectra:  # no references: its candidates
        names = look.metadata.get("candidate_references", [])
        md["first_look"] = {
            "note": look.metadata.get("note"),
            "energies": look.energies,
            "cluster_spectra": dict(zip(names, look.spectra["cluster_spectra"], strict=False)),
        }
    return jsonable(md, finite=True)


#: The images of a first look (no references) that :meth:`TiledResultStore.read_maps` reads
#: back with the maps, from its ``products/first_look``.
FIRST_LOOK_IMAGES = ("white_line_height", "pre_edge")


#: The small tables of products the page shows, read back with the maps: product -> keys.
PAGE_TABLES = {"topography": ("levels", "histogram")}


def _page_products(node) -> dict[str, Product]:
    """The products of a maps node that the page shows: a first look's images and cluster
    spectra, and the small tables of :data:`PAGE_TABLES` (not a volume's surfaces)."""
    import pandas as pd

    products = _first_look_product(node)
    stored = node["products"] if "products" in node else {}
    for name, keys in PAGE_TABLES.items():
        if name not in stored:
            continue
        tables = {}
        for key in keys:
            if key in stored[name]:  # a table when uploaded, a record array when registered
                table = pd.DataFrame(stored[name][key].read())
                tables[f"{name}/{key}"] = {c: table[c].to_numpy() for c in table.columns}
        metadata = dict(stored[name].metadata)
        if isinstance(metadata.get("metadata"), str):  # registered: the HDF5 attribute's JSON
            metadata = json.loads(metadata["metadata"])
        products[name] = Product(tables=tables, metadata=metadata)
    return products


def _first_look_product(node) -> dict[str, Product]:
    """The ``first_look`` product of a maps node written without references: its images
    and cluster spectra (from the node's metadata); empty for maps fitted with references."""
    look = node.metadata.get("first_look")
    if look is None:
        return {}
    stored = node["products"]["first_look"] if "products" in node else None
    images = {name: stored[name].read() for name in FIRST_LOOK_IMAGES if stored and name in stored}
    spectra = look.get("cluster_spectra") or {}
    values = [np.asarray(v, dtype=np.float64) for v in spectra.values()]
    n = len(look.get("energies") or [])
    return {
        "first_look": Product(
            images=images,
            spectra={"cluster_spectra": np.array(values).reshape(len(values), n)},
            energies=np.asarray(look.get("energies") or [], dtype=np.float64),
            metadata={"note": look.get("note"), "candidate_references": list(spectra)},
        )
    }


class TiledResultStore:
    """Writes maps and failure records under ``root`` (a
    :class:`~xanes_stream.store.sink.ResultSink`); keeps the reference library.

    ``replace_done``: results replace good maps of the same uid (an explicit replay); without
    it they are refused (see the module's notes).
    """

    def __init__(
        self,
        client,
        root: str = "xanes",
        references_root: str = "references",
        results_dir: str | Path | None = None,
        *,
        replace_done: bool = False,
    ):
        root_keys(root)  # a path like fxi/xanes: each segment a safe key, else refused here
        self.client = client
        self.root_name = root
        self.references_root = references_root
        self.replace_done = replace_done
        self.results_dir = Path(results_dir).resolve() if results_dir else None
        self._root = None

    @property
    def root(self):
        if self._root is None:  # looked up once: every request counts in the scan's latency
            self._root = ensure_root(
                self.client, self.root_name, metadata={"about": "xanes-stream maps"}
            )
        return self._root

    def _replace(self, uid: str, metadata: dict, specs: list[str], file: Path | None = None):
        """Create node ``uid`` (a container, or ``file`` registered), replacing an earlier one
        that :func:`~xanes_stream.store.conflicts.may_replace` allows: first try to create it
        (one request), and only if it exists look at it, then delete and create again."""
        try:
            return self._create(uid, metadata, specs, file)
        except Exception as exc:
            if getattr(getattr(exc, "response", None), "status_code", None) != 409:
                raise
        existing = self.root[uid]
        stored = dict(existing.metadata or {})
        if not may_replace(stored, metadata, replace_done=self.replace_done):
            refused = "maps" if SPEC in specs else "failure"
            self._note_conflict(existing, stored, conflict_entry(refused, metadata))
            kept = {"scan_id": stored.get("scan_id"), "sample": stored.get("sample")}
            raise ResultConflict(conflict_message(uid, refused, stored), existing.uri, kept)
        existing.delete(recursive=True, external_only=False)
        return self._create(uid, metadata, specs, file)

    @staticmethod
    def _note_conflict(node, stored: dict, entry: dict) -> None:
        """Add ``entry`` to the ``conflicts`` of ``node`` (the newest kept); a failure to note
        it is logged: the maps are kept either way."""
        conflicts = [*(stored.get("conflicts") or []), entry][-CONFLICTS_KEPT:]
        try:
            node.update_metadata(metadata={"conflicts": conflicts})
        except Exception as exc:
            log.error("cannot note the refused result in %s: %s", node.uri, exc)

    def _create(self, uid: str, metadata: dict, specs: list[str], file: Path | None):
        if file is None:
            return self.root.create_container(uid, metadata=metadata, specs=specs)
        return _register_file(self.root, uid, metadata, specs, file)

    def check_writable(self) -> None:
        """Raise :class:`~xanes_stream.store.refusals.WriteRefused`, with the server's words,
        unless the root (created if missing) takes a scratch container and lets it be deleted."""
        uri = getattr(self.client, "uri", "?")
        try:
            root = self.root
        except Exception as exc:
            raise refusal(exc, uri) from None
        check_writable(root, uri)

    def warm_up(self) -> None:
        """Create the root and write (then delete) a tiny array: a fresh server's first array
        write costs seconds, which should not fall on the first scan's maps."""
        root = self.root
        key = "_warm_up"
        if key in root:
            root[key].delete(recursive=True, external_only=False)
        root.write_array(np.zeros((2, 2), dtype=np.float32), key=key).delete(
            recursive=True, external_only=False
        )

    def write_maps(self, uid: str, maps: Maps, metadata: dict) -> str:
        """Write every map of ``maps`` for raw run ``uid``; returns the container's URI."""
        md = _maps_metadata(check_uid(uid), maps, metadata)  # a Tiled key: never a path
        if self.results_dir is not None:
            return self._register(uid, maps, md)
        node = self._replace(uid, md, [SPEC])
        arrays = [("fractions", maps.fractions, {"reference_names": maps.reference_names})]
        arrays += [(name, getattr(maps, name), {}) for name in (*IMAGE_MAPS, *_VECTORS)]
        if maps.fraction_errors is not None:
            names = {"reference_names": maps.reference_names}
            arrays.append(("fraction_errors", maps.fraction_errors, names))

        def write(item) -> None:
            key, value, metadata = item
            node.write_array(storable(value), key=key, metadata=metadata)

        with ThreadPoolExecutor(2) as pool:  # overlap client-side encoding with the server
            list(pool.map(write, arrays))
        if maps.products:
            _upload_products(node.create_container("products"), maps.products)
        return node.uri

    def _register(self, uid: str, maps: Maps, md: dict) -> str:
        """Write the maps file under ``results_dir`` and register it as the run's node; the
        files of earlier results of the run are removed once the new one is in place."""
        folder = inside(self.results_dir, check_uid(uid))  # never outside, whatever the uid
        folder.mkdir(parents=True, exist_ok=True)
        path = write_maps_file(maps, inside(folder, f"maps-{time.time_ns()}.h5"), md)
        try:
            node = self._replace(uid, md, [SPEC], file=path)
        except Exception:
            path.unlink(missing_ok=True)
            raise
        for old in folder.glob("maps-*.h5"):
            if old != path:
                old.unlink(missing_ok=True)
        return node.uri

    def read_maps(self, uid: str) -> Maps:
        """The maps of raw run ``uid`` as written by :meth:`write_maps`."""
        node = self.root[uid]
        names = list(node["fractions"].metadata["reference_names"])
        fields = {name: node[name].read() for name in (*IMAGE_MAPS, *_VECTORS)}
        fields["mask"] = fields["mask"].astype(bool)
        if "fraction_errors" in node:
            fields["fraction_errors"] = node["fraction_errors"].read()
        mean = node.metadata.get("mean_spectrum") or {}
        fractions = node["fractions"].read()
        if fractions.size == 0:  # no references; Tiled's HDF5 adapter gives (1, 0, ny, nx)
            fractions = np.empty((0, *fields["thickness"].shape), dtype=np.float32)
        return Maps(
            reference_names=names,
            fractions=fractions,
            mean_spectrum=np.asarray(mean.get("spectrum", []), dtype=np.float32),
            mean_fit=np.asarray(mean.get("fit", []), dtype=np.float32),
            fit_energies=np.asarray(mean.get("energies", [])),
            metadata=dict(node.metadata),
            products=_page_products(node),
            **fields,
        )

    def write_series(self, name: str, table: dict, metadata: dict | None = None) -> str:
        """Write (replacing) the summary table of series ``name`` at
        ``/<root>_series/<name>``; returns its URI."""
        import pandas as pd

        parent = ensure_root(
            self.client, f"{self.root_name}_series", metadata={"about": "xanes-stream series"}
        )
        if name in parent:
            parent[name].delete(recursive=True, external_only=False)
        md = jsonable({**(metadata or {}), "series": name}, finite=True)
        return parent.write_table(pd.DataFrame(table), key=name, metadata=md).uri

    def read_series(self, name: str) -> tuple[dict, dict] | None:
        """The summary table of series ``name`` as columns, and its metadata; None if none."""
        parent = find_root(self.client, f"{self.root_name}_series")
        if parent is None or name not in parent:
            return None
        node = parent[name]
        frame = node.read()
        return {c: frame[c].to_numpy() for c in frame.columns}, dict(node.metadata)

    def write_failure(self, uid: str, reason: str, metadata: dict) -> str:
        """Record that run ``uid`` produced no maps, and why."""
        check_uid(uid)  # a Tiled key: never a path
        md = {
            **metadata,
            "status": "failed",
            "raw_uid": uid,
            "reason": reason,
            "software": "xanes-stream",
        }
        return self._replace(uid, jsonable(md, finite=True), [FAILED_SPEC]).uri

    def status(self, uid: str) -> str | None:
        root = self.root
        return root[uid].metadata.get("status") if uid in root else None

    # --- the reference library -----------------------------------------------------------
    def add_reference(self, reference: Reference) -> str:
        library = _container(
            self.client, self.references_root, metadata={"about": "xanes-stream reference spectra"}
        )
        if reference.name in library:
            library[reference.name].delete(recursive=True, external_only=False)
        node = library.write_array(
            np.stack([reference.energy, reference.mu]),
            key=reference.name,
            metadata={
                "name": reference.name,
                "normalized": reference.normalized,
                "source": reference.source,
                "rows": ["energy_eV", "mu"],
            },
            specs=[REFERENCE_SPEC],
        )
        return node.uri

    def reference(self, name: str) -> Reference:
        from xanes_stream.errors import ReferenceError

        library = self.client[self.references_root] if self.references_root in self.client else {}
        if name not in library:
            raise ReferenceError(
                f"reference {name!r} is not in the library "
                f"/{self.references_root} (add it: xanes-stream references add)"
            )
        node = library[name]
        energy, mu = node.read()
        return Reference(
            name, energy, mu, bool(node.metadata.get("normalized")), node.metadata.get("source", "")
        )
