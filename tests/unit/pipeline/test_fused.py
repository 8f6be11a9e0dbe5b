"""The fused block pass (``compute.kernel: fused``, the default) against the numpy block pass,
the reference implementation: the same maps to float precision on phantoms, bad pixels
included, for every fit method and setting the fused pass covers; the numpy pass where it
does not."""

import numpy as np
import pytest

from xanes_stream import analyze
from xanes_stream.sim.phantom import make_phantom

NO_REGISTRATION = {"registration": {"method": "none"}}
FLOAT_MAPS = ("thickness", "error", "r_factor", "chi2_red", "edge_energy", "peak_energy")


@pytest.fixture(scope="module")
def stack():
    """Three references, 64 x 72 (not a whole number of tiles per block), with bad pixels: one
    all NaN, one all zero, one with +inf at 10 energies (too many: invalid), one with a single
    NaN and one with a leading NaN (filled, valid)."""
    p = make_phantom((64, 72), references=("NiO", "LiNiO2", "Ni"), n_particles=4, drift=0, seed=5)
    od = -np.log(p.transmission)
    od[:, 3, 5] = np.nan
    od[:, 40, 40] = 0.0
    od[10:21, 30, 30] = np.inf
    od[50, 33, 12] = np.nan
    od[0, 20, 21] = np.nan
    return p, np.ascontiguousarray(od, dtype=np.float32)


def _both(p, od, settings, **kwargs):
    maps = []
    for kernel in ("fused", "numpy"):
        chosen = {**NO_REGISTRATION, **settings, "compute": {"kernel": kernel}}
        maps.append(
            analyze(od, p.energies, p.references, mode="absorbance", settings=chosen, **kwargs)
        )
    return maps


def assert_same_maps(fused, numpy, fractions_atol=1e-3):
    """The maps of the two passes agree: the same NaN pixels, mask and clusters exactly, the
    fractions to ``fractions_atol`` and every other map to float precision (relative 5e-4)
    where there is an edge to speak of (the error of a pixel with no edge step divides by
    almost nothing).

    Both passes sum in float32, in different orders; three nearly collinear references (NiO,
    LiNiO2, Ni) turn that last-digit difference into up to ~5e-4 of a fraction, thirty times
    below the fit's own noise at 20,000 counts."""
    for name in ("fractions", *FLOAT_MAPS):
        np.testing.assert_array_equal(
            np.isnan(getattr(fused, name)), np.isnan(getattr(numpy, name)), err_msg=name
        )
    np.testing.assert_array_equal(fused.mask, numpy.mask)
    np.testing.assert_array_equal(fused.clusters, numpy.clusters)
    edge = np.abs(numpy.thickness) > 0.02 * np.nanmax(np.abs(numpy.thickness))
    np.testing.assert_allclose(
        fused.fractions[:, edge],
        numpy.fractions[:, edge],
        rtol=0,
        atol=fractions_atol,
        err_msg="fractions",
    )
    np.testing.assert_allclose(fused.thickness, numpy.thickness, rtol=1e-5, atol=1e-6)
    for name in FLOAT_MAPS[1:]:
        np.testing.assert_allclose(
            getattr(fused, name)[edge], getattr(numpy, name)[edge], rtol=5e-4, err_msg=name
        )


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"fit": {"method": "lstsq"}},
        {"fit": {"method": "lstsq", "sum_to_one": "constrain"}},
        {"fit": {"method": "nnls", "sum_to_one": "constrain"}},
        {"fit": {"method": "nnls", "sum_to_one": "none"}},
        {"fit": {"method": "admm", "sum_to_one": "constrain"}},
        {"features": {"edge_method": "half_height"}},
        {"mask": {"method": "snr"}},
        {"mask": {"outside": "nan"}},
        {"block_pixels": 256 * 3, "max_bad_fraction": 0.2},
    ],
    ids=lambda s: repr(s) if s else "defaults",
)
def test_fused_pass_makes_the_numpy_maps(stack, settings):
    p, od = stack
    fused, numpy = _both(p, od, settings)
    assert fused.metadata["kernel"] == "fused" and numpy.metadata["kernel"] == "numpy"
    assert_same_maps(fused, numpy)
    # the bad pixels: none of the two is a fit; a filled single NaN is
    assert np.isnan(fused.fractions[:, 3, 5]).all() and np.isnan(fused.thickness[40, 40])
    assert np.isfinite(fused.thickness[33, 12]) and np.isfinite(fused.thickness[20, 21])
    if settings.get("max_bad_fraction") != 0.2:
        assert np.isnan(fused.thickness[30, 30])  # 11 of 100 energies bad: above 10 %
    else:
        assert np.isfinite(fused.thickness[30, 30])


def test_measured_noise_gives_the_same_chi_square(stack):
    p, od = stack
    noise = np.full(od.shape[0], 0.004)
    fused, numpy = _both(p, od, {}, noise=noise)
    assert_same_maps(fused, numpy)
    assert "chi2_red uses the measured per-energy noise" in fused.metadata["notes"]


