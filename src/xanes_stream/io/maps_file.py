"""Maps to and from HDF5, in the layout Tiled serves them.

One dataset per map at the top level: ``fractions`` (k, ny, nx) with the attribute
``reference_names``, ``fraction_errors`` (k, ny, nx, when made; the same attribute),
``thickness``, ... (ny, nx) (a volume's have a z axis after k),
``shifts``, ``energies`` and the mean spectrum
vectors; the file attribute ``metadata`` is JSON. Products of the analyses beyond the fit are
under ``products/<name>/``: images and spectra as datasets, tables as compound datasets (one
record per row, attribute ``kind="table"``), the product's metadata as the JSON attribute
``metadata``. The service registers these files with Tiled as they are, so the file a user
saves from the CLI and the node they read from Tiled match.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from xanes_stream.errors import StackFileError
from xanes_stream.pipeline.results import IMAGE_MAPS, Maps, Product, jsonable

_VECTORS = ("shifts", "energies", "mean_spectrum", "mean_fit", "fit_energies")


def write_maps(maps: Maps, path: str | Path, metadata: dict | None = None) -> Path:
    """Write ``maps`` to ``path``; ``metadata`` (JSON-able) is merged over ``maps.metadata``."""
    path = Path(path)
    try:
        with h5py.File(path, "w") as f:
            fractions = f.create_dataset("fractions", data=maps.fractions)
            fractions.attrs["reference_names"] = list(maps.reference_names)
            for name in (*IMAGE_MAPS, *_VECTORS):
                f.create_dataset(name, data=storable(getattr(maps, name)))
            if maps.fraction_errors is not None:
                errors = f.create_dataset("fraction_errors", data=maps.fraction_errors)
                errors.attrs["reference_names"] = list(maps.reference_names)
            f.attrs["metadata"] = json.dumps(
                jsonable({**maps.metadata, **(metadata or {})}, finite=True)
            )
            f.attrs["reference_names"] = list(maps.reference_names)
            if maps.products:
                write_products(f.create_group("products"), maps.products)
    except OSError as exc:
        raise StackFileError(f"cannot write maps to {path}: {exc}") from None
    return path


def read_maps(path: str | Path) -> Maps:
    """Read maps written by :func:`write_maps`."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            names = [str(n) for n in f["fractions"].attrs["reference_names"]]
            fractions = f["fractions"][()]
            fields = {name: f[name][()] for name in (*IMAGE_MAPS, *_VECTORS)}
            if "fraction_errors" in f:
                fields["fraction_errors"] = f["fraction_errors"][()]
            metadata = json.loads(f.attrs["metadata"])
            products = read_products(f["products"]) if "products" in f else {}
    except (OSError, KeyError, ValueError) as exc:
        raise StackFileError(f"{path} is not a maps file: {exc}") from None
    fields["mask"] = fields["mask"].astype(bool)
    return Maps(
        reference_names=names, fractions=fractions, metadata=metadata, products=products, **fields
    )


def product_path(name: str, key: str) -> str:
    """Where ``key`` of product ``name`` is stored below the product's node: the key without
    a leading ``<name>/`` (``particles/table`` of ``particles`` is ``table``)."""
    return key[len(name) + 1 :] if key.startswith(f"{name}/") else key


def write_products(group: h5py.Group, products: dict[str, Product]) -> None:
    """Write ``products`` into ``group``, one subgroup per product."""
    for name, product in products.items():
        node = group.create_group(name)
        node.attrs["metadata"] = json.dumps(jsonable(product.metadata, finite=True))
        for kind, arrays in (("image", product.images), ("spectrum", product.spectra)):
            for key, array in arrays.items():
                _column(node, product_path(name, key), array, key=key, kind=kind)
        for key, table in product.tables.items():
            _table(node, product_path(name, key), table, key=key)
        if product.energies is not None:
            _column(node, "energies", product.energies, kind="energies")


def read_products(group: h5py.Group) -> dict[str, Product]:
    """Products written by :func:`write_products`."""
    products = {}
    for name, node in group.items():
        product = Product(metadata=json.loads(node.attrs["metadata"]))
        nodes: list[h5py.Dataset | h5py.Group] = []
        node.visititems(lambda _path, obj, found=nodes: found.append(obj))
        for obj in nodes:
            kind = obj.attrs.get("kind")
            if kind == "table":
                kinds = json.loads(obj.attrs["column_kinds"])
                values = obj[()]
                text = json.loads(obj.attrs["string_columns"])
                product.tables[obj.attrs["key"]] = {
                    c: np.array(text[c]) if c in text else _restore(values[c], kinds[c])
                    for c in kinds
                }
            elif kind == "image":
                product.images[obj.attrs["key"]] = _values(obj)
            elif kind == "spectrum":
                product.spectra[obj.attrs["key"]] = _values(obj)
            elif kind == "energies":
                product.energies = obj[()]
        products[name] = product
    return products


def _column(group: h5py.Group, path: str, array: np.ndarray, **attrs: str) -> None:
    array = np.asarray(array)
    if array.dtype.kind in "US":
        dataset = group.create_dataset(path, data=array.astype(object), dtype=h5py.string_dtype())
    else:
        dataset = group.create_dataset(path, data=storable(array))
    dataset.attrs.update(attrs, dtype=array.dtype.kind)


def _table(group: h5py.Group, path: str, table: dict, **attrs: str) -> None:
    """One compound dataset (a record per row), which Tiled serves as an array with named
    fields: ``node.read()["area_px"]``, or ``pandas.DataFrame(node.read())``."""
    columns = {}
    for name, values in table.items():  # a 2-D column becomes name_0, name_1, ...
        values = np.asarray(values)
        if values.ndim > 1:
            flat = values.reshape(len(values), -1)
            columns.update({f"{name}_{i}": flat[:, i] for i in range(flat.shape[1])})
        else:
            columns[name] = values
    # Tiled serves numeric fields only: text columns go to the attribute string_columns
    text = {n: [str(x) for x in v] for n, v in columns.items() if v.dtype.kind in "USO"}
    numbers = {n: storable(v) for n, v in columns.items() if n not in text}
    if numbers:
        records = np.rec.fromarrays(list(numbers.values()), names=list(numbers))
    else:
        records = np.zeros(0)
    dataset = group.create_dataset(path, data=records)
    kinds = {name: values.dtype.kind for name, values in columns.items()}
    dataset.attrs.update(
        attrs, kind="table", column_kinds=json.dumps(kinds), string_columns=json.dumps(text)
    )


def _restore(values: np.ndarray, kind: str) -> np.ndarray:
    return values.astype(bool) if kind == "b" else values


def _values(dataset: h5py.Dataset) -> np.ndarray:
    kind = dataset.attrs.get("dtype")
    if kind in ("U", "S"):
        return np.array(dataset.asstr()[()], dtype=str)
    values = dataset[()]
    return values.astype(bool) if kind == "b" else values


def storable(array: np.ndarray) -> np.ndarray:
    """``array`` contiguous, with booleans as uint8 (which every HDF5 and Tiled reader knows)."""
    array = np.ascontiguousarray(array)
    return array.astype(np.uint8) if array.dtype == bool else array
