"""Packed, elongated, oriented cells: shapes, orientation fields, packing and the anisotropic tessellation."""

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cellsynth.errors import CellsynthError
from cellsynth.evaluate.tissue import measure_cells, summarize
from cellsynth.simulate.anisotropy import (
    CellPacking,
    cell_metrics,
    mean_packing_volume,
    orientation_field,
    random_directions,
    semi_axes,
)
from cellsynth.simulate.membranes import weighted_voronoi
from cellsynth.simulate.pipeline import simulate_sample
from cellsynth.simulate.positions import layered_positions, poisson_disk_positions


@pytest.mark.parametrize("elongation,flatness", [(1.0, 0.0), (2.0, 0.0), (3.0, 0.5), (2.5, 1.0)])
def test_semi_axes_have_unit_volume_and_the_asked_ratios(elongation, flatness):
    a1, a2, a3 = semi_axes(elongation, flatness)
    assert a1 * a2 * a3 == pytest.approx(1.0)
    assert a1 / a3 == pytest.approx(elongation)
    assert a2 / a3 == pytest.approx(elongation**flatness)


def test_cell_metric_unit_ball_is_the_cells_ellipsoid():
    rng = np.random.default_rng(0)
    u = random_directions(5, rng)
    v = np.cross(u, random_directions(5, rng))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    metrics = cell_metrics(np.stack([u, v], axis=1), 3.0, 0.5)
    a1, a2, a3 = semi_axes(3.0, 0.5)
    w = np.cross(u, v)
    for axis, length in ((u, a1), (v, a2), (w, a3)):
        point = axis * length
        assert np.allclose(np.einsum("ni,nij,nj->n", point, metrics, point), 1.0)


def test_anisotropic_tessellation_equals_brute_force():
    rng = np.random.default_rng(3)
    shape, voxel = (19, 23, 21), np.array([0.7, 0.5, 0.6])
    foreground = np.ones(shape, bool)
    foreground[:2] = False
    seeds = rng.uniform(0, 1, (30, 3)) * np.array(shape) * voxel
    weights = rng.uniform(0.6, 1.4, 30)
    rotations = Rotation.random(30, random_state=4).as_matrix()
    scales = np.stack([np.diag(rng.uniform(0.2, 3.0, 3)) for _ in range(30)])
    metrics = rotations @ scales @ rotations.transpose(0, 2, 1)
    labels = weighted_voronoi(foreground, voxel, seeds, weights, metrics=metrics, block=(4, 5, 6), progress=False)
    points = np.stack(np.indices(shape), -1).reshape(-1, 3) * voxel
    delta = points[:, None, :] - seeds[None]
    expected = (np.einsum("pnj,njk,pnk->pn", delta, metrics, delta) / weights**2).argmin(axis=1) + 1
    expected = expected.reshape(shape)
    expected[~foreground] = 0
    assert np.array_equal(labels, expected)


def test_identity_metrics_give_the_paper_tessellation():
    rng = np.random.default_rng(5)
    foreground = np.ones((20, 20, 20), bool)
    seeds = rng.uniform(0, 20, (15, 3))
    weights = rng.uniform(0.8, 1.2, 15)
    plain = weighted_voronoi(foreground, (1, 1, 1), seeds, weights, progress=False)
    metric = weighted_voronoi(foreground, (1, 1, 1), seeds, weights, metrics=np.tile(np.eye(3), (15, 1, 1)),
                              progress=False)
    assert np.array_equal(plain, metric)


def test_packed_cells_do_not_overlap():
    rng = np.random.default_rng(1)
    packing = CellPacking(4.0, elongation=2.5, weight_spread=0.3, flatness=0.5,
                          field=orientation_field((20, 30, 30), (1, 1, 1), rng, coherence_um=6.0))
    cells = poisson_disk_positions(np.ones((20, 30, 30), np.uint8), (1, 1, 1), 4.0, rng, packing=packing)
    assert cells.shape[1] == 10 and len(cells) > 20
    metrics = CellPacking.metrics(cells[:, 3:])
    eigen = np.linalg.eigvalsh(metrics)  # 1 / semi-axes^2 of a unit-volume ellipsoid
    assert np.allclose(np.prod(eigen, axis=1), 1.0)
    assert np.allclose(np.sqrt(eigen[:, 2] / eigen[:, 0]), 2.5)
    # brute force over all pairs: the distance exceeds the sum of the radii along the joining line
    i, j = np.triu_indices(len(cells), 1)
    assert not packing.too_close(cells[i], cells[j]).any()
    assert ((cells[:, 3] >= 0.7) & (cells[:, 3] <= 1.3)).all()


