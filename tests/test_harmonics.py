"""Spherical harmonics: basis, coefficient law, radial function and voxelisation."""

import numpy as np
import pytest
from scipy.spatial import ConvexHull
from scipy.spatial.transform import Rotation

from cellsynth.errors import CellsynthError
from cellsynth.shapes import harmonics as sh


def test_basis_is_orthonormal_by_quadrature():
    l_max = 12
    theta, phi, weights = sh.sphere_quadrature(2 * l_max + 2)  # exact for degree <= 2 l_max + 1
    basis = sh.sh_basis(l_max, theta, phi).reshape(sh.n_coefficients(l_max), -1)
    gram = (basis * weights.ravel()) @ basis.T
    np.testing.assert_allclose(gram, np.eye(len(gram)), atol=1e-12)


def test_basis_matches_closed_forms():
    rng = np.random.default_rng(0)
    theta, phi = rng.uniform(0, np.pi, 50), rng.uniform(0, 2 * np.pi, 50)
    x, y, z = np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)
    b = sh.sh_basis(2, theta, phi)
    c1 = np.sqrt(3 / (4 * np.pi))
    np.testing.assert_allclose(b[0], 0.5 / np.sqrt(np.pi))
    np.testing.assert_allclose(b[1], c1 * y)  # (l, m) = (1, -1)
    np.testing.assert_allclose(b[2], c1 * z)
    np.testing.assert_allclose(b[3], c1 * x)
    np.testing.assert_allclose(b[4], 0.5 * np.sqrt(15 / np.pi) * x * y)  # (2, -2)
    np.testing.assert_allclose(b[6], 0.25 * np.sqrt(5 / np.pi) * (3 * z**2 - 1))
    np.testing.assert_allclose(b[8], 0.25 * np.sqrt(15 / np.pi) * (x**2 - y**2))


@pytest.mark.parametrize("l_max", [0, 1, 5, 20, 40])
def test_radius_recurrence_equals_scipy_basis(l_max):
    rng = np.random.default_rng(l_max)
    coeffs = rng.standard_normal(sh.n_coefficients(l_max))
    theta = np.concatenate([[0.0, np.pi, np.pi / 2], rng.uniform(0, np.pi, 200)])
    phi = np.concatenate([[0.3, 1.0, 0.0], rng.uniform(0, 2 * np.pi, 200)])
    expected = coeffs @ sh.sh_basis(l_max, theta, phi)
    np.testing.assert_allclose(sh.radius_at(coeffs, theta, phi), expected, atol=1e-10 * np.abs(coeffs).sum())


@pytest.mark.parametrize("law", sh.LAWS)
def test_mean_radius_is_exact(law):
    rng = np.random.default_rng(1)
    theta, phi, weights = sh.sphere_quadrature(48)
    for radius, gamma in [(9.0, 5.0), (4.0, 2.0), (20.0, 8.0)]:
        coeffs = sh.random_coefficients(20, radius, gamma, rng, law=law)
        mean = np.sum(weights * sh.radius_at(coeffs, theta, phi)) / (4 * np.pi)
        assert mean == pytest.approx(radius, rel=1e-10)


def test_voxelised_nuclei_have_the_requested_mean_radius():
    rng = np.random.default_rng(2)
    shape, voxel, radius = (40, 40, 40), (1.0, 1.0, 1.0), 9.0
    radii = []
    for _ in range(30):
        coeffs = sh.random_coefficients(20, radius, 5.0, rng)
        _, mask = sh.voxelize_sh(coeffs, (20.0, 20.0, 20.0), voxel, shape)
        radii.append((3 * mask.sum() / (4 * np.pi)) ** (1 / 3))
    assert np.mean(radii) == pytest.approx(radius, rel=0.05)


@pytest.mark.parametrize("law", sh.LAWS)
def test_roughness_decreases_with_gamma(law):
    gammas = [0.5, 1.0, 2.0, 3.0, 5.0, 8.0]
    rough = []
    for gamma in gammas:
        rng = np.random.default_rng(3)
        rough.append(np.mean([sh.roughness(sh.random_coefficients(16, 9.0, gamma, rng, law=law)) for _ in range(30)]))
    assert np.all(np.diff(rough) < 0), rough
    assert rough[-1] < 0.1  # near-spheres (Fig. 4)


def test_voxel_shapes_get_more_convex_with_gamma():
    """Independent of the radial function: convex-hull solidity of the voxelised shapes."""
    solidity = []
    for gamma in [1.0, 3.0, 8.0]:
        rng = np.random.default_rng(4)
        values = []
        for _ in range(8):
            _, mask = sh.voxelize_sh(sh.random_coefficients(16, 10.0, gamma, rng), (30, 30, 30), (1, 1, 1), (60, 60, 60))
            pts = np.argwhere(mask)
            values.append(len(pts) / ConvexHull(pts).volume)
        solidity.append(np.median(values))
    assert solidity[0] < solidity[1] < solidity[2]


