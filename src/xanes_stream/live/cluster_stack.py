"""Stack files analysed on a Dask cluster: a 3-D volume slab by slab, a 2-D stack in blocks of
rows, each worker reading its own part of the file.

**2-D stacks** (:class:`RowsOnCluster`): the global steps stay in this process (the sample of
pixels that decides E0, the windows and the clusters' components; registration, which needs
whole frames; the mask, clusters and mean spectrum after the blocks), and each block of rows
is :class:`~xanes_stream.pipeline.analyze.RowTask`, the function the threads run in-process,
on a worker: the maps are the same. A worker reads its rows of the raw frames from the file
itself; frames this process changed (registered) go to the workers block by block, directly,
never through the scheduler.

**Volumes** (:func:`volume_on_cluster`):

The volume ``img_xanes`` (n_energy, nz, ny, nx) becomes a :mod:`dask.array` of z-slabs read
lazily from the HDF5 file: each task opens the file at its path itself (the workers share the
path), so the array is never pickled through the scheduler. The global steps run on the
client: the volume's one E0 from a sample of slices before the slabs
(:func:`~xanes_stream.pipeline.volume.prepare_volume`), the quality mask and the mean spectrum
after them (:func:`~xanes_stream.pipeline.volume.assemble_volume`); each slab is fitted on a
worker by :func:`~xanes_stream.pipeline.volume.analyze_slab`, the function the in-process
path runs, so the maps are the same. A volume is not registered (it is aligned when
reconstructed), in this process or on the cluster.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import h5py
import numpy as np

from xanes_stream.errors import XanesStreamError
from xanes_stream.live.compute import DaskAnalyser
from xanes_stream.pipeline.analyze import RowTask
from xanes_stream.pipeline.results import Maps
from xanes_stream.pipeline.settings import AnalysisSettings
from xanes_stream.pipeline.volume import analyze_slab, assemble_volume, prepare_volume

__all__ = ["H5Dataset", "RowsOnCluster", "volume_on_cluster"]


@dataclass(frozen=True)
class H5Dataset:
    """An HDF5 dataset by path and name, opened afresh for every read (cheap to pickle)."""

    path: str
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, key) -> np.ndarray:
        with h5py.File(self.path, "r") as f:
            return np.asarray(f[self.name][key])


def _rows_task(task: RowTask, frames, rows: slice) -> tuple[dict, str]:
    """On a worker: the maps of image rows ``rows``, and the worker's address. ``frames`` is
    the file's reader (the rows read here) or the block itself."""
    from distributed import get_worker

    block = frames[:, rows] if isinstance(frames, H5Dataset) else frames
    return task(np.asarray(block), rows), get_worker().address


class RowsOnCluster:
    """Runs a 2-D stack's blocks of rows on the Dask cluster at ``address`` (a
    :data:`~xanes_stream.pipeline.analyze.BlockRunner`: give it to ``analyze(blocks=...)``).

    Parameters
    ----------
    address : str
        The Dask scheduler.
    file : H5Dataset, optional
        Where the workers read the raw frames themselves (a path they share).
    file_frames : numpy.ndarray, optional
        The frames read from ``file`` here: when the analysis's source is this very array,
        the workers read their rows from ``file``; any other source (the registered stack)
        is sent to them block by block.
    timeout : float
        Seconds to reach the scheduler.

    Raises
    ------
    XanesStreamError
        The cluster cannot be reached (at the start) or failed a block (one sentence).
    """

    def __init__(
        self,
        address: str,
        *,
        file: H5Dataset | None = None,
        file_frames: np.ndarray | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.address, self.file, self.file_frames = address, file, file_frames
        self.analyser = DaskAnalyser(address, timeout=timeout)
        self.workers: set[str] = set()

    def __call__(self, task: RowTask, frames, row_blocks: list[slice]):
        from distributed import as_completed

        client = self.analyser.client
        from_file = self.file is not None and frames is self.file_frames
        try:
            shared = client.scatter(task, broadcast=True)  # the plan, sent once to each worker
            futures = {}
            for rows in row_blocks:
                part = (
                    self.file
                    if from_file
                    else client.scatter(np.ascontiguousarray(frames[:, rows]))
                )
                future = client.submit(_rows_task, shared, part, rows, pure=False, retries=2)
                futures[future] = rows
            for future in as_completed(futures, loop=client.loop):
                result, where = future.result()
                self.workers.add(where)
                yield futures.pop(future), result
        except XanesStreamError:
            raise
        except Exception as exc:
            raise XanesStreamError(
                f"the Dask cluster at {self.address} failed the stack: {type(exc).__name__}: {exc}"
            ) from None

    def close(self) -> None:
        """Let go of the cluster."""
        self.analyser.close()


def _slab_task(slab: np.ndarray, energies, references, mode: str, settings) -> tuple[dict, str]:
    """On a worker: the slab's maps and the worker's address."""
    from distributed import get_worker

    maps = analyze_slab(slab, energies, references, mode=mode, settings=settings)
    return maps, get_worker().address


def volume_on_cluster(
    path: str,
    energies: np.ndarray,
    references,
    *,
    address: str,
    dataset: str = "img_xanes",
    mode: str = "absorbance",
    settings: AnalysisSettings | dict | None = None,
    slab: int = 4,
    timeout: float = 10.0,
) -> Maps:
    """The maps of the volume ``dataset`` of the HDF5 file ``path``, fitted on the cluster.

    Parameters
    ----------
    path : str
        The HDF5 file; the workers open it at this same path.
    energies, references, mode, settings :
        As for :func:`~xanes_stream.pipeline.volume.analyze_volume`.
    address : str
        The Dask scheduler.
    slab : int
        z-slices per task.
    timeout : float
        Seconds to reach the scheduler.

    Returns
    -------
    Maps
        The same maps as in-process; ``metadata["analysed_on"]`` the workers' addresses and
        ``metadata["dask"]`` the scheduler's.

    Raises
    ------
    XanesStreamError
        The cluster cannot be reached, or failed the work (one sentence).
    """
    import dask
    import dask.array as da

    started = time.perf_counter()
    if slab < 1:
        raise XanesStreamError(f"slab must be at least 1, got {slab}")
    with h5py.File(path, "r") as f:
        volumes = f[dataset]
        energies, refs, settings = prepare_volume(
            volumes, energies, references, mode=mode, settings=settings
        )
        reader = H5Dataset(str(path), dataset, tuple(volumes.shape), volumes.dtype)
    n, nz, ny, nx = reader.shape
    lazy = da.from_array(reader, chunks=(n, slab, ny, nx), asarray=False, lock=False)
    blocks = lazy.to_delayed().ravel()
    task = dask.delayed(_slab_task, pure=True)
    tasks = [task(b, energies, refs, mode, settings) for b in blocks]
    analyser = DaskAnalyser(address, timeout=timeout)
    try:
        try:
            results = analyser.client.gather(analyser.client.compute(tasks))
        except Exception as exc:
            raise XanesStreamError(
                f"the Dask cluster at {address} failed the volume: {type(exc).__name__}: {exc}"
            ) from None
    finally:
        analyser.close()
    starts = range(0, nz, slab)
    maps = assemble_volume(
        ((z0, result) for z0, (result, _) in zip(starts, results, strict=True)),
        reader.shape,
        refs,
        mode=mode,
        settings=settings,
        started=started,
        chunk_slices=slab,
    )
    maps.metadata["analysed_on"] = sorted({where for _, where in results})
    maps.metadata["dask"] = address
    return maps
