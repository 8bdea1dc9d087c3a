"""Statistical shape model (Eq. 4): rays, PCA, sampling, voxelisation, file and CLI."""

import json

import numpy as np
import pytest

from cellsynth import io
from cellsynth.cli import main
from cellsynth.cli import shape_model as cli_shape_model
from cellsynth.errors import CellsynthError
from cellsynth.shapes.ellipsoid import ellipsoid_mask, random_rotation
from cellsynth.shapes.shape_model import (
    DEFAULT_RAYS,
    ShapeModel,
    fibonacci_directions,
    fit_shape_model,
    principal_axes,
    ray_radii,
    shapes_from_labels,
)

VOXEL = (1.6, 0.8, 1.0)
SHAPE = (20, 44, 40)


def _dice(a, b):
    return 2 * np.logical_and(a, b).sum() / (a.astype(bool).sum() + b.astype(bool).sum())


@pytest.fixture
def training(rng):
    """Ellipsoids of random size and rotation about the x axis, off-centre."""
    shapes = []
    for _ in range(6):
        angle = rng.uniform(-0.4, 0.4)
        rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
        centre = (np.array(SHAPE) - 1) * VOXEL / 2 + rng.uniform(-2, 2, 3)
        shapes.append(ellipsoid_mask(SHAPE, VOXEL, rng.uniform([8, 9, 8], [13, 15, 13]), centre, rotation))
    return shapes


def test_fibonacci_directions_are_unit_and_balanced():
    d = fibonacci_directions(300)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1)
    assert np.abs(d.mean(0)).max() < 0.01


def test_ray_radii_of_an_ellipsoid_match_the_analytic_radius():
    axes = np.array([9.0, 14.0, 11.0])
    centre = np.array([15.2, 17.3, 19.1])
    mask = ellipsoid_mask((20, 44, 40), VOXEL, axes, centre)
    directions = fibonacci_directions(200)
    radii, found = ray_radii(mask, VOXEL, directions)
    np.testing.assert_allclose(found, centre, atol=0.1)
    expected = 1 / np.sqrt(((directions / axes) ** 2).sum(1))
    assert np.abs(radii - expected).max() < 0.9  # within about half a (1.6 µm) voxel
    assert abs(np.mean(radii - expected)) < 0.15


def test_all_modes_reproduce_the_training_shapes(training):
    model = fit_shape_model(training, VOXEL, n_rays=300)
    assert model.n_modes == len(training) - 1
    assert np.all(np.diff(model.variances) <= 0)
    np.testing.assert_allclose(model.modes @ model.modes.T, np.eye(model.n_modes), atol=1e-10)
    for mask in training:
        radii, centre = ray_radii(mask, VOXEL, model.directions)
        np.testing.assert_allclose(model.radii(model.project(radii)), radii, atol=1e-9)
        rebuilt = model.voxelize(model.radii(model.project(radii)), SHAPE, VOXEL, centre)
        assert _dice(rebuilt, mask) > 0.97
    # the mean alone does not reproduce them: the modes carry the differences
    radii, _ = ray_radii(training[0], VOXEL, model.directions)
    assert np.abs(model.radii(np.zeros(0)) - radii).max() > 1.0


def test_pca_matches_the_covariance_eigendecomposition(training):
    model = fit_shape_model(training, VOXEL, n_rays=120)
    radii = np.array([ray_radii(m, VOXEL, model.directions)[0] for m in training])
    eigenvalues = np.linalg.eigvalsh(np.cov(radii.T))[::-1][: model.n_modes]
    np.testing.assert_allclose(model.variances, eigenvalues, rtol=1e-8)


def test_sampled_weights_stay_within_three_standard_deviations(training):
    model = fit_shape_model(training, VOXEL, n_rays=120)
    rng = np.random.default_rng(0)
    weights = np.array([model.sample_weights(rng) for _ in range(3000)])
    sd = np.sqrt(model.variances)
    assert np.all(np.abs(weights) <= 3 * sd + 1e-12)
    # a standard normal truncated at +-3 has a standard deviation of 0.9866
    np.testing.assert_allclose(weights.std(0) / sd, 0.9866, rtol=0.06)
    assert model.sample_weights(rng, n_modes=2).shape == (2,)
    with pytest.raises(CellsynthError, match="modes"):
        model.sample_weights(rng, n_modes=99)


def _egg(rotation, shape=(40, 40, 40), voxel=(1.0, 1.0, 1.0)):
    """An ellipsoid (semi-axes 5, 8, 14 µm) with a sphere sticking out of one end of its long axis, rotated."""
    centre = (np.array(shape) - 1) * np.array(voxel) / 2
    body = ellipsoid_mask(shape, voxel, (5, 8, 14), centre, rotation)
    bump = ellipsoid_mask(shape, voxel, (5, 5, 5), centre + rotation @ np.array([0, 0, 12.0]))
    return body | bump


def test_principal_axes_recover_the_rotation_of_an_egg(rng):
    for _ in range(3):
        rotation = random_rotation(rng)
        axes = principal_axes(_egg(rotation), (1.0, 1.0, 1.0))
        assert np.allclose(axes.T @ axes, np.eye(3), atol=1e-9) and np.linalg.det(axes) == pytest.approx(1.0)
        # the long axis and its pointed end come back exactly (up to voxelisation); the frame is right-handed
        assert np.abs(axes.T @ rotation - np.eye(3)).max() < 0.05


