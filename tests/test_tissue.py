"""Tissue statistics (cellsynth.evaluate.tissue) against labels with known answers."""

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cellsynth.errors import CellsynthError
from cellsynth.evaluate.tissue import (
    compare_tissue,
    count_profile,
    count_trend,
    crop_boxes,
    ks_distance,
    measure_cells,
    measure_crops,
    orientation,
    orientation_order,
    summarize,
    weighted_quantile,
)


def ellipsoid_labels(semi_axes_um, voxel, rotation=None, pad_um=2.0):
    """One solid ellipsoid (label 1) centred in a volume, optionally rotated."""
    voxel = np.asarray(voxel, dtype=float)
    reach = max(semi_axes_um) + pad_um
    shape = tuple(int(math.ceil(2 * reach / v)) + 1 for v in voxel)
    grids = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * v for n, v in zip(shape, voxel)], indexing="ij")
    points = np.stack(grids, axis=-1)
    if rotation is not None:
        points = points @ rotation  # coordinates in the ellipsoid's frame
    inside = sum((points[..., k] / semi_axes_um[k]) ** 2 for k in range(3)) <= 1.0
    return inside.astype(np.uint16)


def spheroid_sphericity(a, b):
    """Exact sphericity of a prolate spheroid with semi-axes a > b = b."""
    e = math.sqrt(1 - b * b / (a * a))
    area = 2 * math.pi * b * b * (1 + a / (b * e) * math.asin(e))
    volume = 4 / 3 * math.pi * a * b * b
    return math.pi ** (1 / 3) * (6 * volume) ** (2 / 3) / area


def cube_grid(k, side, voxel=(1.0, 1.0, 1.0), gap=0, offset=(0, 0, 0), shape=None):
    """A k x k x k grid of cubes ``side`` voxels wide (per axis: side / voxel ratio kept by the caller),
    ``gap`` voxels of background between them, shifted by ``offset`` and clipped to ``shape``."""
    period = side + gap
    shape = shape or (k * period,) * 3
    labels = np.zeros(shape, np.uint16)
    label = 0
    for i in range(-1, k + 1):
        for j in range(-1, k + 1):
            for m in range(-1, k + 1):
                lo = np.array([i, j, m]) * period + np.asarray(offset)
                hi = lo + side
                lo_c, hi_c = np.maximum(lo, 0), np.minimum(hi, shape)
                if np.all(hi_c > lo_c):
                    label += 1
                    labels[lo_c[0]:hi_c[0], lo_c[1]:hi_c[1], lo_c[2]:hi_c[2]] = label
    return labels


@pytest.mark.parametrize("voxel", [(1.0, 1.0, 1.0), (0.5, 0.25, 0.25)])
def test_ellipsoid_of_known_axes(voxel):
    a, b = 8.0, 3.5
    rotation = Rotation.from_euler("zyx", [30, 50, 20], degrees=True).as_matrix()
    labels = ellipsoid_labels((a, b, b), voxel, rotation)
    cells = measure_cells(labels, voxel, "nuclei")
    col = cells.columns
    # a solid ellipsoid's coordinate covariance has eigenvalues a^2/5, b^2/5: elongation a / b
    assert col["elongation"][0] == pytest.approx(a / b, rel=0.03)
    long_axis = rotation[:, 0]  # the ellipsoid's first axis in volume coordinates
    measured = np.array([col["axis_z"][0], col["axis_y"][0], col["axis_x"][0]])
    assert abs(measured @ long_axis) == pytest.approx(1.0, abs=2e-3)
    assert col["volume_um3"][0] == pytest.approx(4 / 3 * math.pi * a * b * b, rel=0.03)
    assert col["sphericity"][0] == pytest.approx(spheroid_sphericity(a, b), abs=0.02)
    assert bool(col["interior"][0]) and col["neighbours"][0] == 0


def test_ball_is_spherical_and_round():
    labels = ellipsoid_labels((5.0, 5.0, 5.0), (1.0, 1.0, 1.0))
    col = measure_cells(labels, (1, 1, 1), "nuclei").columns
    assert col["sphericity"][0] == pytest.approx(1.0, abs=0.01)
    assert col["elongation"][0] == pytest.approx(1.0, abs=0.01)


def test_regular_grid_of_cubes():
    # cubes of 4 x 4 x 4 µm at voxels of 2 x 1 x 1 µm: 2 x 4 x 4 voxels
    k = 4
    labels = np.zeros((2 * k, 4 * k, 4 * k), np.uint16)
    label = 0
    for i in range(k):
        for j in range(k):
            for m in range(k):
                label += 1
                labels[2 * i:2 * i + 2, 4 * j:4 * j + 4, 4 * m:4 * m + 4] = label
    cells = measure_cells(labels, (2.0, 1.0, 1.0), "membranes")
    stats = summarize(cells)
    assert stats["cells"] == k**3
    assert stats["interior_cells"] == (k - 2) ** 3
    assert stats["volume_mean_um3"] == pytest.approx(64.0)
    assert stats["volume_cv"] == pytest.approx(0.0, abs=1e-12)
    assert stats["elongation_median"] == pytest.approx(1.0, abs=1e-9)
    assert stats["neighbours_mean"] == 6  # faces only: edge and corner contacts share no area
    assert stats["nn_distance_median_um"] == pytest.approx(4.0)
    assert stats["tissue_fraction"] == 1.0
    assert np.isnan(stats["wall_gap_um"])  # cells touch: no wall to measure
    # every interior cube: (16 / (16 - 4 - 1))^2 * (8 / (8 - 2 - 1)) voxels' Miles-Lantuejoul weight
    interior = cells.columns["interior"]
    assert np.allclose(cells.columns["weight"][interior], (16 / 11) ** 2 * 8 / 5)


