"""Weighted Voronoi cells and the membrane wall definition."""

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree

from cellsynth.errors import CellsynthError
from cellsynth.simulate.annotations import membrane_mask
from cellsynth.simulate.membranes import (
    connect_cells,
    draw_weights,
    simulate_membranes,
    weighted_voronoi,
)

VOXEL = (1.5, 0.7, 0.9)


def _grid_um(shape, voxel):
    return np.stack(np.meshgrid(*[np.arange(n) * v for n, v in zip(shape, voxel)], indexing="ij"), -1).reshape(-1, 3)


def _blob(shape, voxel, centre, radii):
    points = _grid_um(shape, voxel)
    return (((points - centre) / radii) ** 2).sum(1).reshape(shape) <= 1


@pytest.mark.parametrize("block", [None, (5, 7, 6), (16, 16, 16)])
def test_equal_weights_equal_brute_force_nearest_seed(rng, block):
    shape = (23, 41, 37)
    fg = _blob(shape, VOXEL, np.array([17, 14, 16]), np.array([18, 15, 17]))
    seeds = rng.uniform(0, 1, (40, 3)) * np.array(shape) * VOXEL
    labels = weighted_voronoi(fg, VOXEL, seeds, None, block=block, progress=False)
    _, nearest = cKDTree(seeds).query(_grid_um(shape, VOXEL))
    expected = np.where(fg, nearest.reshape(shape) + 1, 0)
    np.testing.assert_array_equal(labels, expected)


def test_weighted_equals_brute_force_argmin(rng):
    shape = (20, 30, 26)
    fg = np.ones(shape, bool)
    seeds = rng.uniform(0, 1, (25, 3)) * np.array(shape) * VOXEL
    weights = draw_weights(25, 0.6, rng)
    labels = weighted_voronoi(fg, VOXEL, seeds, weights, block=(5, 5, 5), progress=False)
    points = _grid_um(shape, VOXEL)
    weighted = np.linalg.norm(points[:, None, :] - seeds[None], axis=-1) / weights[None]
    np.testing.assert_array_equal(labels, weighted.argmin(1).reshape(shape) + 1)
    # with this spread the walls bend: the result differs from plain Voronoi
    assert (labels != weighted_voronoi(fg, VOXEL, seeds, None, progress=False)).any()


def _assert_cells_valid(sample, fg):
    labels = sample.labels
    assert labels.dtype == np.uint16
    ids = np.unique(labels[labels > 0])
    np.testing.assert_array_equal(ids, np.arange(1, labels.max() + 1))
    np.testing.assert_array_equal(labels > 0, fg)  # whole cells fill the organism
    assert not (sample.mask.astype(bool) & ~fg).any()
    np.testing.assert_array_equal((labels > 0) | (sample.mask > 0), fg)  # cells plus membranes fill it
    for index, box in enumerate(ndimage.find_objects(labels)):
        _, pieces = ndimage.label(labels[box] == index + 1)  # face connectivity
        assert pieces == 1, f"cell {index + 1} has {pieces} pieces"


def test_cells_connected_and_fill_a_non_convex_organism(rng):
    shape = (30, 60, 60)
    voxel = (1.0, 1.0, 1.0)
    points = _grid_um(shape, voxel)
    radial = np.hypot(points[:, 1] - 30, points[:, 2] - 30)
    torus = (np.hypot(radial - 18, points[:, 0] - 15) <= 10).reshape(shape)
    island = np.zeros(shape, bool)
    island[2:5, 2:5, 2:5] = True  # a part of the organism no seed is near
    fg = torus | island
    angles = rng.uniform(0, 2 * np.pi, 30)
    seeds = np.stack([rng.uniform(8, 22, 30), 30 + 18 * np.sin(angles), 30 + 18 * np.cos(angles)], 1)
    sample = simulate_membranes(fg, voxel, seeds, rng, weight_spread=0.5, membrane_thickness_um=2.0, progress=False)
    _assert_cells_valid(sample, fg)
    assert sample.metadata["voxels_reassigned_for_connectivity"] > 0
    island_label = sample.labels[3, 3, 3]
    assert (sample.labels == island_label).sum() == 27
    row = list(sample.positions["label"]).index(island_label)
    assert [sample.positions[f"{a}_um"][row] for a in "zyx"] == [3.0, 3.0, 3.0]  # its centroid
    assert np.isnan(sample.positions["weight"][row])


def test_connect_cells_moves_a_stray_piece_to_the_neighbour_it_touches_most():
    labels = np.zeros((1, 5, 9), np.int32)
    labels[0, :, :4] = 1
    labels[0, :, 4:] = 2
    labels[0, 1:3, 6:8] = 1  # a piece of 1 inside 2
    fixed, moved = connect_cells(labels.copy())
    assert moved == 4 and (fixed[0, 1:3, 6:8] == 2).all() and (fixed[0, :, :4] == 1).all()