def test_aligned_model_keeps_shape_variation_and_drops_orientation(rng):
    voxel = (1.0, 1.0, 1.0)
    eggs = [_egg(random_rotation(rng)) for _ in range(5)]
    plain = fit_shape_model(eggs, voxel, n_rays=200)
    aligned = fit_shape_model(eggs, voxel, n_rays=200, align=True)
    assert aligned.aligned and not plain.aligned
    # the same egg five times: only voxelisation noise is left once orientation is removed
    assert aligned.variances.sum() < 0.02 * plain.variances.sum()
    # mean shape in the canonical frame: longest along x, shortest along z, bump towards +x
    radius = {tuple(d): r for d, r in zip(np.eye(3), aligned.radii(np.zeros(0))[_nearest(aligned, np.eye(3))])}
    assert radius[(1.0, 0.0, 0.0)] < radius[(0.0, 1.0, 0.0)] < radius[(0.0, 0.0, 1.0)]
    assert aligned.radii(np.zeros(0))[_nearest(aligned, [[0, 0, 1.0]])][0] > \
        aligned.radii(np.zeros(0))[_nearest(aligned, [[0, 0, -1.0]])][0] + 0.3


def _nearest(model, directions):
    return np.argmax(np.asarray(directions) @ model.directions.T, axis=1)


def test_save_load_round_trip_and_corrupt_files(training, tmp_path):
    model = fit_shape_model(training, VOXEL, n_rays=100, align=True)
    model.save(tmp_path / "m.npz")
    loaded = ShapeModel.load(tmp_path / "m.npz")
    for name in ("mean", "modes", "variances", "directions"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(model, name))
    assert loaded.voxel_size == model.voxel_size and loaded.sh_order == model.sh_order and loaded.aligned
    a = loaded.sample(SHAPE, VOXEL, np.random.default_rng(2))
    np.testing.assert_array_equal(a, model.sample(SHAPE, VOXEL, np.random.default_rng(2)))
    (tmp_path / "bad.npz").write_bytes(b"not a zip file")
    with pytest.raises(CellsynthError, match="not a cellsynth shape model"):
        ShapeModel.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(CellsynthError, match="shape model"):
        ShapeModel.load(tmp_path / "other.npz")


def test_fewer_than_three_shapes_is_an_error(training):
    with pytest.raises(CellsynthError, match="at least 3"):
        fit_shape_model(training[:2], VOXEL)
    labels = np.concatenate([training[0], 2 * training[1]]).astype(np.uint16)
    assert len(shapes_from_labels(labels)) == 2
    with pytest.raises(CellsynthError, match="at least 3"):
        fit_shape_model(shapes_from_labels(labels), VOXEL)
    with pytest.raises(CellsynthError, match="star-shaped"):
        ring = ellipsoid_mask(SHAPE, VOXEL, (10, 14, 14)) & ~ellipsoid_mask(SHAPE, VOXEL, (6, 8, 8))
        fit_shape_model([ring] * 3, VOXEL)
    with pytest.raises(CellsynthError, match="more rays"):
        fit_shape_model(training, VOXEL, n_rays=50, sh_order=9)


def test_cli_fit_and_sample(training, tmp_path, capsys):
    labels = np.zeros((len(training) * SHAPE[0], *SHAPE[1:]), np.uint16)
    for k, mask in enumerate(training):
        labels[k * SHAPE[0] : (k + 1) * SHAPE[0]][mask.astype(bool)] = k + 1
    io.write_volume(tmp_path / "labels.tif", labels, VOXEL)
    model_path = tmp_path / "model.npz"
    assert main(["shape-model", "fit", str(tmp_path / "labels.tif"), "--out", str(model_path), "--rays", "200"]) == 0
    info = json.loads((tmp_path / "model.json").read_text())
    assert info["shapes"] == len(training) and info["modes"] == len(training) - 1
    assert info["voxel_size_um"] == pytest.approx(VOXEL) and info["aligned"] is False
    assert main(["shape-model", "fit", str(tmp_path / "labels.tif"), "--out", str(tmp_path / "aligned.npz"),
                 "--rays", "200", "--align"]) == 0
    assert json.loads((tmp_path / "aligned.json").read_text())["aligned"] is True
    assert ShapeModel.load(tmp_path / "aligned.npz").aligned
    outputs = []
    for seed, name in ((3, "a.tif"), (3, "b.tif"), (4, "c.tif")):
        assert main(["shape-model", "sample", str(model_path), "--out", str(tmp_path / name),
                     "--shape", *map(str, SHAPE), "--seed", str(seed)]) == 0
        mask, voxel = io.read_volume(tmp_path / name)
        outputs.append(mask)
    assert voxel == pytest.approx(VOXEL) and outputs[0].dtype == np.uint8
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert (outputs[0] != outputs[2]).any()
    assert 0.5 < outputs[0].sum() / np.mean([m.sum() for m in training]) < 2
    capsys.readouterr()
    io.write_volume(tmp_path / "two.tif", labels[: 2 * SHAPE[0]], VOXEL)
    assert main(["shape-model", "fit", str(tmp_path / "two.tif"), "--out", str(tmp_path / "x.npz")]) == 2
    assert main(["shape-model", "sample", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "y.tif"),
                 "--shape", "4", "4", "4"]) == 2
    assert main(["shape-model", "sample", str(model_path), "--out", str(tmp_path / "z.tif"),
                 "--shape", "4", "4", "4"]) == 2
    err = capsys.readouterr().err
    assert "at least 3" in err and "not found" in err and "cut by the border" in err and "Traceback" not in err
    assert not any((tmp_path / name).exists() for name in ("x.npz", "y.tif", "z.tif"))


def test_cli_default_rays_match_the_library():
    assert cli_shape_model.DEFAULT_RAYS == DEFAULT_RAYS
