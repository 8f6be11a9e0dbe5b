"""STXM stacks read back (io/stxm_sdf.py, io/stxm_nexus.py, io/stxm_ncb.py, io/stxm_i0.py):
files written as the microscopes write them from a stack of known optical density; the OD
-ln(counts / I0) of what is read must be that truth, the energies stay in eV."""

import numpy as np
import pytest
from helpers.stxm_files import li_k_truth, write_ncb, write_nxstxm, write_sdf, write_xsp

from xanes_stream.errors import StackFileError
from xanes_stream.io.stacks import read_stack


def _od(stack):
    return -np.log(stack.frames / stack.i0[:, None, None])


@pytest.fixture
def truth():
    return li_k_truth()


def test_sdf_li_k_stack_in_ev_with_an_xsp_i0(tmp_path, truth):
    # the I0 spectrum on its own, coarser grid (I0 is linear in E: interpolation is exact)
    e = np.linspace(49.0, 61.0, 7)
    write_xsp(tmp_path / "i0.xsp", e, 2000.0 - 10.0 * (e - 50.0))
    stack = read_stack(write_sdf(tmp_path, "53001", truth))
    np.testing.assert_allclose(stack.energies, truth.energies, atol=5e-4)  # 55 eV, not keV
    assert stack.energy_units == "eV" and stack.frames.shape == truth.od.shape
    np.testing.assert_allclose(stack.i0, truth.i0, rtol=1e-6)
    np.testing.assert_allclose(_od(stack), truth.od, atol=1e-5)
    assert stack.pixel_size_um == pytest.approx(0.05) and stack.dwell_ms == 1.5
    assert any("i0.xsp" in note for note in stack.notes)


def test_sdf_i0_from_a_region_the_brightest_pixels_or_none(tmp_path, truth):
    path = write_sdf(tmp_path, "53002", truth)  # no .xsp: auto takes the brightest pixels
    empty = slice(0, truth.od.shape[1]), slice(truth.od.shape[2] - 2, truth.od.shape[2])
    for choice in ("auto", "bright", f"0:{empty[0].stop},{empty[1].start}:{empty[1].stop}"):
        stack = read_stack(path, i0=choice)
        np.testing.assert_allclose(stack.i0, truth.i0, rtol=1e-6, err_msg=choice)
    assert read_stack(path, i0="none").i0 is None
    with pytest.raises(StackFileError, match="outside the 12 x 16 images"):
        read_stack(path, i0="0:4,10:40")
    with pytest.raises(StackFileError, match="y0:y1,x0:x1"):
        read_stack(path, i0="missing.xsp")


def test_sdf_xsp_that_does_not_cover_the_stack_is_an_error(tmp_path, truth):
    write_xsp(tmp_path / "i0.xsp", np.array([52.0, 53.0, 54.0]), np.array([1.0, 2.0, 3.0]))
    with pytest.raises(StackFileError, match="covers 52-54 eV, the stack 50-60 eV"):
        read_stack(write_sdf(tmp_path, "53003", truth))


def test_sdf_truncated_or_missing_image_and_wrong_unit(tmp_path, truth):
    path = write_sdf(tmp_path, "53004", truth)
    xim = tmp_path / "53004_a007.xim"
    xim.write_text("\n".join(xim.read_text().splitlines()[:5]))
    with pytest.raises(StackFileError, match="53004_a007.xim: 5 lines of .16. values where"):
        read_stack(path, i0="none")
    xim.unlink()
    with pytest.raises(StackFileError, match="53004_a007.xim: missing"):
        read_stack(path, i0="none")
    other = write_sdf(tmp_path / "u", "53005", truth, unit="um")
    with pytest.raises(StackFileError, match="not an energy stack"):
        read_stack(other)


def test_nxstxm_s_l_stack_with_control_i0(tmp_path):
    truth = li_k_truth()
    truth.energies = truth.energies + 110.0  # the S L edge, 160-170 eV
    stack = read_stack(write_nxstxm(tmp_path / "s_l.nxs", truth))
    np.testing.assert_allclose(stack.energies, truth.energies)
    assert stack.energy_units == "eV" and stack.flat is None
    np.testing.assert_allclose(_od(stack), truth.od, atol=1e-5)
    assert stack.pixel_size_um == pytest.approx(0.05) and stack.dwell_ms == pytest.approx(1.5)


def test_nxstxm_in_kev_units_and_without_control(tmp_path, truth):
    kev = li_k_truth()
    kev.energies = kev.energies / 1000.0
    path = write_nxstxm(tmp_path / "kev.h5", kev, units="keV", control=False)
    stack = read_stack(path)  # no control data: the brightest pixels
    np.testing.assert_allclose(stack.energies, truth.energies)
    np.testing.assert_allclose(_od(stack), truth.od, atol=1e-5)


def test_nxstxm_data_that_does_not_fit_its_axes(tmp_path, truth):
    path = write_nxstxm(tmp_path / "bad.nxs", truth)
    import h5py

    with h5py.File(path, "a") as f:
        del f["entry0/counter0/sample_x"]
        f["entry0/counter0/sample_x"] = np.arange(5.0)
    with pytest.raises(StackFileError, match="but 21 energies, 12 sample_y, 5 sample_x"):
        read_stack(path)


def test_ncb_stack_scaled_int16(tmp_path, truth):
    path = write_ncb(tmp_path / "stack.ncb", truth, scale=10.0)
    stack = read_stack(path, i0="none")
    np.testing.assert_allclose(stack.energies, truth.energies)
    np.testing.assert_allclose(stack.frames, truth.counts, atol=0.05 + 1e-6)  # 1/scale steps
    stack = read_stack(path, i0="bright")
    np.testing.assert_allclose(_od(stack), truth.od, atol=1e-3)
    assert stack.pixel_size_um == pytest.approx(0.05)


def test_ncb_truncated_or_without_dat(tmp_path, truth):
    path = write_ncb(tmp_path / "stack.ncb", truth)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(StackFileError, match="truncated or mismatched"):
        read_stack(path)
    path.with_suffix(".dat").unlink()
    with pytest.raises(StackFileError, match="needs its .dat file"):
        read_stack(path)


def test_stxm_stacks_state_their_energies(tmp_path, truth):
    with pytest.raises(StackFileError, match="states its own energies"):
        read_stack(write_sdf(tmp_path, "53006", truth), energies=np.arange(21.0))
