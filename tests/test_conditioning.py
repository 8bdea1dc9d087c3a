"""Positional map (Eq. 1) against brute-force distances, and the organism foreground."""

import numpy as np
import pytest
from scipy import ndimage

from cellsynth.conditioning import (
    foreground_from_image,
    positional_map,
    positional_map_from_distance,
    signed_distance_um,
)
from cellsynth.errors import CellsynthError


def _brute_force_signed_distance(foreground, voxel):
    """For each voxel, the smallest µm distance to a voxel of the other region."""
    coords = np.argwhere(np.ones(foreground.shape, bool)) * np.asarray(voxel)
    inside = foreground.ravel() != 0
    dist = np.empty(inside.size)
    for i, (point, is_in) in enumerate(zip(coords, inside)):
        other = coords[inside != is_in]
        dist[i] = np.sqrt(((other - point) ** 2).sum(axis=1).min())
    return np.where(inside, dist, -dist).reshape(foreground.shape)


@pytest.mark.parametrize("voxel", [(1.0, 1.0, 1.0), (2.0, 0.5, 0.7), (0.3, 1.1, 1.1)])
def test_positional_map_matches_eq1_with_brute_force_distance(voxel):
    rng = np.random.default_rng(5)
    foreground = (ndimage.gaussian_filter(rng.random((9, 11, 12)), 1.5) > 0.5).astype(np.uint8)
    assert 0 < foreground.mean() < 1
    reference = _brute_force_signed_distance(foreground, voxel)
    np.testing.assert_allclose(signed_distance_um(foreground, voxel), reference, rtol=1e-5)
    alpha, beta = 3.0, 7.0
    expected = np.where(reference > 0, np.tanh(reference / alpha), np.tanh(reference / beta))
    pos = positional_map(foreground, voxel, alpha, beta)
    assert pos.dtype == np.float32
    np.testing.assert_allclose(pos, expected, atol=1e-6)


def test_slabwise_conversion_equals_whole():
    foreground = np.zeros((10, 20, 20), np.uint8)
    foreground[2:8, 3:17, 4:15] = 1
    dist = signed_distance_um(foreground, (1, 0.5, 0.5))
    whole = positional_map(foreground, (1, 0.5, 0.5), 10, 20)
    slabs = np.concatenate([positional_map_from_distance(dist[z:z + 3], 10, 20) for z in range(0, 10, 3)])
    np.testing.assert_array_equal(whole, slabs)


def test_edge_cases_and_errors():
    full = np.ones((3, 4, 5), np.uint8)
    assert np.isinf(signed_distance_um(full, (1, 1, 1))).all()
    np.testing.assert_array_equal(positional_map(full, (1, 1, 1)), 1.0)
    with pytest.raises(CellsynthError, match="empty"):
        positional_map(np.zeros((3, 4, 5)), (1, 1, 1))
    with pytest.raises(CellsynthError, match="alpha"):
        positional_map(full, (1, 1, 1), alpha=0)
    with pytest.raises(CellsynthError, match="beta"):
        positional_map_from_distance(np.zeros(3), beta=np.nan)
    fg = full.copy()
    signed_distance_um(fg, (1, 1, 1))
    np.testing.assert_array_equal(fg, full)  # the input is not modified


def test_foreground_from_image_finds_a_blurred_blob():
    rng = np.random.default_rng(0)
    shape = (20, 40, 40)
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    blob = sum(((g - s / 2) / (0.35 * s)) ** 2 for g, s in zip(grid, shape)) < 1
    image = ndimage.gaussian_filter(blob.astype(float), 1) + rng.normal(0, 0.1, shape)
    mask = foreground_from_image(image, (1, 0.5, 0.5))
    assert mask.dtype == np.uint8
    assert (mask.astype(bool) == blob).mean() > 0.97


def test_overwrite_reuses_the_input_and_gives_the_same_distance():
    rng = np.random.default_rng(2)
    foreground = ndimage.gaussian_filter(rng.random((8, 20, 20)), 2) > 0.5
    expected = signed_distance_um(foreground, (1, 0.4, 0.4))
    scratch = foreground.copy()
    np.testing.assert_array_equal(signed_distance_um(scratch, (1, 0.4, 0.4), overwrite=True), expected)