def test_round_equal_cells_pack_like_points():
    packing = CellPacking(5.0)
    a = np.array([[0.0, 0, 0, 1, 1, 1, 1, 0, 0, 0]])
    assert packing.too_close(a, a + [[0, 0, 4.9, 0, 0, 0, 0, 0, 0, 0]])[0]
    assert not packing.too_close(a, a + [[0, 0, 5.1, 0, 0, 0, 0, 0, 0, 0]])[0]


def test_stretch_flattens_the_tissue():
    common = dict(organism="box", packing="cells", cell_size_um=6.0, progress=False)
    flat = simulate_sample("membranes", (40, 48, 48), (1, 1, 1), np.random.default_rng(0), stretch=(0.6, 1, 1),
                           **common)
    stats = summarize(measure_cells(flat.labels, (1, 1, 1), sphericity=False))
    assert stats["chord_ratio_z"] < 0.75
    rng = np.random.default_rng(0)
    frames = orientation_field((8, 8, 8), (1, 1, 1), rng).frames(np.zeros((4, 3)), rng)
    m = cell_metrics(frames, 2.0, 0.3, stretch=(2.0, 1.0, 0.5))
    assert np.allclose(np.linalg.det(m), 1.0)  # the stretch keeps the volume
    with pytest.raises(CellsynthError, match="stretch"):
        CellPacking(5.0, stretch=(1.0, -1.0, 1.0))


def test_orientation_field_coherence():
    rng = np.random.default_rng(2)
    field = orientation_field((40, 40, 40), (1, 1, 1), rng, coherence_um=8.0)
    points = rng.uniform(5, 35, (400, 3))
    u = field.frames(points, rng)[:, 0]
    distance = np.linalg.norm(points[:, None] - points[None], axis=2)
    cos2 = (u @ u.T) ** 2  # 1/3 on average for unrelated directions
    assert cos2[(distance > 0) & (distance < 2)].mean() > 0.8
    assert cos2[distance > 25].mean() < 0.45
    independent = orientation_field((40, 40, 40), (1, 1, 1), rng).frames(points, rng)[:, 0]
    assert abs(((independent[:-1] * independent[1:]).sum(1) ** 2).mean() - 1 / 3) < 0.06
    with pytest.raises(CellsynthError, match="coherence"):
        orientation_field((4, 4, 4), (1, 1, 1), rng, coherence_um=-1.0)
    with pytest.raises(CellsynthError, match="orientation"):
        orientation_field((4, 4, 4), (1, 1, 1), rng, orientation=(0, 0, 0))


def test_layered_packing_returns_cell_attributes():
    rng = np.random.default_rng(4)
    fg = np.zeros((30, 40, 40), np.uint8)
    fg[3:27, 3:37, 3:37] = 1
    cells = layered_positions(fg, (1, 1, 1), 6.0, rng, packing=CellPacking(6.0, elongation=1.5))
    assert cells.shape[1] == 10 and len(cells) > 10
    assert layered_positions(fg, (1, 1, 1), 6.0, rng).shape[1] == 3


def test_elongated_packed_tissue_is_elongated_and_aligned():
    common = dict(organism="box", packing="cells", cell_size_um=6.0, weight_spread=0.2, progress=False)
    round_cells = simulate_sample("membranes", (40, 48, 48), (1, 1, 1), np.random.default_rng(0), **common)
    long_cells = simulate_sample("membranes", (40, 48, 48), (1, 1, 1), np.random.default_rng(0), elongation=2.5,
                                 orientation=(0, 0, 1), **common)
    flat = summarize(measure_cells(round_cells.labels, (1, 1, 1), sphericity=False))
    stretched = summarize(measure_cells(long_cells.labels, (1, 1, 1), sphericity=False))
    assert stretched["elongation_median"] > flat["elongation_median"] + 0.6
    assert stretched["orientation_order"] > 0.7 > flat["orientation_order"]
    assert long_cells.metadata["parameters"]["packing"] == "cells"
    assert {"long_axis_z", "long_axis_y", "long_axis_x"} <= set(long_cells.positions)
    assert np.allclose(np.abs(long_cells.positions["long_axis_x"]), 1.0)


