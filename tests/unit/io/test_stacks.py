"""Stack files read back: FXI/PyXAS HDF5 (with and without flat fields) and multi-page TIFF."""

import h5py
import numpy as np
import pytest
import tifffile

from xanes_stream.errors import StackFileError
from xanes_stream.io.stacks import image_ndim, read_stack

N, NY, NX = 6, 20, 24
KEV = np.linspace(8.30, 8.40, N)


@pytest.fixture
def counts():
    """Raw detector counts, their dark (3 frames) and flats (2 frames)."""
    rng = np.random.default_rng(0)
    frames = rng.integers(500, 9000, size=(N, NY, NX)).astype(np.uint16)
    dark = rng.integers(90, 110, size=(3, NY, NX)).astype(np.uint16)
    bkg = rng.integers(9000, 10000, size=(2, NY, NX)).astype(np.uint16)
    return frames, dark, bkg


def _h5(path, **datasets):
    with h5py.File(path, "w") as f:
        for name, data in datasets.items():
            f.create_dataset(name, data=data)
    return path


def test_hdf5_stack_with_raw_counts_gets_its_flat_field(tmp_path, counts):
    frames, dark, bkg = counts
    path = _h5(tmp_path / "scan.h5", img_xanes=frames, X_eng=KEV, img_dark=dark, img_bkg=bkg)
    stack = read_stack(path)
    np.testing.assert_array_equal(stack.frames, frames)
    np.testing.assert_array_equal(stack.energies, KEV)  # as written (keV): analyze converts
    np.testing.assert_allclose(stack.dark, dark.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(stack.flat, bkg.mean(axis=0), rtol=1e-6)
    assert stack.source == str(path) and "applied" in stack.notes[0]
    assert image_ndim(path) == 3


def test_hdf5_flat_per_energy_is_kept_per_energy(tmp_path, counts):
    frames, _, _ = counts
    per_energy = np.full((N, NY, NX), 9500, dtype=np.uint16) + np.arange(N)[:, None, None]
    stack = read_stack(_h5(tmp_path / "scan.h5", img_xanes=frames, X_eng=KEV, img_bkg=per_energy))
    np.testing.assert_array_equal(stack.flat, per_energy)
    assert stack.dark is None


def test_hdf5_already_corrected_is_used_as_is_unless_told(tmp_path, counts):
    _, dark, bkg = counts
    transmission = np.random.default_rng(1).uniform(0.2, 0.9, (N, NY, NX)).astype(np.float32)
    path = _h5(tmp_path / "t.h5", img_xanes=transmission, X_eng=KEV, img_dark=dark, img_bkg=bkg)
    stack = read_stack(path)
    assert stack.flat is None and stack.dark is None and "used as is" in stack.notes[0]
    np.testing.assert_array_equal(stack.frames, transmission)
    forced = read_stack(path, flat_field="apply")
    np.testing.assert_allclose(forced.flat, bkg.mean(axis=0), rtol=1e-6)
    assert read_stack(path, flat_field="skip").notes == []


def test_energies_given_replace_the_files(tmp_path, counts):
    frames, _, _ = counts
    path = _h5(tmp_path / "scan.h5", img_xanes=frames)
    ev = KEV * 1000
    np.testing.assert_array_equal(read_stack(path, energies=ev).energies, ev)
    with pytest.raises(StackFileError, match="no energies 'X_eng'"):
        read_stack(path)
    with pytest.raises(StackFileError, match=f"5 energies for {N} images"):
        read_stack(path, energies=ev[:5])
    with pytest.raises(StackFileError, match="no dataset 'images'"):
        read_stack(path, image_key="images")


def test_tiff_stack_with_its_energies(tmp_path, counts):
    frames, _, _ = counts
    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, frames)
    ev = (KEV * 1000).tolist()
    stack = read_stack(path, energies=ev)
    np.testing.assert_array_equal(stack.frames, frames)
    np.testing.assert_array_equal(stack.energies, ev)
    assert stack.dark is None and stack.flat is None and image_ndim(path) is None
    with pytest.raises(StackFileError, match="needs its energies"):
        read_stack(path)


def test_unreadable_files_are_stack_file_errors(tmp_path):
    with pytest.raises(StackFileError, match="does not exist"):
        read_stack(tmp_path / "missing.h5")
    (tmp_path / "scan.txt").write_text("1 2 3")
    with pytest.raises(StackFileError, match="unknown stack format '.txt'"):
        read_stack(tmp_path / "scan.txt")
    (tmp_path / "bad.h5").write_bytes(b"not HDF5")
    with pytest.raises(StackFileError, match="not a readable HDF5"):
        read_stack(tmp_path / "bad.h5")
    (tmp_path / "bad.tif").write_bytes(b"not TIFF")
    with pytest.raises(StackFileError, match="not a readable TIFF"):
        read_stack(tmp_path / "bad.tif", energies=[1.0])
    flat = _h5(tmp_path / "one.h5", img_xanes=np.zeros((NY, NX)), X_eng=[8.3])
    with pytest.raises(StackFileError, match=r"must be \(n_energy, ny, nx\)"):
        read_stack(flat)


def test_each_stack_states_the_unit_of_its_energies(tmp_path, counts):
    frames = counts[0]
    fxi = read_stack(_h5(tmp_path / "fxi.h5", img_xanes=frames, X_eng=KEV))
    assert fxi.energy_units == "keV"  # by the FXI layout, whatever the numbers
    np.testing.assert_array_equal(fxi.energies, KEV)  # values as in the file
    given = read_stack(tmp_path / "fxi.h5", energies=KEV * 1000)
    assert given.energy_units == "auto"
    tif = tmp_path / "s.tif"
    tifffile.imwrite(tif, frames)
    assert read_stack(tif, energies=KEV).energy_units == "auto"
    told = read_stack(tmp_path / "fxi.h5", energy_units="eV")
    assert told.energy_units == "eV" and any("as asked" in note for note in told.notes)
