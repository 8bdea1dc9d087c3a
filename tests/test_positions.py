"""Cell positions: Poisson-disk, layer-wise assembly, CSV points."""

import warnings

import edt
import numpy as np
import pytest
from scipy.spatial import cKDTree

from cellsynth.conditioning import signed_distance_um
from cellsynth.errors import CellsynthError
from cellsynth.io import write_positions
from cellsynth.simulate import positions as P


def _ball(shape=(40, 60, 60), voxel=(1.0, 1.0, 1.0), radius=18.0):
    grid = np.meshgrid(*[np.arange(n) * v for n, v in zip(shape, voxel)], indexing="ij", sparse=True)
    center = [(n - 1) * v / 2 for n, v in zip(shape, voxel)]
    return (sum((g - c) ** 2 for g, c in zip(grid, center)) <= radius**2).astype(np.uint8)


def _min_distance(points):
    return cKDTree(points).query(points, k=2)[0][:, 1].min()


def _in_mask(points, mask, voxel):
    index = np.round(points / np.asarray(voxel)).astype(int)
    return np.all((index >= 0) & (index < mask.shape), axis=1) & (mask[tuple(np.clip(index, 0, None).T)] > 0)


@pytest.mark.parametrize("voxel", [(1.0, 1.0, 1.0), (2.0, 0.5, 0.75)])
def test_poisson_disk_keeps_distance_and_stays_inside(voxel):
    fg = _ball(voxel=voxel, shape=(20, 80, 54) if voxel[0] == 2 else (40, 60, 60))
    points = P.poisson_disk_positions(fg, voxel, 6.0, np.random.default_rng(0), count=40)
    assert points.shape == (40, 3)
    assert _min_distance(points) >= 6.0
    assert _in_mask(points, fg, voxel).all()


