"""Maps derived from labels: boundaries, centroids, surface distance, structure masks."""

import numpy as np
import pytest
from scipy import ndimage
from skimage.segmentation import find_boundaries

from cellsynth.errors import CellsynthError
from cellsynth.simulate.annotations import (
    DEFAULT_MEMBRANE_THICKNESS_UM,
    boundary_map,
    centroid_map,
    label_centroids_um,
    membrane_mask,
    structure_mask,
    surface_distance_map,
)

VOXEL = (2.0, 0.5, 0.75)


@pytest.fixture
def labels(rng):
    volume = np.zeros((16, 40, 30), np.uint16)
    for label in range(1, 9):
        z, y, x = rng.integers(2, 12), rng.integers(4, 34), rng.integers(4, 25)
        volume[z - 2 : z + 2, y - 4 : y + 5, x - 3 : x + 4] = label
    return volume


def test_boundary_map_matches_skimage_inner_boundaries(labels):
    expected = find_boundaries(labels, connectivity=1, mode="inner") & (labels > 0)
    # skimage treats the volume border as background; this package does not
    expected[:, :, [0, -1]] = expected[:, [0, -1], :] = False
    inner = boundary_map(labels)
    inner[:, :, [0, -1]] = inner[:, [0, -1], :] = 0
    np.testing.assert_array_equal(inner.astype(bool), expected)


def test_label_centroids_match_scipy(labels):
    ids, centroids, counts = label_centroids_um(labels, VOXEL)
    present = np.unique(labels[labels > 0])
    np.testing.assert_array_equal(ids, present)
    expected = np.array(ndimage.center_of_mass(np.ones_like(labels), labels, present)) * VOXEL
    np.testing.assert_allclose(centroids, expected, rtol=1e-12)
    np.testing.assert_array_equal(counts, ndimage.sum_labels(np.ones_like(labels), labels, present))


def test_centroid_map_peaks_at_centroids():
    labels = np.zeros((10, 20, 20), np.uint16)
    labels[2:7, 3:8, 4:11] = 1  # centroid at voxel (4, 5, 7)
    labels[4:9, 12:17, 10:15] = 2  # centroid at voxel (6, 14, 12)
    blobs = centroid_map(labels, VOXEL, sigma_um=1.5)
    assert blobs.dtype == np.float32 and blobs.max() == 1.0
    assert blobs[4, 5, 7] == 1.0 and blobs[6, 14, 12] == 1.0
    assert blobs[5, 5, 7] == pytest.approx(np.exp(-(2.0**2) / (2 * 1.5**2)), rel=1e-6)
    assert blobs[0, 19, 0] == 0


def test_surface_distance_of_a_slab():
    fg = np.zeros((12, 4, 4), np.uint8)
    fg[3:9] = 1
    dist = surface_distance_map(fg, VOXEL)
    np.testing.assert_allclose(dist[:, 0, 0], [-6, -4, -2, 2, 4, 6, 6, 4, 2, -2, -4, -6])


def test_structure_mask(labels):
    np.testing.assert_array_equal(structure_mask(labels, "nuclei", VOXEL), labels > 0)
    np.testing.assert_array_equal(
        structure_mask(labels, "membranes", VOXEL), membrane_mask(labels, VOXEL, DEFAULT_MEMBRANE_THICKNESS_UM))
    assert structure_mask(labels, "nuclei", VOXEL).dtype == np.uint8
    with pytest.raises(CellsynthError, match="unknown structure"):
        structure_mask(labels, "cytoplasm", VOXEL)
    with pytest.raises(CellsynthError, match="sigma"):
        centroid_map(labels, VOXEL, sigma_um=-1)
