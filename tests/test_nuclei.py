"""SH nuclei at given positions."""

import numpy as np
import pytest
from scipy import ndimage

from cellsynth.errors import CellsynthError
from cellsynth.simulate.nuclei import axis_rotation, elongation_scale, simulate_nuclei
from cellsynth.simulate.positions import poisson_disk_positions


def _one_piece_each(labels):
    for index, box in enumerate(ndimage.find_objects(labels)):
        assert box is not None, f"label {index + 1} is missing"
        assert ndimage.label(labels[box] == index + 1)[1] == 1, f"label {index + 1} is in pieces"


def test_crowded_nuclei_do_not_overlap_and_are_one_piece_each():
    rng = np.random.default_rng(0)
    fg = np.zeros((40, 48, 48), np.uint8)
    fg[2:38, 3:45, 3:45] = 1
    # Centres much closer than two radii: nuclei compete for space and are cut.
    centers = poisson_disk_positions(fg, (1, 1, 1), 6.0, rng, count=40)
    sample = simulate_nuclei(fg, (1, 1, 1), centers, rng, radius_um=6.0, radius_std_um=1.0, smoothness=2.0,
                             sh_order=10)
    labels = sample.labels
    assert labels.dtype == np.uint16
    n = int(labels.max())
    np.testing.assert_array_equal(np.unique(labels), np.arange(n + 1))  # 1..N consecutive
    _one_piece_each(labels)
    np.testing.assert_array_equal(sample.mask, (labels > 0).astype(np.uint8))
    assert not np.any(sample.mask & (fg == 0))  # clipped to the organism
    np.testing.assert_array_equal(sample.positions["label"], np.arange(1, n + 1))
    np.testing.assert_allclose(sample.positions["volume_um3"], np.bincount(labels.ravel())[1:])
    assert sample.metadata["nuclei_placed"] == n


def test_columns_and_metadata():
    rng = np.random.default_rng(1)
    fg = np.ones((30, 30, 30), np.uint8)
    sample = simulate_nuclei(fg, (1.0, 0.5, 0.5), np.array([[15.0, 7.5, 7.5]]), rng, radius_um=4.0, sh_order=6)
    assert list(sample.positions) == ["label", "z_um", "y_um", "x_um", "z_px", "y_px", "x_px", "radius_um",
                                      "smoothness", "sh_order", "elongation", "volume_um3"]
    assert (sample.positions["z_px"][0], sample.positions["y_px"][0], sample.positions["x_px"][0]) == (15, 15, 15)
    assert sample.metadata["kind"] == "nuclei" and sample.foreground.dtype == np.uint8


def test_same_seed_same_nuclei():
    fg = np.ones((30, 40, 40), np.uint8)
    centers = np.array([[15.0, 12, 12], [15, 28, 28], [10, 12, 30]])
    runs = [simulate_nuclei(fg, (1, 1, 1), centers, np.random.default_rng(5), radius_um=5.0, sh_order=12)
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0].labels, runs[1].labels)
    other = simulate_nuclei(fg, (1, 1, 1), centers, np.random.default_rng(6), radius_um=5.0, sh_order=12)
    assert not np.array_equal(runs[0].labels, other.labels)


@pytest.mark.parametrize("voxel", [(1.0, 1.0, 1.0), (2.0, 0.5, 0.5)])
def test_isolated_nuclei_have_the_requested_size(voxel):
    """Volume-equivalent radius within 5% of r (paper setting r ~ N(9, 1), gamma 5, l 20)."""
    rng = np.random.default_rng(2)
    shape = tuple(int(round(n / v)) for n, v in zip((80, 80, 80), voxel))
    fg = np.ones(shape, np.uint8)
    grid = np.array([[20.0, 20, 20], [20, 20, 60], [20, 60, 20], [20, 60, 60],
                     [60, 20, 20], [60, 20, 60], [60, 60, 20], [60, 60, 60]])
    radii = []
    for _ in range(3):
        sample = simulate_nuclei(fg, voxel, grid, rng, radius_um=9.0, radius_std_um=1.0, smoothness=5.0, sh_order=20)
        radii.extend((3 * sample.positions["volume_um3"] / (4 * np.pi)) ** (1 / 3))
    assert np.mean(radii) == pytest.approx(9.0, rel=0.05)


def test_elongation_along_a_given_orientation():
    rng = np.random.default_rng(3)
    fg = np.ones((40, 40, 40), np.uint8)
    axis = np.array([0.0, 1.0, 1.0]) / np.sqrt(2)
    sample = simulate_nuclei(fg, (1, 1, 1), np.array([[20.0, 20, 20]]), rng, radius_um=8.0, radius_std_um=0.0,
                             smoothness=50.0, sh_order=4, elongation=2.0, orientation=axis)
    pts = np.argwhere(sample.labels == 1).astype(float)
    evals, evecs = np.linalg.eigh(np.cov(pts.T))
    assert abs(evecs[:, -1] @ axis) > 0.99
    assert np.sqrt(evals[-1] / evals[0]) == pytest.approx(2.0, rel=0.05)


def test_rotation_helpers():
    rot = axis_rotation((0, 0, 2.0), roll=0.4)
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rot) == pytest.approx(1.0)
    np.testing.assert_allclose(rot[:, 0], [0, 0, 1])
    assert np.prod(elongation_scale(3.0)) == pytest.approx(1.0)


def test_bad_input_raises():
    rng = np.random.default_rng(0)
    fg = np.zeros((20, 20, 20), np.uint8)
    fg[5:15, 5:15, 5:15] = 1
    center = np.array([[10.0, 10, 10]])
    with pytest.raises(CellsynthError, match="do not fit"):
        simulate_nuclei(fg, (1, 1, 1), center, rng, radius_um=15.0)
    with pytest.raises(CellsynthError, match="outside the organism"):
        simulate_nuclei(fg, (1, 1, 1), np.array([[1.0, 1, 1]]), rng, radius_um=3.0)
    with pytest.raises(CellsynthError, match="outside the volume"):
        simulate_nuclei(fg, (1, 1, 1), np.array([[10.0, 10, 40]]), rng, radius_um=3.0)
    with pytest.raises(CellsynthError, match="empty"):
        simulate_nuclei(np.zeros_like(fg), (1, 1, 1), center, rng, radius_um=3.0)
    with pytest.raises(CellsynthError, match="no nucleus covers a voxel"):
        simulate_nuclei(fg, (1, 1, 1), np.array([[10.5, 10.5, 10.5]]), rng, radius_um=0.2, radius_std_um=0.0)
    for kwargs in ({"radius_std_um": -1.0}, {"sh_order": -2}, {"smoothness": -1.0}, {"elongation": 0.0},
                   {"law": "linear"}, {"radius_um": float("nan")}):
        with pytest.raises(CellsynthError):
            simulate_nuclei(fg, (1, 1, 1), center, rng, **{"radius_um": 3.0, **kwargs})
