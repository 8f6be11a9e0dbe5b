"""Reconstruction of one energy: the rotation centre, FBP and SART, against a known slice."""

import numpy as np
import pytest
from skimage.transform import radon

from xanes_stream.errors import AnalysisError
from xanes_stream.imaging.tomography import (
    center_projections,
    find_center,
    reconstruct,
    shift_columns,
)

N = 32


def _slice():
    yy, xx = np.mgrid[0:N, 0:N]
    return ((yy - 12) ** 2 + (xx - 18) ** 2 < 25) + 0.5 * ((yy - 20) ** 2 + (xx - 10) ** 2 < 16)


def _projections(angles, offset=0.0, nz=3):
    """(n_angles, nz, N) absorption of the slice repeated nz times, axis at N // 2 + offset."""
    sinogram = radon(_slice().astype(float), theta=angles, circle=True).T
    return shift_columns(np.repeat(sinogram[:, None, :], nz, axis=1), offset)


WITH_PAIR = np.linspace(0, 180, 61)
WITHOUT_PAIR = np.linspace(0, 180, 60, endpoint=False)


@pytest.mark.parametrize("offset", [0.0, 1.3, -2.7, 3.45])
@pytest.mark.parametrize(
    ("angles", "method"), [(WITH_PAIR, "pair"), (WITH_PAIR, "mass"), (WITHOUT_PAIR, "auto")]
)
def test_centre_found_within_half_a_pixel_of_a_planted_offset(offset, angles, method):
    found = find_center(_projections(angles, offset), angles, method=method)
    assert abs(found - (N // 2 + offset)) < 0.5
    assert abs(found - (N // 2 + offset)) < 0.1  # in fact far better


def test_pair_method_needs_a_pair():
    with pytest.raises(AnalysisError, match="180 degrees apart"):
        find_center(_projections(WITHOUT_PAIR), WITHOUT_PAIR, method="pair")


def test_centring_undoes_the_offset():
    p = _projections(WITH_PAIR)
    moved = center_projections(shift_columns(p, 2.25), N // 2 + 2.25)
    inner = slice(4, N - 4)
    np.testing.assert_allclose(
        moved[..., inner], p[..., inner], atol=1e-2 * p.max()
    )  # sinc ringing of sharp edges


@pytest.mark.parametrize(("method", "iterations"), [("fbp", 1), ("sart", 1), ("sart", 3)])
def test_fbp_and_sart_reconstruct_the_slice_of_an_off_centre_scan(method, iterations):
    truth = _slice()
    p = _projections(WITH_PAIR, offset=1.7)
    volume = reconstruct(p, WITH_PAIR, method=method, sart_iterations=iterations)
    assert volume.shape == (3, N, N) and volume.dtype == np.float32
    yy, xx = np.mgrid[0:N, 0:N]
    circle = (yy - N // 2) ** 2 + (xx - N // 2) ** 2 < (N // 2 - 2) ** 2
    error = np.abs(volume - truth)[:, circle].mean()
    assert error < 0.06  # mean |error| on values of 0, 0.5 and 1
    # a wrong centre blurs the slice: the automatic one must beat it clearly
    wrong = reconstruct(p, WITH_PAIR, method=method, center=N // 2, sart_iterations=iterations)
    assert np.abs(wrong - truth)[:, circle].mean() > 1.5 * error


def test_transmission_is_converted_with_minus_ln():
    p = _projections(WITH_PAIR) * 0.05
    from_t = reconstruct(np.exp(-p), WITH_PAIR, mode="transmission", center=N // 2)
    from_a = reconstruct(p, WITH_PAIR, center=N // 2)
    np.testing.assert_allclose(from_t, from_a, atol=1e-4)


@pytest.mark.parametrize(
    ("projections", "angles", "message"),
    [
        (np.ones((4, 8)), np.arange(4.0), "n_angles, nz, nx"),
        (np.ones((4, 2, 8)), np.arange(5.0), "5 angles for 4"),
        (np.ones((4, 2, 8)), np.arange(4.0), "span only"),
    ],
)
def test_bad_input_is_refused_with_a_reason(projections, angles, message):
    with pytest.raises(AnalysisError, match=message):
        reconstruct(projections, angles)


def test_zero_transmission_is_refused():
    p = np.exp(-_projections(WITH_PAIR) * 0.05)
    p[3, 1, 5] = 0.0
    with pytest.raises(AnalysisError, match="not finite"):
        reconstruct(p, WITH_PAIR, mode="transmission")


@pytest.mark.parametrize(("nx", "n_angles"), [(32, 60), (33, 45)])
@pytest.mark.parametrize("filter_name", ["ramp", "hann"])
def test_vectorised_fbp_is_scikit_image_iradon_slice_by_slice(nx, n_angles, filter_name):
    from skimage.transform import iradon

    from xanes_stream.imaging.tomography import filtered_back_projection

    angles = np.linspace(0, 180, n_angles)
    p = np.random.default_rng(0).random((n_angles, 3, nx))
    volume = filtered_back_projection(p, angles, filter_name=filter_name)
    for z in range(3):
        expected = iradon(p[:, z].T, theta=angles, filter_name=filter_name, circle=True)
        np.testing.assert_allclose(volume[z], expected, atol=1e-6)


def test_projection_of_a_volume_is_scikit_image_radon_per_slice():
    from xanes_stream.imaging.tomography import project

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:N, 0:N]
    volume = rng.random((3, N, N)) * ((yy - N // 2) ** 2 + (xx - N // 2) ** 2 < 14**2)
    projections = project(volume, WITH_PAIR)
    for z in range(3):
        np.testing.assert_allclose(
            projections[:, z], radon(volume[z], theta=WITH_PAIR, circle=True).T, atol=1e-9
        )
