"""Organism shapes: box, ellipsoid, SH blob, mask files, shape models."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cellsynth import io
from cellsynth.errors import CellsynthError
from cellsynth.shapes.ellipsoid import ellipsoid_mask
from cellsynth.shapes.shape_model import fit_shape_model
from cellsynth.simulate.organism import make_organism

VOXEL = (2.0, 0.8, 1.0)


def _centres(shape, voxel):
    return np.stack(np.meshgrid(*[np.arange(n) * v for n, v in zip(shape, voxel)], indexing="ij"), -1)


def test_box_is_the_whole_volume(rng):
    mask = make_organism("box", (3, 4, 5), VOXEL, rng)
    assert mask.dtype == np.uint8 and mask.all() and mask.shape == (3, 4, 5)


def test_ellipsoid_matches_the_analytic_formula(rng):
    shape, axes, centre = (20, 50, 40), np.array([15.0, 12.0, 9.0]), np.array([19.3, 20.1, 18.7])
    rotation = Rotation.from_euler("xyz", [30, -50, 70], degrees=True).as_matrix()
    mask = ellipsoid_mask(shape, VOXEL, axes, centre, rotation)
    q = (_centres(shape, VOXEL) - centre) @ rotation  # canonical coordinates R^T (p - c)
    np.testing.assert_array_equal(mask, ((q / axes) ** 2).sum(-1) <= 1)
    volume = mask.sum() * np.prod(VOXEL)
    assert volume == pytest.approx(4 / 3 * np.pi * axes.prod(), rel=0.02)


def test_ellipsoid_rotation_swaps_axes():
    quarter = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # a quarter turn in the z-y plane
    turned = ellipsoid_mask((31, 31, 31), (1, 1, 1), (12, 6, 9), rotation=quarter)
    np.testing.assert_array_equal(turned, ellipsoid_mask((31, 31, 31), (1, 1, 1), (6, 12, 9)))


def test_make_organism_ellipsoid_defaults_fill_the_volume(rng):
    mask = make_organism("ellipsoid", (20, 50, 40), VOXEL, rng)
    assert mask.sum() * np.prod(VOXEL) == pytest.approx(4 / 3 * np.pi * np.prod(0.45 * np.array([40, 40, 40])), rel=0.03)


def test_sh_blob_is_reproducible_and_within_its_semi_axes():
    shape, axes = (30, 60, 50), np.array([24.0, 20.0, 18.0])
    a = make_organism("sh", shape, VOXEL, np.random.default_rng(5), semi_axes_um=axes)
    b = make_organism("sh", shape, VOXEL, np.random.default_rng(5), semi_axes_um=axes)
    c = make_organism("sh", shape, VOXEL, np.random.default_rng(6), semi_axes_um=axes)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    centre = (np.array(shape) - 1) * VOXEL / 2
    scaled = (_centres(shape, VOXEL)[a.astype(bool)] - centre) / axes
    assert np.linalg.norm(scaled, axis=1).max() <= 1.05  # largest radius about the semi-axes
    assert a.sum() * np.prod(VOXEL) > 0.2 * 4 / 3 * np.pi * axes.prod()


def test_mask_file_round_trip_and_checks(tmp_path, rng):
    mask = ellipsoid_mask((10, 30, 20), VOXEL, (8, 9, 7))
    path = tmp_path / "organism.tif"
    io.write_volume(path, mask * 7, VOXEL)  # any nonzero value is inside
    np.testing.assert_array_equal(make_organism(str(path), (10, 30, 20), VOXEL, rng), mask)
    with pytest.raises(CellsynthError, match="--shape 10 30 20"):
        make_organism(path, (10, 30, 21), VOXEL, rng)
    with pytest.raises(CellsynthError, match="--voxel-size 2 0.8 1"):
        make_organism(path, (10, 30, 20), (1, 1, 1), rng)
    with pytest.raises(CellsynthError, match="not found"):
        make_organism(tmp_path / "missing.tif", (10, 30, 20), VOXEL, rng)
    io.write_volume(path, np.zeros_like(mask), VOXEL)
    with pytest.raises(CellsynthError, match="empty"):
        make_organism(path, (10, 30, 20), VOXEL, rng)


def test_shape_model_organism(tmp_path, rng):
    shapes = [ellipsoid_mask((16, 40, 34), VOXEL, rng.uniform(9, 13, 3)) for _ in range(4)]
    fit_shape_model(shapes, VOXEL, n_rays=200).save(tmp_path / "model.npz")
    a = make_organism(str(tmp_path / "model.npz"), (16, 40, 34), VOXEL, np.random.default_rng(1))
    b = make_organism(str(tmp_path / "model.npz"), (16, 40, 34), VOXEL, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert 0.1 < a.mean() < 0.9


@pytest.mark.parametrize(("spec", "shape", "kwargs", "message"), [
    ("ellipse", (8, 8, 8), {}, "unknown organism"),
    ("ellipsoid", (8, 8, 8), {"center_um": (-50, -50, -50)}, "empty"),
    ("ellipsoid", (8, 8, 8), {"semi_axes_um": (1, -1, 1)}, "semi-axes"),
    ("box", (8, 0, 8), {}, "positive whole numbers"),
    ("box", (8, 8.5, 8), {}, "positive whole numbers"),
    ("box", (100000, 100000, 100000), {}, "smaller volume"),
    ("ellipsoid", (8, 8, 8), {"rotation": "sideways"}, "rotation"),
])
def test_bad_input(rng, spec, shape, kwargs, message):
    with pytest.raises(CellsynthError, match=message):
        make_organism(spec, shape, (1, 1, 1), rng, **kwargs)