def test_connect_cells_leaves_one_piece_per_label_and_keeps_the_largest(rng):
    # coarse random labels, upsampled: many cells in several pieces, pieces at the volume's faces
    labels = np.kron(rng.integers(1, 6, (4, 6, 6)), np.ones((3, 3, 3), np.int64)).astype(np.int32)
    labels[rng.random(labels.shape) < 0.05] = 7  # single-voxel pieces scattered everywhere
    face = ndimage.generate_binary_structure(3, 1)
    largest = {}
    for value in np.unique(labels):
        pieces, _ = ndimage.label(labels == value, structure=face)
        largest[value] = pieces == np.argmax(np.bincount(pieces.ravel())[1:]) + 1
    fixed, moved = connect_cells(labels.copy())
    assert moved >= int((fixed != labels).sum()) > 0  # a piece may rejoin its label through one moved before
    for value in np.unique(fixed):
        assert ndimage.label(fixed == value, structure=face)[1] == 1
    for value, keep in largest.items():
        assert (fixed[keep] == value).all()


def test_simulation_is_deterministic_and_reports_cells(rng):
    fg = _blob((24, 40, 40), VOXEL, np.array([18, 14, 18]), np.array([17, 13, 17]))
    seeds = rng.uniform(0, 1, (30, 3)) * np.array([24, 40, 40]) * VOXEL
    seeds[0] = (-50.0, -50.0, -50.0)  # far outside: no cell
    a = simulate_membranes(fg, VOXEL, seeds, np.random.default_rng(3), progress=False)
    b = simulate_membranes(fg, VOXEL, seeds, np.random.default_rng(3), progress=False)
    assert a.labels.tobytes() == b.labels.tobytes() and a.mask.tobytes() == b.mask.tobytes()
    _assert_cells_valid(a, fg)
    assert a.metadata["cells"] == a.labels.max() == len(a.positions["label"])
    assert a.metadata["seeds_without_cell"] >= 1
    volume = np.bincount(a.labels.ravel())[1:] * np.prod(VOXEL)
    np.testing.assert_allclose(a.positions["volume_um3"], volume)
    c = simulate_membranes(fg, VOXEL, seeds, np.random.default_rng(4), progress=False)
    assert (c.labels != a.labels).any()


def test_membrane_mask_is_symmetric_under_label_swaps(rng):
    fg = np.ones((20, 30, 30), bool)
    seeds = rng.uniform(0, 1, (12, 3)) * np.array([20, 30, 30]) * VOXEL
    labels = weighted_voronoi(fg, VOXEL, seeds, draw_weights(12, 0.3, rng), progress=False).astype(np.uint16)
    labels[:3] = 0  # an organism surface too
    permutation = np.concatenate([[0], rng.permutation(np.arange(1, 13))]).astype(np.uint16)
    for thickness in (1.0, 3.0, 5.0):
        a = membrane_mask(labels, VOXEL, thickness)
        np.testing.assert_array_equal(a, membrane_mask(permutation[labels], VOXEL, thickness))
        assert a.dtype == np.uint8 and set(np.unique(a)) <= {0, 1}
        assert not a[:3].any()


@pytest.mark.parametrize(("axis", "thickness", "expected_um"), [
    (0, 4.0, 4.0), (2, 4.0, 4.0), (0, 8.0, 8.0), (2, 2.0, 2.0), (2, 3.0, 3.0),
    (0, 2.0, 4.0),  # thinner than one voxel per side: the thinnest symmetric wall
])
def test_flat_wall_thickness_in_um_with_anisotropic_voxels(axis, thickness, expected_um):
    voxel = (2.0, 0.5, 0.5)
    shape = [30, 30, 30]
    labels = np.ones(shape, np.uint16)
    index = [slice(None)] * 3
    index[axis] = slice(15, None)
    labels[tuple(index)] = 2
    wall = membrane_mask(labels, voxel, thickness)
    profile = wall.sum(axis=tuple(a for a in range(3) if a != axis)) / (30 * 30)
    assert set(np.unique(profile)) <= {0, 1}  # the wall is a full plane
    marked = np.flatnonzero(profile)
    assert len(marked) * voxel[axis] == expected_um
    assert marked.mean() == 14.5  # centred on the interface between voxels 14 and 15


def test_membrane_mask_walls_at_the_organism_surface():
    labels = np.ones((9, 9, 9), np.uint16)
    fg = np.zeros(labels.shape, bool)
    fg[2:7, 2:7, 2:7] = True
    wall = membrane_mask(labels, (1, 1, 1), 2.0, foreground=fg)
    expected = fg.copy()
    expected[3:6, 3:6, 3:6] = False
    np.testing.assert_array_equal(wall, expected)
    assert not membrane_mask(labels, (1, 1, 1), 2.0).any()  # the volume border is not a wall


def test_errors_are_user_errors(rng):
    fg = np.ones((8, 8, 8), np.uint8)
    with pytest.raises(CellsynthError, match="empty"):
        simulate_membranes(np.zeros_like(fg), (1, 1, 1), [[1, 1, 1]], rng)
    with pytest.raises(CellsynthError, match="no cell positions"):
        simulate_membranes(fg, (1, 1, 1), np.zeros((0, 3)), rng)
    with pytest.raises(CellsynthError, match="spread"):
        simulate_membranes(fg, (1, 1, 1), [[1, 1, 1]], rng, weight_spread=1.5)
    with pytest.raises(CellsynthError, match="thickness"):
        membrane_mask(fg, (1, 1, 1), 0.0)
    with pytest.raises(CellsynthError, match="foreground shape"):
        membrane_mask(fg, (1, 1, 1), 1.0, foreground=np.ones((2, 2, 2)))
    with pytest.raises(CellsynthError, match="seed"):
        weighted_voronoi(fg, (1, 1, 1), [[np.nan, 1, 1]])