def test_coefficients_are_deterministic_and_decay():
    a = sh.random_coefficients(10, 9.0, 5.0, np.random.default_rng(7))
    b = sh.random_coefficients(10, 9.0, 5.0, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    power = sh.degree_power(10, 5.0)
    assert power[0] == power[1] == 0 and np.all(np.diff(power[2:]) < 0)
    np.testing.assert_allclose(power[2:], np.arange(2, 11) ** -5.0)
    np.testing.assert_allclose(sh.degree_power(10, 2.0, "exponential")[2:], np.exp(-2.0 * np.arange(1, 10)))
    assert np.all(a[1:4] == 0)  # degree 1 (a shift) is not used


def _brute_force(coeffs, center, voxel, shape, scale=(1, 1, 1), rotation=None):
    grid = np.stack(np.meshgrid(*[np.arange(n) * v for n, v in zip(shape, voxel)], indexing="ij"), -1)
    return sh.inside_sh(coeffs, grid.reshape(-1, 3), center, scale=scale, rotation=rotation).reshape(shape)


@pytest.mark.parametrize("seed", range(6))
def test_voxelisation_equals_brute_force_anisotropic(seed):
    rng = np.random.default_rng(seed)
    shape, voxel = (18, 44, 36), (2.0, 0.55, 0.8)
    gamma = [1.0, 2.0, 5.0][seed % 3]
    coeffs = sh.random_coefficients([6, 12, 20][seed % 3], 6.0, gamma, rng)
    # Centres inside, near the border (clipped box) and slightly outside the volume.
    center = rng.uniform(-0.1, 1.1, 3) * np.array(shape) * voxel
    rotation = Rotation.random(random_state=rng).as_matrix() if seed % 2 else None
    scale = rng.uniform(0.6, 1.6, 3) if seed % 2 else (1, 1, 1)
    box, mask = sh.voxelize_sh(coeffs, center, voxel, shape, scale=scale, rotation=rotation)
    full = np.zeros(shape, bool)
    full[box] = mask
    expected = _brute_force(coeffs, center, voxel, shape, scale, rotation)
    np.testing.assert_array_equal(full, expected)


def test_sphere_voxelisation_is_the_ball():
    coeffs = sh.random_coefficients(0, 5.0, 5.0, np.random.default_rng(0))
    shape, voxel, center = (16, 20, 24), (1.5, 0.7, 1.0), np.array([11.0, 7.1, 12.3])
    box, mask = sh.voxelize_sh(coeffs, center, voxel, shape)
    full = np.zeros(shape, bool)
    full[box] = mask
    grid = np.stack(np.meshgrid(*[np.arange(n) * v for n, v in zip(shape, voxel)], indexing="ij"), -1)
    np.testing.assert_array_equal(full, np.linalg.norm(grid - center, axis=-1) <= 5.0)


def test_inside_agrees_with_scipy_radial_function():
    """The point test against r = c . Y(theta, phi) built from scipy (away from the surface)."""
    rng = np.random.default_rng(5)
    coeffs = sh.random_coefficients(12, 5.0, 2.0, rng)
    rot = Rotation.random(random_state=rng).as_matrix()
    scale = np.array([1.3, 0.8, 1.0])
    center = np.array([1.0, -2.0, 0.5])
    points = rng.uniform(-9, 9, (4000, 3))
    q = ((points - center) @ rot) / scale
    d = np.linalg.norm(q, axis=1)
    theta, phi = np.arccos(q[:, 0] / d), np.arctan2(q[:, 1], q[:, 2])
    r = coeffs @ sh.sh_basis(12, theta, phi)
    clear = np.abs(d - r) > 1e-9
    inside = sh.inside_sh(coeffs, points, center, scale=scale, rotation=rot)
    np.testing.assert_array_equal(inside[clear], (d <= r)[clear])
    assert 0.1 < inside.mean() < 0.9


def test_shape_outside_the_volume_gives_an_empty_box():
    coeffs = sh.random_coefficients(8, 3.0, 5.0, np.random.default_rng(0))
    box, mask = sh.voxelize_sh(coeffs, (100.0, 100.0, 100.0), (1, 1, 1), (10, 10, 10))
    assert mask.size == 0 and all(s.stop - s.start == 0 for s in box)


@pytest.mark.parametrize("call", [
    lambda: sh.random_coefficients(-1, 9.0, 5.0, np.random.default_rng(0)),
    lambda: sh.random_coefficients(2.5, 9.0, 5.0, np.random.default_rng(0)),
    lambda: sh.random_coefficients(8, 0.0, 5.0, np.random.default_rng(0)),
    lambda: sh.random_coefficients(8, 9.0, -1.0, np.random.default_rng(0)),
    lambda: sh.random_coefficients(8, 9.0, 5.0, np.random.default_rng(0), law="gauss"),
    lambda: sh.radius_at(np.ones(5), 0.1, 0.2),
    lambda: sh.voxelize_sh(np.ones(4), (0, 0, 0), (1, 1, 1), (4, 4, 4), scale=(1, 0, 1)),
    lambda: sh.voxelize_sh(np.ones(4), (0, 0, 0), (1, 1, 1), (4, 4, 4), rotation=np.ones((3, 3))),
    lambda: sh.voxelize_sh(np.ones(4), (0, 0, 0), (1, -1, 1), (4, 4, 4)),
])
def test_bad_arguments_raise(call):
    with pytest.raises(CellsynthError):
        call()