def test_wall_gaps_between_cells_are_measured():
    labels = cube_grid(3, 6, gap=2)
    stats = summarize(measure_cells(labels, (1.0, 1.0, 1.0), "membranes"))
    assert stats["wall_gap_um"] == pytest.approx(2.0)
    stats = summarize(measure_cells(labels, (1.0, 0.5, 0.5), "membranes"))  # along z 2 µm, along y and x 1 µm
    assert stats["wall_gap_um"] == pytest.approx(1.0)


def test_brick_count_is_unbiased_over_positions():
    # cubes of side 4 in a 10^3 box at every offset: the mean estimate is the true density 1/64
    estimates = []
    for offset in np.ndindex(4, 4, 4):
        labels = cube_grid(3, 4, offset=offset, shape=(10, 10, 10))
        cells = measure_cells(labels, (1, 1, 1), "membranes", sphericity=False)
        estimates.append(summarize(cells)["cells_per_1000um3"])
    assert np.mean(estimates) == pytest.approx(1000 / 64, rel=1e-9)


def test_miles_lantuejoul_weights_undo_the_size_bias_of_crops():
    # cells of 2 and 7 voxels along x (random order) seen in crops of 10: the large ones are rarely whole
    rng = np.random.default_rng(0)
    sizes = rng.choice([2, 7], size=600)
    line = np.repeat(np.arange(1, len(sizes) + 1), sizes)
    true_mean = sizes.mean()
    weighted, plain = [], []
    for start in range(0, len(line) - 10, 2):
        crop = np.pad(line[None, None, start:start + 10], ((1, 1), (1, 1), (0, 0))).astype(np.uint16)
        cells = measure_cells(crop, (1, 1, 1), "nuclei", sphericity=False)
        inner = cells.columns["interior"]
        weighted += list(zip(cells.columns["volume_um3"][inner], cells.columns["weight"][inner]))
        plain += list(cells.columns["volume_um3"][inner])
    values, weights = np.array(weighted).T
    assert np.mean(plain) < 0.8 * true_mean  # unweighted: biased towards the small cells
    assert np.average(values, weights=weights) == pytest.approx(true_mean, rel=0.03)


def test_orientation_order_and_neighbour_alignment():
    assert orientation_order(np.array([[1.0, 0, 0]] * 5))[0] == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    v = rng.standard_normal((4000, 3))
    assert abs(orientation_order(v / np.linalg.norm(v, axis=1, keepdims=True))[0]) < 0.05
    # rods all along x: aligned neighbours
    labels = np.zeros((12, 12, 40), np.uint16)
    label = 0
    for i in range(0, 12, 3):
        for j in range(0, 12, 3):
            for m in range(0, 40, 10):
                label += 1
                labels[i:i + 3, j:j + 3, m:m + 10] = label
    cells = measure_cells(labels, (1, 1, 1), "membranes")
    stats = summarize(cells)
    assert stats["neighbour_alignment_all"] == pytest.approx(1.0)
    assert stats["orientation_order"] == pytest.approx(1.0)
    assert np.allclose(np.abs(orientation(cells)), [0, 0, 1])


def test_helpers():
    assert weighted_quantile(np.array([1.0, 2.0, 3.0, 4.0]), np.ones(4), 0.5) == 2.0
    assert ks_distance(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0])) == 0.0
    assert ks_distance(np.array([0.0, 1.0]), np.array([0.5])) == pytest.approx(0.5)
    boxes = crop_boxes((20, 20, 20), (10, 10, 10), 100)
    assert len(boxes) == 8 and all(b[0].stop - b[0].start == 10 for b in boxes)
    inside = np.zeros((20, 20, 20), bool)
    inside[:12, :12, :12] = True
    kept = crop_boxes((20, 20, 20), (10, 10, 10), 100, inside=inside)
    assert kept and all(inside[b].all() for b in kept)
    with pytest.raises(CellsynthError, match="does not fit"):
        crop_boxes((5, 5, 5), (10, 5, 5), 1)
    with pytest.raises(CellsynthError, match="inside the tissue"):
        crop_boxes((20, 20, 20), (15, 15, 15), 1, inside=inside)


def test_crops_keep_a_margin_from_the_faces():
    boxes = crop_boxes((40, 40, 40), (10, 10, 10), 100, margin=(5, 5, 5))
    starts = sorted({b[1].start for b in boxes})
    assert starts == [5, 15, 25] and all(5 <= b[a].start and b[a].stop <= 35 for b in boxes for a in range(3))
    centred = crop_boxes((14, 40, 40), (10, 10, 10), 100, margin=(5, 0, 0))  # z too short: centred
    assert {b[0].start for b in centred} == {2}
    assert sorted({b[1].start for b in centred}) == [0, 10, 20, 30]


