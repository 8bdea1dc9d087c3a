"""Positional map (Eq. 1) against brute-force distances, and the organism foreground."""

import numpy as np
import pytest
from scipy import ndimage

from cellsynth.conditioning import (
    cell_spacing_um,
    foreground_from_image,
    organism_from_labels,
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


# ---------------------------------------------------------------------- the organism from labels


def _ball_closing_reference(cells, voxel, radius_um):
    """scipy binary closing with an explicit ellipsoidal ball, on the mirrored volume (independent reference)."""
    r = np.ceil(radius_um / np.asarray(voxel)).astype(int) + 1
    grid = np.ogrid[tuple(slice(-k, k + 1) for k in r)]
    ball = sum((g * v) ** 2 for g, v in zip(grid, voxel)) <= radius_um ** 2
    padded = np.pad(cells, [(k, k) for k in r], mode="reflect")
    padded = np.pad(padded, [(k, k) for k in r])  # room for the dilation beyond the mirrored part
    closed = ndimage.binary_closing(padded, ball)
    return ndimage.binary_fill_holes(closed[tuple(slice(2 * k, 2 * k + s) for k, s in zip(r, cells.shape))] | cells)


def test_organism_from_labels_is_a_ball_closing_of_the_mirrored_cells():
    rng = np.random.default_rng(3)
    labels = np.zeros((12, 30, 30), np.uint16)
    for i, c in enumerate(rng.uniform((3, 8, 8), (9, 22, 22), (5, 3)), 1):
        zz, yy, xx = np.indices(labels.shape)
        labels[(zz - c[0]) ** 2 + ((yy - c[1]) / 1.5) ** 2 + ((xx - c[2]) / 1.5) ** 2 < 4] = i
    voxel = (1.0, 0.5, 0.5)
    organism = organism_from_labels(labels, voxel, closing_um=2.5)
    np.testing.assert_array_equal(organism.astype(bool), _ball_closing_reference(labels > 0, voxel, 2.5))
    assert organism.dtype == np.uint8 and (organism[labels > 0] == 1).all()


def test_organism_of_a_tissue_crop_is_the_whole_crop():
    # nuclei on a jittered grid fill the crop, with cell-free corners at its border: the crop is tissue
    rng = np.random.default_rng(0)
    labels = np.zeros((20, 40, 40), np.uint16)
    zz, yy, xx = np.indices(labels.shape)
    centres = [(z, y, x) for z in (5, 14) for y in (9, 20, 31) for x in (9, 20, 31)]
    for i, c in enumerate(np.array(centres) + rng.uniform(-1.5, 1.5, (len(centres), 3)), 1):
        labels[(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < 9] = i
    assert (labels[:, :4, :4] == 0).all()
    assert cell_spacing_um(labels, (1, 1, 1)) == pytest.approx(11, abs=2)
    assert organism_from_labels(labels, (1, 1, 1)).all()
    np.testing.assert_array_equal(positional_map(organism_from_labels(labels, (1, 1, 1)), (1, 1, 1)), 1.0)
    # without the mirror the cell-free corners would leave the organism
    assert not _ball_closing_reference(labels > 0, (1, 1, 1), 3.0).all()


def test_organism_from_labels_edge_cases():
    single = np.zeros((5, 9, 9), np.uint16)
    single[1:4, 2:7, 2:7] = 7
    np.testing.assert_array_equal(organism_from_labels(single, (1, 1, 1)), single > 0)
    with pytest.raises(CellsynthError, match="empty"):
        organism_from_labels(np.zeros((3, 4, 5), np.uint8), (1, 1, 1))
    with pytest.raises(CellsynthError, match="closing"):
        organism_from_labels(single, (1, 1, 1), closing_um=-1)
    with pytest.raises(CellsynthError, match="two cells"):
        cell_spacing_um(single, (1, 1, 1))
    assert cell_spacing_um(np.array([[[1, 0, 0, 2, 0, 3]]]), (1, 1, 2)) == pytest.approx(4.0)


@pytest.mark.parametrize(("kind", "organism"), [
    ("membranes", "box"), ("nuclei", "box"), ("membranes", "ellipsoid"), ("nuclei", "ellipsoid"),
])
def test_a_samples_labels_give_back_its_organism(kind, organism):
    """Sample folder, labels file and training labels agree on the organism (and so on the map)."""
    from cellsynth.simulate.pipeline import simulate_sample

    extra = {"cell_size_um": 5.0, **({"radius_um": 1.5} if kind == "nuclei" else {})}
    if organism == "ellipsoid":  # a dome on the deepest face, as the meristem-like preset
        extra.update(semi_axes_um=(10.0, 12.0, 12.0), center_um=(12.0, 16.0, 16.0))
    sample = simulate_sample(kind, (24, 64, 64), (0.5, 0.5, 0.5), np.random.default_rng(1), organism=organism,
                             **extra)
    from_labels = organism_from_labels(sample.labels, sample.voxel_size)
    if organism == "box":
        assert from_labels.all() and sample.foreground.all()
        return
    expected = positional_map(sample.foreground, sample.voxel_size)
    assert 0.2 < sample.foreground.mean() < 0.3
    assert np.abs(positional_map(from_labels, sample.voxel_size) - expected).mean() < 0.01