def test_raw_frames_with_dark_and_flat_take_the_copying_path(stack):
    p, _ = stack
    maps = []
    for kernel in ("fused", "numpy"):
        settings = {**NO_REGISTRATION, "compute": {"kernel": kernel}}
        maps.append(
            analyze(p.frames, p.energies, p.references, dark=p.dark, flat=p.flat, settings=settings)
        )
    assert_same_maps(*maps)


def test_admm_reaches_the_exact_fit(stack):
    """ADMM stops at a tolerance, judged over the pixels it iterates together (a tile here, a
    block in the numpy pass): its fractions agree with the exact NNLS to that tolerance, not
    bit for bit, and are as close to the truth."""
    p, od = stack
    fused, numpy = _both(p, od, {"fit": {"method": "admm"}})
    exact = analyze(od, p.energies, p.references, mode="absorbance", settings=NO_REGISTRATION)
    inside = exact.mask
    gap = np.abs(fused.fractions[:, inside] - exact.fractions[:, inside])
    assert np.median(gap) < 0.005 and np.percentile(gap, 99) < 0.03
    truth = p.fractions[:, inside]
    error = np.median(np.abs(fused.fractions[:, inside] - truth))
    assert error < np.median(np.abs(exact.fractions[:, inside] - truth)) + 0.005
    np.testing.assert_allclose(fused.thickness, numpy.thickness, rtol=1e-5, atol=1e-6)
    for name in ("edge_energy", "peak_energy"):
        np.testing.assert_allclose(getattr(fused, name), getattr(numpy, name), rtol=1e-6)


def test_the_comparison_sees_a_different_map(stack):
    """assert_same_maps is no formality: E0 at half height is not E0 at the derivative, and
    an unconstrained fit's fractions are not the non-negative fit's."""
    p, od = stack
    half_height, _ = _both(
        p, od, {"features": {"edge_method": "half_height"}, "mask": {"n_clusters": 0}}
    )
    lstsq, _ = _both(p, od, {"fit": {"method": "lstsq"}, "mask": {"n_clusters": 0}})
    _, numpy = _both(p, od, {"mask": {"n_clusters": 0}})
    with pytest.raises(AssertionError, match="edge_energy"):
        assert_same_maps(half_height, numpy)
    with pytest.raises(AssertionError, match="fractions"):
        assert_same_maps(lstsq, numpy)


@pytest.mark.parametrize(
    ("settings", "kernel"),
    [
        ({}, "fused"),
        ({"compute": {"kernel": "numpy"}}, "numpy"),
        ({"fit": {"errors": True}}, "numpy"),
        ({"fit": {"model": "optical_density"}}, "numpy"),
        ({"denoise": {"components": 3}}, "numpy"),
    ],
)
def test_settings_the_fused_pass_does_not_cover_take_the_numpy_pass(stack, settings, kernel):
    p, od = stack
    chosen = {**NO_REGISTRATION, **settings}
    maps = analyze(od, p.energies, p.references, mode="absorbance", settings=chosen)
    assert maps.metadata["kernel"] == kernel
    assert np.isfinite(maps.fractions[:, maps.mask]).all()


def test_blocks_run_elsewhere_give_the_same_maps(stack):
    """A :class:`RowTask` (how a Dask worker runs a block) carries the fused tables."""
    p, od = stack

    def here(task, frames, row_blocks):
        for rows in row_blocks:
            yield rows, task(frames[:, rows], rows)

    settings = {**NO_REGISTRATION, "block_pixels": 1024}
    local = analyze(od, p.energies, p.references, mode="absorbance", settings=settings)
    elsewhere = analyze(
        od, p.energies, p.references, mode="absorbance", settings=settings, blocks=here
    )
    assert elsewhere.metadata["kernel"] == "fused"
    assert_same_maps(elsewhere, local, fractions_atol=1e-6)


def test_a_scan_of_few_pre_edge_energies_gets_the_same_mask():
    """Under 4 pre-edge energies the signal-to-noise mask reads the edge jump map too (the
    noise cap of the fit's residual): the fused pass makes it as the numpy pass does."""
    p = make_phantom((96, 96), references=("NiO", "LiNiO2"), drift=0, seed=11)
    chosen = [8250, 8280, 8310, 8335, 8340, 8344, 8348, 8351, 8356, 8380, 8420, 8450]
    rows = [int(np.argmin(np.abs(p.energies - e))) for e in chosen]
    maps = []
    for kernel in ("fused", "numpy"):
        settings = {**NO_REGISTRATION, "compute": {"kernel": kernel}}
        maps.append(
            analyze(
                p.frames[rows],
                p.energies[rows],
                p.references,
                dark=p.dark,
                flat=p.flat[rows],
                settings=settings,
            )
        )
    assert maps[0].metadata["kernel"] == "fused" and maps[1].metadata["kernel"] == "numpy"
    assert_same_maps(*maps)