def test_packing_options_are_checked():
    with pytest.raises(CellsynthError, match="packing: cells"):
        simulate_sample("membranes", (16, 16, 16), (1, 1, 1), np.random.default_rng(0), elongation=2.0)
    with pytest.raises(CellsynthError, match="unknown packing"):
        simulate_sample("membranes", (16, 16, 16), (1, 1, 1), np.random.default_rng(0), packing="hexagonal")
    with pytest.raises(CellsynthError, match="nuclei"):
        simulate_sample("nuclei", (16, 16, 16), (1, 1, 1), np.random.default_rng(0), orientation_coherence_um=5.0)
    with pytest.raises(CellsynthError, match="flatness"):
        simulate_sample("membranes", (16, 16, 16), (1, 1, 1), np.random.default_rng(0), packing="cells",
                        flatness=2.0)
    with pytest.raises(CellsynthError, match="positions"):
        simulate_sample("membranes", (16, 16, 16), (1, 1, 1), np.random.default_rng(0), packing="cells",
                        positions=__file__)


def test_same_seed_same_packed_tissue():
    kwargs = dict(organism="box", packing="cells", cell_size_um=6.0, elongation=2.0, flatness=0.5,
                  orientation_coherence_um=5.0, progress=False)
    a = simulate_sample("membranes", (24, 32, 32), (1, 1, 1), np.random.default_rng(7), **kwargs)
    b = simulate_sample("membranes", (24, 32, 32), (1, 1, 1), np.random.default_rng(7), **kwargs)
    assert np.array_equal(a.labels, b.labels)


def test_size_gradient_scales_the_cells_along_the_axis():
    gradient = 0.02  # per µm along y: log cell size grows by 0.02 per µm, cell volume by 0.06
    sample = simulate_sample("membranes", (24, 96, 24), (1, 1, 1), np.random.default_rng(1), progress=False,
                             organism="box", packing="cells", cell_size_um=6.0, size_gradient=[0.0, gradient, 0.0])
    assert sample.metadata["parameters"]["size_gradient"] == [0.0, gradient, 0.0]
    positions = sample.positions
    seeded = np.isfinite(positions["weight"])
    y = positions["y_um"][seeded] - 48.0  # from the volume's centre
    # each cell's weight is U(0.8, 1.2) times exp(g (y - centre)): the log weights' slope is g
    assert np.polyfit(y, np.log(positions["weight"][seeded]), 1)[0] == pytest.approx(gradient, abs=0.003)
    # measured back from the labels alone: whole cells' log volume grows along y at about 3 g
    # (a little less: tessellation and packing are not exactly self-similar)
    cells = measure_cells(sample.labels, (1, 1, 1), "membranes", sphericity=False).columns
    whole = cells["interior"]
    slope = np.polyfit(cells["y_um"][whole] - 48.0, np.log(cells["volume_um3"][whole]), 1)[0]
    assert 0.6 * 3 * gradient < slope < 1.2 * 3 * gradient
    flat = simulate_sample("membranes", (24, 96, 24), (1, 1, 1), np.random.default_rng(1), progress=False,
                           organism="box", packing="cells", cell_size_um=6.0).positions
    assert abs(np.polyfit(flat["y_um"] - 48.0, np.log(flat["weight"]), 1)[0]) < 0.003


def test_size_gradient_packing_reach_and_checks():
    packing = CellPacking(4.0, size_gradient=[0.0, 0.1, 0.0], extent_um=[10.0, 20.0, 10.0])
    assert packing.size_factors(np.array([[5.0, 10.0, 5.0], [5.0, 20.0, 5.0]])) == pytest.approx([1.0, math.e])
    assert packing.reach_um == pytest.approx(2.0 * math.e)  # the largest cell sits at a corner (y = 20)
    assert mean_packing_volume(packing) == pytest.approx(
        math.pi / 6 * 4.0**3 * np.mean(np.exp(3 * 0.1 * (np.linspace(0, 20, 200001) - 10))), rel=1e-4)
    with pytest.raises(CellsynthError, match="extent"):
        CellPacking(4.0, size_gradient=[0.0, 0.1, 0.0])
    with pytest.raises(CellsynthError, match="size gradient"):
        simulate_sample("membranes", (16, 16, 16), (1, 1, 1), np.random.default_rng(0), packing="cells",
                        size_gradient=[0.0, float("nan"), 0.0])
    with pytest.raises(CellsynthError, match="packing: cells"):
        simulate_sample("membranes", (16, 16, 16), (1, 1, 1), np.random.default_rng(0), size_gradient=[0, 0.1, 0])
    with pytest.raises(CellsynthError, match="nuclei"):
        simulate_sample("nuclei", (16, 16, 16), (1, 1, 1), np.random.default_rng(0), size_gradient=[0, 0.1, 0])