def test_compare_keeps_simulated_crops_clear_of_the_faces():
    # "simulated" labels whose cells are large next to the faces and small inside: only crops
    # kept 8 voxels from the faces see the small cells
    simulated = np.ones((32, 32, 32), np.int32)
    simulated[8:24, 8:24, 8:24] = 2 + cube_grid(4, 4)[:16, :16, :16]
    real = 1 + cube_grid(4, 4)[:8, :8, :8]
    near = compare_tissue([(real, (1, 1, 1))], [(simulated, (1, 1, 1))], "membranes", sphericity=False)
    inside = compare_tissue([(real, (1, 1, 1))], [(simulated, (1, 1, 1))], "membranes", sphericity=False,
                            margin_um=8.0)
    assert inside.simulated["cells"] == inside.real["cells"] == 8
    assert near.simulated["cells"] < 8


def test_count_profile_counts_labels_per_slab():
    labels = np.zeros((4, 30, 4), np.int32)
    edges = [0, 2, 4, 6, 9, 12, 16, 20, 25, 30]  # cells grow along y
    for k, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        labels[:, a:b] = k + 1
    centres, counts = count_profile(labels, (1, 0.5, 1), 1, 5.0, 2.5)
    assert centres.tolist() == [2.5, 5.0, 7.5, 10.0, 12.5]
    brute = [len(set(labels[0, int(2 * (c - 2.5)):int(2 * (c + 2.5)), 0])) for c in centres]
    assert counts.tolist() == brute and counts[0] > counts[-1]
    mean, slope = count_trend(labels, (1, 0.5, 1), 1, 5.0, 2.5)
    assert mean == pytest.approx(np.mean(np.log(brute)))
    assert slope == pytest.approx(np.polyfit(centres, np.log(brute), 1)[0]) and slope < 0
    with pytest.raises(CellsynthError, match="thinner slab"):
        count_profile(labels, (1, 0.5, 1), 1, 20.0)
    with pytest.raises(CellsynthError, match="axis"):
        count_profile(labels, (1, 0.5, 1), 3, 5.0)


def test_compare_crops_the_larger_volume_to_the_smaller():
    big = cube_grid(6, 4)          # 24^3 µm
    small = cube_grid(3, 4)        # 12^3 µm
    comparison = compare_tissue([(small, (1, 1, 1))], [(big, (1, 1, 1))], "membranes", crops=8)
    assert comparison.crop_um == (12.0, 12.0, 12.0)
    assert comparison.volumes == {"real": 1, "simulated": 8}
    assert comparison.relative_difference["cells"] == pytest.approx(0.0)
    assert comparison.ks["elongation (interior)"] == 0.0
    assert "cells" in comparison.table() and "difference" in comparison.table()


def test_measure_refuses_bad_labels():
    with pytest.raises(CellsynthError, match="binary mask"):
        measure_cells(np.ones((4, 4, 4), bool), (1, 1, 1))
    with pytest.raises(CellsynthError, match="integer"):
        measure_cells(np.ones((4, 4, 4), np.float32), (1, 1, 1))
    with pytest.raises(CellsynthError, match="non-negative"):
        measure_cells(-np.ones((4, 4, 4), np.int32), (1, 1, 1))
    with pytest.raises(CellsynthError, match="kind"):
        measure_cells(np.ones((4, 4, 4), np.uint8), (1, 1, 1), "cells")
    with pytest.raises(CellsynthError, match="voxel size"):
        measure_cells(np.ones((4, 4, 4), np.uint8), (1, 0, 1))
    with pytest.raises(CellsynthError, match="nothing to summarise"):
        summarize([])


def test_measure_crops_in_physical_units():
    labels = cube_grid(4, 4)  # 16^3 voxels
    tables = measure_crops(labels, (0.5, 0.5, 0.5), "membranes", (4.0, 4.0, 4.0), count=3)
    assert len(tables) == 3 and all(t.shape == (8, 8, 8) for t in tables)


def test_label_montage_and_histograms_write_pngs(tmp_path):
    from cellsynth.evaluate.plots import plot_label_slices, plot_tissue_distributions

    small, large = cube_grid(3, 4), cube_grid(4, 4)
    plot_label_slices({"real": small, "simulated": large}, {"real": (1, 1, 1), "simulated": (0.5, 0.5, 0.5)},
                      tmp_path / "slices.png")
    assert (tmp_path / "slices.png").stat().st_size > 2000
    comparison = compare_tissue([(small, (1, 1, 1))], [(large, (1, 1, 1))], "membranes", sphericity=False)
    plot_tissue_distributions(comparison.distributions, tmp_path / "histograms.png")
    assert (tmp_path / "histograms.png").stat().st_size > 2000
    with pytest.raises(CellsynthError, match="nothing to plot"):
        plot_label_slices({}, (1, 1, 1), tmp_path / "none.png")
