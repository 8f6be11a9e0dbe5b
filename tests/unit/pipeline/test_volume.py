"""3D XANES: a volume of stacked phantoms, analysed slice by slice, against its truth."""

import tracemalloc

import h5py
import numpy as np
import pytest
from helpers import core
from helpers.phantoms import VOLUME_SHAPE, volume_od

from xanes_stream import analyze
from xanes_stream.errors import AnalysisError
from xanes_stream.pipeline.volume import VOLUME_MAPS, analyze_volume
from xanes_stream.sim.phantom import make_phantom

SHAPE = VOLUME_SHAPE


@pytest.fixture(scope="module")
def volume():
    od, phantoms = volume_od(6, empty=(2,))
    calls = []
    maps = analyze_volume(
        od,
        phantoms[0].energies,
        phantoms[0].references,
        progress=lambda done, total: calls.append((done, total)),
        chunk_slices=4,
    )
    return od, phantoms, maps, calls


def test_fractions_match_truth(volume):
    _, phantoms, maps, _ = volume
    assert maps.fractions.shape == (2, 6, *SHAPE)
    for name in VOLUME_MAPS:
        assert getattr(maps, name).shape == (6, *SHAPE)
    errors = np.concatenate(
        [
            np.abs(maps.fractions[:, z] - p.fractions)[:, core(p)].ravel()
            for z, p in enumerate(phantoms)
            if p.particles.any()
        ]
    )
    assert np.median(errors) < 0.03
    assert np.percentile(errors, 90) < 0.08
    # edge step: within the bias of Larch's default post-edge window on this short scan
    inside = np.stack([core(p) for p in phantoms])
    ratio = maps.thickness[inside] / np.stack([p.thickness for p in phantoms])[inside]
    assert abs(np.median(ratio) - 1) < 0.12


def test_one_mask_for_the_volume(volume):
    """The empty slice gets (almost) no mask: the threshold is the volume's, not the slice's."""
    _, phantoms, maps, _ = volume
    particles = np.stack([p.particles for p in phantoms])
    assert maps.mask[2].mean() < 0.01
    assert particles[maps.mask].mean() > 0.98
    assert maps.mask[np.stack([core(p) for p in phantoms])].mean() > 0.9


def test_slices_equal_analyze_with_the_volume_e0(volume):
    od, phantoms, maps, calls = volume
    e0 = maps.metadata["normalization"]["e0"]
    assert abs(e0 - 8345) < 5
    single = analyze(
        od[:, 4],
        phantoms[4].energies,
        phantoms[4].references,
        mode="absorbance",
        settings={"registration": {"method": "none"}, "normalization": {"e0": e0}},
    )
    np.testing.assert_allclose(maps.fractions[:, 4], single.fractions, atol=1e-6)
    np.testing.assert_allclose(maps.edge_energy[4], single.edge_energy, atol=1e-4)
    np.testing.assert_allclose(maps.thickness[4], single.thickness, rtol=1e-5)
    assert calls == [(z, 6) for z in range(1, 7)]
    assert maps.mask.shape == maps.clusters.shape == maps.fractions.shape[1:]
    # the mean spectrum of the volume: the slices', weighted by their masks
    assert np.isfinite(maps.mean_spectrum).all() and maps.mean_spectrum.size == maps.energies.size
    assert np.max(np.abs(maps.mean_spectrum - single.mean_spectrum)) < 0.1


def _peak_memory(path, energies, references):
    with h5py.File(path, "r") as f:
        tracemalloc.start()
        maps = analyze_volume(
            f["od"],
            energies,
            references,
            progress=False,
            chunk_slices=2,
        )
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return maps, peak


def test_hdf5_volume_in_bounded_memory(tmp_path):
    """Read from HDF5 two slices at a time: memory grows with the maps, not the volume."""
    shape = (64, 64)
    phantoms = [
        make_phantom(shape, references=("NiO", "LiNiO2"), n_particles=3, drift=0, seed=z)
        for z in range(3)
    ]
    slab = np.stack([-np.log(p.transmission) for p in phantoms], axis=1)
    energies, references = phantoms[0].energies, phantoms[0].references
    analyze_volume(slab[:, :1, :32, :32], energies, references, progress=False)  # imports
    peaks = {}
    for repeats in (1, 2):
        path = tmp_path / f"volume{repeats}.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("od", data=np.tile(slab, (1, repeats, 1, 1)), chunks=(1, 1, *shape))
        maps, peaks[repeats] = _peak_memory(path, energies, references)
    slice_bytes = slab.nbytes // 3
    extra_maps = (maps.fractions.shape[0] + len(VOLUME_MAPS)) * 3 * shape[0] * shape[1] * 4
    growth = peaks[2] - peaks[1]
    assert growth < extra_maps + slice_bytes, (
        f"3 more slices ({3 * slice_bytes / 1e6:.0f} MB) cost {growth / 1e6:.1f} MB; "
        f"their maps are {extra_maps / 1e6:.1f} MB"
    )
    # and the whole is the maps, the chunk of two slices and one slice's own analysis
    one = np.ascontiguousarray(slab[:, 0])
    settings = {
        "registration": {"method": "none"},
        "mask": {"n_clusters": 0},
        "normalization": {"e0": maps.metadata["normalization"]["e0"]},
    }
    tracemalloc.start()
    analyze(one, energies, references, mode="absorbance", settings=settings)
    _, one_slice = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    maps_bytes = (maps.fractions.shape[0] + len(VOLUME_MAPS)) * maps.mask.size * 4
    assert peaks[2] < 1.1 * (maps_bytes + 2 * slice_bytes + one_slice), (peaks, one_slice)
    for z in (2, 5):
        p = phantoms[z % 3]
        error = np.abs(maps.fractions[:, z] - p.fractions)[:, core(p)]
        assert np.median(error) < 0.03


def test_progress_bar_and_bad_input(capsys):
    od, phantoms = volume_od(2)
    maps = analyze_volume(od, phantoms[0].energies, phantoms[0].references, progress=True)
    assert "3D XANES" in capsys.readouterr().err
    assert maps.fractions.shape[1] == 2
    with pytest.raises(AnalysisError, match="n_energy, nz, ny, nx"):
        analyze_volume(od[:, 0], phantoms[0].energies, phantoms[0].references)
    with pytest.raises(AnalysisError, match="energies for"):
        analyze_volume(od, phantoms[0].energies[:-1], phantoms[0].references)