def test_poisson_disk_fill_is_dense_and_deterministic():
    fg = np.ones((30, 30, 30), np.uint8)
    a = P.poisson_disk_positions(fg, (1, 1, 1), 5.0, np.random.default_rng(1))
    b = P.poisson_disk_positions(fg, (1, 1, 1), 5.0, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    # Random sequential adsorption jams at a packing fraction of about 0.38; require >= 0.25.
    packing = len(a) * np.pi / 6 * 5.0**3 / 30**3
    assert packing > 0.25 and _min_distance(a) >= 5.0
    # Saturated: no empty spot is left where another point would fit, up to a little.
    probe = np.random.default_rng(2).uniform(0, 29, (20000, 3))
    free = cKDTree(a).query(probe)[0] >= 5.0
    assert free.mean() < 0.01


def test_too_many_requested_warns_with_the_number_placed():
    fg = np.ones((12, 12, 12), np.uint8)
    with pytest.warns(UserWarning, match=r"only \d+ of 500 cells fit"):
        points = P.poisson_disk_positions(fg, (1, 1, 1), 6.0, np.random.default_rng(0), count=500)
    assert 0 < len(points) < 500
    with pytest.warns(UserWarning, match=r"only \d+ of 500 cells fit"):
        P.layered_positions(fg, (1, 1, 1), 6.0, np.random.default_rng(0), count=500)


def test_depth_is_the_signed_distance_inside():
    fg = _ball()
    for voxel in [(1, 1, 1), (2.0, 0.5, 1.0)]:
        depth = P.depth_um(fg, voxel)
        inside = fg > 0
        np.testing.assert_array_equal(depth[inside], signed_distance_um(fg, voxel)[inside])
        assert np.all(depth[~inside] == 0)


def test_depth_of_a_box_is_the_distance_to_the_faces():
    box = np.ones((9, 14, 20), np.uint8)
    voxel = (2.0, 0.5, 1.3)
    np.testing.assert_allclose(P.depth_um(box, voxel), edt.edt(box, anisotropy=voxel, black_border=True), rtol=1e-6)


def test_layers_run_from_the_surface_inwards():
    fg = _ball(shape=(64, 64, 64), radius=30.0)
    spacing = 8.0
    points = P.layered_positions(fg, (1, 1, 1), spacing, np.random.default_rng(3))
    assert _min_distance(points) >= spacing and _in_mask(points, fg, (1, 1, 1)).all()
    depth = 30.0 - np.linalg.norm(points - 31.5, axis=1)  # analytic depth below the sphere
    layer = np.round((depth - spacing / 2) / spacing)
    nominal = np.abs(depth - (spacing / 2 + layer * spacing)) <= spacing / 4 + 1.0
    assert nominal.mean() > 0.9  # all but the last (core) layer sit on their nominal depth
    assert layer.max() >= 3  # several layers, down to the core
    assert np.all(np.diff(layer) >= 0)  # outer layers first


def test_layered_count_fills_the_outer_layer_first():
    fg = _ball(shape=(64, 64, 64), radius=30.0)
    points = P.layered_positions(fg, (1, 1, 1), 8.0, np.random.default_rng(4), count=30)
    depth = 30.0 - np.linalg.norm(points - 31.5, axis=1)
    assert len(points) == 30 and depth.max() < 8.0


def test_layered_positions_in_a_box_use_its_faces():
    box = np.ones((30, 30, 30), np.uint8)
    points = P.layered_positions(box, (1, 1, 1), 10.0, np.random.default_rng(0))
    face_distance = np.minimum(points + 1, 30 - points).min(axis=1)
    assert np.mean(np.abs(face_distance - 5.0) <= 3.5) > 0.7
    assert _min_distance(points) >= 10.0


def test_tiny_organism_terminates():
    fg = np.zeros((10, 10, 10), np.uint8)
    fg[5, 5, 5] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert len(P.layered_positions(fg, (1, 1, 1), 30.0, np.random.default_rng(0))) == 1
        assert len(P.poisson_disk_positions(fg, (1, 1, 1), 30.0, np.random.default_rng(0), count=5)) == 1


def test_empty_organism_and_bad_values_raise():
    rng = np.random.default_rng(0)
    with pytest.raises(CellsynthError, match="empty"):
        P.poisson_disk_positions(np.zeros((5, 5, 5)), (1, 1, 1), 2.0, rng)
    with pytest.raises(CellsynthError, match="empty"):
        P.layered_positions(np.zeros((5, 5, 5)), (1, 1, 1), 2.0, rng)
    with pytest.raises(CellsynthError):
        P.poisson_disk_positions(np.ones((5, 5, 5)), (1, 1, 1), 0.0, rng)
    with pytest.raises(CellsynthError):
        P.layered_positions(np.ones((5, 5, 5)), (1, 1, 1), 2.0, rng, count=-1)


# --------------------------------------------------------------------------- CSV


def test_csv_in_um_and_in_voxels(tmp_path):
    voxel, shape = (2.0, 0.5, 1.0), (10, 40, 20)
    write_positions(tmp_path / "um.csv", {"label": np.array([1, 2]), "z_um": np.array([4.0, 10.0]),
                                          "y_um": np.array([3.0, 1.0]), "x_um": np.array([5.0, 2.5])})
    np.testing.assert_allclose(P.positions_from_csv(tmp_path / "um.csv", voxel, shape), [[4, 3, 5], [10, 1, 2.5]])
    (tmp_path / "px.csv").write_text("Z,Y,X\n2,6,5\n5,2,2.5\n")
    np.testing.assert_allclose(P.positions_from_csv(tmp_path / "px.csv", voxel, shape), [[4, 3, 5], [10, 1, 2.5]])
    (tmp_path / "px2.csv").write_text("z_px,y_px,x_px,score\n2,6,5,0.3\n")
    np.testing.assert_allclose(P.positions_from_csv(tmp_path / "px2.csv", voxel, shape), [[4, 3, 5]])


@pytest.mark.parametrize("text, message", [
    ("z_um,y_um,x_um\n1,1,1\n100,1,1\n", "outside"),
    ("z,y,x\n-3,1,1\n", "outside"),
    ("a,b,c\n1,2,3\n", "columns"),
    ("z,y,x\n", "no positions"),
    ("z,y,x\n1,2\n", "columns"),
    ("z,y,x\n1,two,3\n", "numbers"),
    ("z,y,x\n1,nan,3\n", "non-finite"),
    ("", "empty"),
])
def test_bad_csv_raises(tmp_path, text, message):
    (tmp_path / "p.csv").write_text(text)
    with pytest.raises(CellsynthError, match=message):
        P.positions_from_csv(tmp_path / "p.csv", (1, 1, 1), (10, 10, 10))


def test_missing_csv_raises(tmp_path):
    with pytest.raises(CellsynthError, match="not found"):
        P.positions_from_csv(tmp_path / "nope.csv", (1, 1, 1), (10, 10, 10))


def test_check_positions_rejects_points_outside_the_organism():
    fg = np.zeros((10, 10, 10), np.uint8)
    fg[2:8, 2:8, 2:8] = 1
    np.testing.assert_array_equal(P.check_positions(np.array([[5.0, 5, 5]]), fg, (1, 1, 1)), [[5, 5, 5]])
    with pytest.raises(CellsynthError, match="outside the organism"):
        P.check_positions(np.array([[5.0, 5, 5], [0, 0, 0]]), fg, (1, 1, 1))
    with pytest.raises(CellsynthError, match="outside the volume"):
        P.check_positions(np.array([[5.0, 5, 50]]), fg, (1, 1, 1))
