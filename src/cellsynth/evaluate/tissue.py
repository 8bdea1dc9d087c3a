"""Tissue statistics of instance labels: cell size, shape, orientation, packing.

The same numbers for real and simulated labels, so that simulated masks can be checked
against (and fitted to) the tissue they imitate. All lengths are in µm; every label is one
cell (membranes: a whole cell; nuclei: a nucleus).

Per cell (:func:`measure_cells`)
--------------------------------
- **volume** (µm³): voxel count times voxel volume.
- **elongation**: ``sqrt(l1 / l3)`` of the eigenvalues ``l1 >= l2 >= l3`` of the covariance
  of the cell's voxel coordinates in µm, each voxel taken as a uniform box (its own
  ``v**2 / 12`` per axis is added). For a solid ellipsoid this is the ratio of its longest
  to its shortest semi-axis.
- **flatness**: ``sqrt(l2 / l3)``: 1 for a cigar, the elongation for a disc.
- **long axis**: the unit eigenvector of ``l1`` (z, y, x), signed so that its first
  non-zero component is positive.
- **sphericity**: ``pi**(1/3) (6 V)**(2/3) / A`` of the surface of the cell's mask smoothed
  by a Gaussian of one voxel (marching cubes at 0.5, volume and area of that mesh): 1 for a
  ball (0.99 from r = 5 voxels on), lower for any other shape. Only for cells that do not
  touch the volume border.
- **neighbours**: labels sharing at least ``contact_fraction`` of the cell's surface (face
  area). A touch of a few voxels at a corner does not count.
- **nearest-neighbour distance**: from the cell's centroid to the nearest other centroid.

Per volume, the **mean chord** along each axis is the length of the lines inside cells
divided by the number of walls between two cells they cross (a stereological estimate that
cut cells do not bias, for tissue that fills the volume); their ratios show whether cells
are flatter along one axis.

Cut cells
---------
A crop cuts the cells at its border: their visible parts are smaller and shaped by the crop.
Two ways to stay honest, both reported:

- *Interior* statistics use only the cells that touch no face of the volume (membranes: nor
  the background, as the tissue surface cuts cells too), each weighted by
  the Miles-Lantuéjoul factor ``prod_a N_a / (N_a - e_a - 1)`` (``N_a`` the volume and
  ``e_a`` the cell's bounding box in voxels along axis ``a``): the inverse of the chance that
  a cell of that extent lies wholly inside. Large cells are seen less often whole, and the
  weight undoes that bias (Miles 1978; Lantuéjoul 1978).
- *Crop-matched* statistics (``cells``, ``elongation_median_all``, the nearest-neighbour
  distance) include the cut cells. They depend on the crop, so compare them only between
  volumes of the same physical size: :func:`compare_tissue` measures simulated labels in
  crops of the real volume's size.

The density ``cells_per_1000um3`` counts the cells that touch none of the three upper faces
(z, y and x at their last index) per volume of the box less its last plane along each
axis, ``prod_a (N_a - 1)`` voxels: a cell is counted when the voxel just past its last one
lies in the box, a point each cell has exactly one of, so the count is unbiased over the
positions of a stationary tissue (the unbiased brick rule of Howard and Reed 2005, without a
guard zone).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from cellsynth.errors import CellsynthError
from cellsynth.io import VoxelSize, check_volume, check_voxel_size
from cellsynth.progress import progress_bar

KINDS = ("nuclei", "membranes")

DEFAULT_CONTACT_FRACTION = 0.01
"""A neighbour shares at least this fraction of a cell's surface (face area)."""

CELL_COLUMNS = (
    "label", "volume_um3", "z_um", "y_um", "x_um", "elongation", "flatness", "axis_z", "axis_y", "axis_x",
    "sphericity", "interior", "touches_background", "weight", "neighbours", "nn_distance_um",
)
"""The per-cell table of :func:`measure_cells`."""

STATISTICS: dict[str, tuple[str, str]] = {
    # key: (description with unit, which cells: interior (weighted) or all (crop-dependent))
    "cells": ("labels per volume", "all"),
    "interior_cells": ("whole cells: touching no face of the volume (membranes: nor the background)", "all"),
    "cells_per_1000um3": ("cells per 1000 µm³ of box (unbiased brick count)", "all"),
    "tissue_fraction": ("labelled fraction of the volume", "all"),
    "volume_mean_um3": ("mean cell volume (µm³)", "interior"),
    "volume_cv": ("coefficient of variation of the cell volume", "interior"),
    "volume_mean_all_um3": ("mean labelled volume per label (µm³)", "all"),
    "volume_cv_all": ("coefficient of variation of the labelled volume per label", "all"),
    "radius_mean_um": ("mean equivalent-sphere radius (µm)", "interior"),
    "radius_std_um": ("standard deviation of the equivalent-sphere radius (µm)", "interior"),
    "elongation_median": ("median principal-axis elongation sqrt(l1/l3)", "interior"),
    "elongation_median_all": ("median elongation of the labels", "all"),
    "flatness_median": ("median flatness sqrt(l2/l3): 1 cigar, = elongation for a disc", "interior"),
    "flatness_median_all": ("median flatness of the labels", "all"),
    "chord_z_um": ("mean chord along z: line length inside cells per wall crossed (µm)", "all"),
    "chord_y_um": ("mean chord along y (µm)", "all"),
    "chord_x_um": ("mean chord along x (µm)", "all"),
    "chord_ratio_z": ("chord along z over the geometric mean of the three: below 1, flatter along z", "all"),
    "chord_ratio_y": ("chord along y over the geometric mean of the three", "all"),
    "orientation_order": ("order of the long axes: 0 random, 1 all parallel", "interior"),
    "long_axis_z": ("mean |z component| of the long axes: 0.5 random, 0 all in the xy plane", "interior"),
    "long_axis_y": ("mean |y component| of the long axes", "interior"),

    "neighbour_alignment": ("order of the long axes of touching cells: 0 unrelated, 1 parallel", "interior"),
    "neighbour_alignment_all": ("the same over all touching labels", "all"),
    "sphericity_median": ("median sphericity", "interior"),
    "neighbours_mean": ("mean number of neighbours", "interior"),
    "nn_distance_median_um": ("median centroid nearest-neighbour distance (µm)", "all"),
    "wall_gap_um": ("median width of unlabelled walls between cells (µm), where the labels leave any", "all"),
}
"""Summary statistics of :func:`summarize`: description, and the cells they use: interior
ones (Miles-Lantuéjoul weighted) or all labels as cut by the volume (depends on its size)."""

COMPARED_DISTRIBUTIONS = {
    "volume_um3": "interior", "elongation": "interior", "flatness": "interior", "sphericity": "interior",
    "nn_distance_um": "all",
}
"""Per-cell columns whose distributions :func:`compare_tissue` compares (Kolmogorov-Smirnov)."""

_MAX_GAP_UM = 2.0  # runs of background longer than this between two cells are not walls


@dataclass
class TissueCells:
    """The per-cell table of one label volume (see :data:`CELL_COLUMNS`); ``pairs`` holds the
    rows of neighbouring cells (each pair once)."""

    kind: str
    shape: tuple[int, int, int]
    voxel_size: VoxelSize
    columns: dict[str, np.ndarray]
    tissue_fraction: float
    brick_count: int
    pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    wall_gap_um: float = float("nan")
    chords: np.ndarray = field(default_factory=lambda: np.zeros((3, 2)))
    """Per axis (z, y, x): length (µm) of lines inside cells, and the number of walls between cells on them."""
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.columns["label"])

    @property
    def box_volume_um3(self) -> float:
        """Volume of the box (µm³)."""
        return float(np.prod(self.shape) * np.prod(self.voxel_size))

    @property
    def counting_volume_um3(self) -> float:
        """Volume in which the counted cells' associated points lie (µm³; see the module docstring)."""
        return float(np.prod(np.maximum(np.asarray(self.shape) - 1, 0)) * np.prod(self.voxel_size))


# --------------------------------------------------------------------------- per cell


def _check_labels(labels: Any) -> np.ndarray:
    labels = np.asarray(check_volume(np.asarray(labels), "labels"))
    if labels.dtype.kind == "b":
        raise CellsynthError("labels must be an instance label volume (integers, 0 = background), got a binary mask")
    if labels.dtype.kind not in "ui":
        raise CellsynthError(f"labels must be an integer volume (0 = background), got {labels.dtype}")
    if labels.dtype.kind == "i" and labels.size and labels.min() < 0:
        raise CellsynthError("labels must be non-negative (0 = background)")
    return labels


def _contacts(labels: np.ndarray, voxel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shared face area (µm²) of every pair of touching values (background 0 included).

    Returns ``(a, b, area)`` with ``a < b``.
    """
    face = (voxel[1] * voxel[2], voxel[0] * voxel[2], voxel[0] * voxel[1])
    width = int(labels.max()) + 1
    codes, areas = [], []
    for axis in range(3):
        lower = labels[tuple(slice(None, -1) if a == axis else slice(None) for a in range(3))]
        upper = labels[tuple(slice(1, None) if a == axis else slice(None) for a in range(3))]
        differs = lower != upper
        a, b = lower[differs].astype(np.int64), upper[differs].astype(np.int64)
        code = np.minimum(a, b) * width + np.maximum(a, b)
        unique, counts = np.unique(code, return_counts=True)
        codes.append(unique)
        areas.append(counts * face[axis])
    code = np.concatenate(codes)
    area = np.concatenate(areas)
    unique, index = np.unique(code, return_inverse=True)
    total = np.bincount(index, weights=area)
    return unique // width, unique % width, total


def _sphericity(mask: np.ndarray, voxel: np.ndarray) -> float:
    """Sphericity of a boolean mask's surface smoothed by one voxel (see the module docstring)."""
    from skimage.measure import marching_cubes, mesh_surface_area

    smooth = ndimage.gaussian_filter(np.pad(mask, 3).astype(np.float32), 1.0)
    if smooth.max() <= 0.5:
        return float("nan")
    vertices, faces, _, _ = marching_cubes(smooth, 0.5, spacing=tuple(voxel))
    area = mesh_surface_area(vertices, faces)
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    volume = abs(float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum())) / 6.0
    return float(math.pi ** (1 / 3) * (6.0 * volume) ** (2 / 3) / area) if area > 0 else float("nan")


def _nearest_along(labels: np.ndarray, axis: int, reverse: bool) -> tuple[np.ndarray, np.ndarray]:
    """Index and value of the nearest labelled voxel at or before each voxel along ``axis``
    (after it with ``reverse``); index -1 (or the length) and value 0 where there is none."""
    n = labels.shape[axis]
    moved = np.moveaxis(labels, axis, -1)
    if reverse:
        moved = moved[..., ::-1]
    index = np.where(moved != 0, np.arange(n, dtype=np.int32), np.int32(-1))
    np.maximum.accumulate(index, axis=-1, out=index)
    value = np.take_along_axis(moved, np.maximum(index, 0), axis=-1)
    value = np.where(index >= 0, value, 0)
    if reverse:
        index, value = (n - 1 - index)[..., ::-1], value[..., ::-1]
    return index, value


def _wall_gap_um(labels: np.ndarray, voxel: np.ndarray, max_gap_um: float = _MAX_GAP_UM) -> float:
    """Median width of unlabelled walls between two different cells (µm), or NaN.

    Along each axis, a run of background voxels with a different cell at each end and no
    longer than ``max_gap_um`` crosses a wall; a wall's width along its normal is at most the
    run's length, so each voxel of such runs takes the shortest of its runs along the three
    axes. NaN where fewer than half the contacts between cells go through such walls
    (segmentations whose cells share faces leave no wall to measure).
    """
    shortest = np.full(labels.shape, np.inf, dtype=np.float32)
    crossings = direct = 0
    for axis in range(3):
        before, left = _nearest_along(labels, axis, reverse=False)
        after, right = _nearest_along(labels, axis, reverse=True)
        length = (after - before - 1).astype(np.float32) * np.float32(voxel[axis])
        wall = (np.moveaxis(labels, axis, -1) == 0) & (left > 0) & (right > 0) & (left != right) \
            & (length <= max_gap_um)
        # one crossing per run: its first voxel
        crossings += int(np.count_nonzero(wall & (before == np.arange(labels.shape[axis]) - 1)))
        best = np.moveaxis(shortest, axis, -1)
        np.minimum(best, np.where(wall, length, np.float32(np.inf)), out=best)
        lower = labels[tuple(slice(None, -1) if a == axis else slice(None) for a in range(3))]
        upper = labels[tuple(slice(1, None) if a == axis else slice(None) for a in range(3))]
        direct += int(np.count_nonzero((lower != upper) & (lower > 0) & (upper > 0)))
    if crossings == 0 or crossings < direct:
        return float("nan")
    return float(np.median(shortest[np.isfinite(shortest)]))


def measure_cells(
    labels: np.ndarray, voxel_size: VoxelSize, kind: str = "membranes", *,
    contact_fraction: float = DEFAULT_CONTACT_FRACTION, sphericity: bool = True, progress: bool | None = None,
) -> TissueCells:
    """Measure every cell of an instance label volume.

    Parameters
    ----------
    labels
        Instance labels (Z, Y, X), 0 = background (any label values; they need not be
        consecutive).
    voxel_size
        Voxel size in µm (z, y, x).
    kind
        ``"membranes"`` (whole cells; neighbours and walls are measured) or ``"nuclei"``.
    contact_fraction
        Fraction of a cell's surface a neighbour must share with it.
    sphericity
        Measure the sphericity (the slowest part; NaN when off).
    progress
        Progress bar: None (default) on a terminal only, True always, False never.

    Returns
    -------
    TissueCells
        One row per label (see :data:`CELL_COLUMNS` and the module docstring).

    Examples
    --------
    >>> labels = np.zeros((20, 20, 20), np.uint16)
    >>> labels[4:16, 8:12, 8:12] = 1          # a 12 x 4 x 4 voxel rod: a box 3 times longer than wide
    >>> cells = measure_cells(labels, (1, 1, 1))
    >>> round(float(cells.columns["elongation"][0]), 2), float(cells.columns["axis_z"][0])
    (3.0, 1.0)
    """
    labels = _check_labels(labels)
    voxel = np.asarray(check_voxel_size(voxel_size))
    if kind not in KINDS:
        raise CellsynthError(f"unknown kind {kind!r}; use nuclei or membranes")
    if not (np.isfinite(contact_fraction) and 0 <= contact_fraction < 1):
        raise CellsynthError(f"contact fraction must be in [0, 1), got {contact_fraction!r}")
    shape = np.array(labels.shape)
    boxes = ndimage.find_objects(labels)
    ids = np.array([i + 1 for i, box in enumerate(boxes) if box is not None], dtype=np.int64)
    n = len(ids)
    columns: dict[str, np.ndarray] = {name: np.full(n, np.nan) for name in CELL_COLUMNS}
    columns["label"] = ids
    for name in ("interior", "touches_background"):
        columns[name] = np.zeros(n, dtype=bool)
    columns["neighbours"] = np.zeros(n, dtype=np.int64)
    # neighbours and contact with the background, from the face areas between labels
    a, b, area = _contacts(labels, voxel)
    index = np.full(int(labels.max()) + 1, -1, dtype=np.int64)
    index[ids] = np.arange(n)
    surface = np.zeros(n)
    for side in (a, b):
        np.add.at(surface, index[side[side > 0]], area[side > 0])
    background = a == 0
    columns["touches_background"][index[b[background]]] = True
    cells = ~background
    ia, ib, shared = index[a[cells]], index[b[cells]], area[cells]
    to_a, to_b = shared >= contact_fraction * surface[ia], shared >= contact_fraction * surface[ib]
    np.add.at(columns["neighbours"], ia, to_a)
    np.add.at(columns["neighbours"], ib, to_b)
    pairs = np.stack([ia, ib], axis=1)[to_a | to_b] if kind == "membranes" else np.zeros((0, 2), dtype=np.int64)

    box_term = voxel**2 / 12.0
    for row, label in enumerate(progress_bar(ids, progress=progress, desc="cells", unit="cell", leave=False,
                                             mininterval=1.0)):
        box = boxes[label - 1]
        mask = labels[box] == label
        points = np.nonzero(mask)
        start = np.array([s.start for s in box])
        coords = (np.stack(points, axis=1) + start) * voxel
        columns["volume_um3"][row] = len(coords) * float(np.prod(voxel))
        centre = coords.mean(axis=0)
        columns["z_um"][row], columns["y_um"][row], columns["x_um"][row] = centre
        centred = coords - centre
        covariance = centred.T @ centred / len(coords) + np.diag(box_term)
        values, vectors = np.linalg.eigh(covariance)
        columns["elongation"][row] = math.sqrt(values[2] / values[0])
        columns["flatness"][row] = math.sqrt(values[1] / values[0])
        axis = vectors[:, 2]
        axis = axis * np.sign(axis[np.flatnonzero(np.abs(axis) > 1e-12)[0]])
        columns["axis_z"][row], columns["axis_y"][row], columns["axis_x"][row] = axis
        extent = np.array([s.stop - s.start for s in box])
        interior = bool(np.all(start > 0) and np.all(start + extent < shape))
        if kind == "membranes":  # a cell at the tissue surface is cut by it, as the organism cuts simulated cells
            interior = interior and not columns["touches_background"][row]
        columns["interior"][row] = interior
        columns["weight"][row] = float(np.prod(shape / (shape - extent - 1))) if interior else 0.0
        if interior and sphericity:
            columns["sphericity"][row] = _sphericity(mask, voxel)

    centres = np.stack([columns["z_um"], columns["y_um"], columns["x_um"]], axis=1)
    if n > 1:
        from scipy.spatial import cKDTree

        distance, _ = cKDTree(centres).query(centres, k=2)
        columns["nn_distance_um"] = distance[:, 1]

    chords = np.zeros((3, 2))
    for axis in range(3):
        lower = labels[tuple(slice(None, -1) if a == axis else slice(None) for a in range(3))]
        upper = labels[tuple(slice(1, None) if a == axis else slice(None) for a in range(3))]
        both = (lower != 0) & (upper != 0)
        chords[axis] = (np.count_nonzero(both) * voxel[axis], np.count_nonzero(both & (lower != upper)))
    upper_faces = np.concatenate([np.moveaxis(labels, axis, 0)[-1].ravel() for axis in range(3)])
    brick = n - len(np.intersect1d(ids, upper_faces))
    gap = _wall_gap_um(labels, voxel) if kind == "membranes" and n > 1 else float("nan")
    return TissueCells(kind=kind, shape=tuple(int(s) for s in labels.shape), voxel_size=tuple(voxel.tolist()),
                       columns=columns, tissue_fraction=float(np.count_nonzero(labels) / labels.size),
                       brick_count=int(brick), pairs=pairs, wall_gap_um=gap, chords=chords)


# --------------------------------------------------------------------------- summaries


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The ``q`` quantile of ``values`` with non-negative ``weights`` (lower weighted median at 0.5).

    Examples
    --------
    >>> weighted_quantile(np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 4.0]), 0.5)
    3.0
    """
    values, weights = np.asarray(values, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    keep = np.isfinite(values) & (weights > 0)
    if not keep.any():
        return float("nan")
    order = np.argsort(values[keep], kind="stable")
    v, w = values[keep][order], weights[keep][order]
    cumulative = np.cumsum(w)
    return float(v[np.searchsorted(cumulative, q * cumulative[-1] - 1e-12 * cumulative[-1])])


def _weighted_mean_cv(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    keep = np.isfinite(values) & (weights > 0)
    if not keep.any():
        return float("nan"), float("nan")
    v, w = values[keep], weights[keep]
    mean = float(np.average(v, weights=w))
    sd = float(np.sqrt(np.average((v - mean) ** 2, weights=w)))
    return mean, (sd / mean if mean > 0 else float("nan"))


def orientation_order(axes: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Nematic order of unit vectors: ``(3 l_max - 1) / 2`` of their mean outer product, and its axis.

    1 when all vectors are parallel, near 0 for random directions (about ``1.5 / sqrt(N)``
    for ``N`` random ones), whatever their signs.

    Examples
    --------
    >>> order, direction = orientation_order(np.array([[0.0, 1, 0], [0, -1, 0]]))
    >>> order, direction.round(3).tolist()
    (1.0, [0.0, 1.0, 0.0])
    """
    axes = np.asarray(axes, dtype=np.float64).reshape(-1, 3)
    w = np.ones(len(axes)) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = np.all(np.isfinite(axes), axis=1) & (w > 0)
    if not keep.any():
        return float("nan"), np.full(3, np.nan)
    tensor = np.einsum("n,ni,nj->ij", w[keep], axes[keep], axes[keep]) / w[keep].sum()
    values, vectors = np.linalg.eigh(tensor)
    direction = vectors[:, 2] * np.sign(vectors[np.flatnonzero(np.abs(vectors[:, 2]) > 1e-12)[0], 2])
    return float((3.0 * values[2] - 1.0) / 2.0), direction


def summarize(tables: TissueCells | Sequence[TissueCells]) -> dict[str, float]:
    """Summary statistics (see :data:`STATISTICS`) of one volume or of several pooled.

    Counts (``cells``, ``interior_cells``) are means per volume; densities and fractions
    are totals over the total box volume; per-cell statistics pool the cells of all
    volumes (interior ones with their Miles-Lantuéjoul weights).

    Examples
    --------
    >>> labels = np.zeros((12, 12, 12), np.uint8); labels[2:6, 2:6, 2:6] = 1; labels[6:10, 6:10, 6:10] = 2
    >>> s = summarize(measure_cells(labels, (1, 1, 1), "nuclei"))
    >>> s["cells"], s["volume_mean_um3"], s["elongation_median"]
    (2.0, 64.0, 1.0)
    """
    tables = [tables] if isinstance(tables, TissueCells) else list(tables)
    if not tables:
        raise CellsynthError("nothing to summarise: give at least one label volume")
    kind = tables[0].kind
    col = {name: np.concatenate([t.columns[name] for t in tables]) for name in CELL_COLUMNS}
    weight = np.where(col["interior"], col["weight"], 0.0)
    box = sum(t.box_volume_um3 for t in tables)
    stats: dict[str, float] = {
        "cells": float(np.mean([len(t) for t in tables])),
        "interior_cells": float(np.mean([np.count_nonzero(t.columns["interior"]) for t in tables])),
        "cells_per_1000um3": (1000.0 * sum(t.brick_count for t in tables) / counting
                              if (counting := sum(t.counting_volume_um3 for t in tables)) > 0 else float("nan")),
        "tissue_fraction": sum(t.tissue_fraction * t.box_volume_um3 for t in tables) / box,
    }
    stats["volume_mean_um3"], stats["volume_cv"] = _weighted_mean_cv(col["volume_um3"], weight)
    stats["volume_mean_all_um3"], stats["volume_cv_all"] = _weighted_mean_cv(col["volume_um3"],
                                                                             np.ones(len(col["label"])))
    radius = (3.0 * col["volume_um3"] / (4.0 * math.pi)) ** (1 / 3)
    stats["radius_mean_um"], radius_cv = _weighted_mean_cv(radius, weight)
    stats["radius_std_um"] = stats["radius_mean_um"] * radius_cv
    stats["elongation_median"] = weighted_quantile(col["elongation"], weight, 0.5)
    stats["elongation_median_all"] = float(np.median(col["elongation"])) if len(col["label"]) else float("nan")
    stats["flatness_median"] = weighted_quantile(col["flatness"], weight, 0.5)
    stats["flatness_median_all"] = float(np.median(col["flatness"])) if len(col["label"]) else float("nan")
    axes = np.stack([col["axis_z"], col["axis_y"], col["axis_x"]], axis=1)
    lines = sum(t.chords[:, 0] for t in tables)
    walls = sum(t.chords[:, 1] for t in tables)
    chord = np.where(walls > 0, lines / np.maximum(walls, 1), np.nan)
    for k, axis in enumerate("zyx"):
        stats[f"chord_{axis}_um"] = float(chord[k])
    mean_chord = float(np.exp(np.mean(np.log(chord)))) if np.all(np.isfinite(chord)) else float("nan")
    stats["chord_ratio_z"], stats["chord_ratio_y"] = float(chord[0] / mean_chord), float(chord[1] / mean_chord)
    stats["orientation_order"] = orientation_order(axes, weight)[0]
    for k, axis in ((0, "z"), (1, "y")):
        stats[f"long_axis_{axis}"] = (float(np.average(np.abs(axes[:, k]), weights=weight)) if weight.sum() > 0
                                      else float("nan"))
    stats["neighbour_alignment"] = _neighbour_alignment(tables, interior_only=True)  # membranes only
    stats["neighbour_alignment_all"] = _neighbour_alignment(tables, interior_only=False)
    stats["sphericity_median"] = weighted_quantile(col["sphericity"], weight, 0.5)
    stats["neighbours_mean"] = (float(np.average(col["neighbours"], weights=weight))
                                if kind == "membranes" and weight.sum() > 0 else float("nan"))
    stats["nn_distance_median_um"] = float(np.nanmedian(col["nn_distance_um"])) \
        if np.isfinite(col["nn_distance_um"]).any() else float("nan")
    gaps = [t.wall_gap_um for t in tables if np.isfinite(t.wall_gap_um)]
    stats["wall_gap_um"] = float(np.median(gaps)) if gaps else float("nan")
    return stats


def _neighbour_alignment(tables: Sequence[TissueCells], interior_only: bool) -> float:
    """``(3 <cos^2> - 1) / 2`` of the angle between the long axes of neighbouring cells."""
    cos2 = []
    for t in tables:
        pairs = t.pairs
        if interior_only:
            pairs = pairs[t.columns["interior"][pairs].all(axis=1)]
        axes = np.stack([t.columns["axis_z"], t.columns["axis_y"], t.columns["axis_x"]], axis=1)
        cos2.append(np.einsum("ni,ni->n", axes[pairs[:, 0]], axes[pairs[:, 1]]) ** 2)
    values = np.concatenate(cos2) if cos2 else np.zeros(0)
    return float((3.0 * values.mean() - 1.0) / 2.0) if len(values) else float("nan")


def orientation(tables: TissueCells | Sequence[TissueCells]) -> np.ndarray:
    """The main direction (z, y, x) of the interior cells' long axes (weighted)."""
    tables = [tables] if isinstance(tables, TissueCells) else list(tables)
    col = {name: np.concatenate([t.columns[name] for t in tables]) for name in ("axis_z", "axis_y", "axis_x",
                                                                                 "interior", "weight")}
    weight = np.where(col["interior"], col["weight"], 0.0)
    return orientation_order(np.stack([col["axis_z"], col["axis_y"], col["axis_x"]], axis=1), weight)[1]


# --------------------------------------------------------------------------- crops and comparison


TISSUE_FRACTION_INSIDE = 0.99
"""A crop lies inside the tissue when at least this fraction of it is labelled."""


def crop_boxes(
    shape: Sequence[int], crop: Sequence[int], count: int, *, inside: np.ndarray | None = None,
    margin: Sequence[int] = (0, 0, 0),
) -> list[tuple[slice, ...]]:
    """Up to ``count`` crops of shape ``crop`` spread evenly over a volume of ``shape``.

    Along each axis the crops start at evenly spaced positions from 0 to ``shape - crop``
    (one position where the crop is as long as the volume), as many per axis as the crop
    fits without overlap, rounded up; ``count`` of them, evenly spaced in raster order, are
    returned (all of them when the grid has fewer). With ``inside`` (a boolean volume, e.g.
    the labelled tissue) the grid is four times as fine along each axis and only crops of
    which at least :data:`TISSUE_FRACTION_INSIDE` is ``inside`` are kept. ``margin``
    (voxels, z y x) keeps the crops that far from the volume's faces, or centres them along
    an axis too short for that.

    Examples
    --------
    >>> [tuple(s.start for s in box) for box in crop_boxes((10, 10, 10), (10, 5, 5), 4)]
    [(0, 0, 0), (0, 0, 5), (0, 5, 0), (0, 5, 5)]
    """
    shape, crop = np.asarray(shape, dtype=int), np.asarray(crop, dtype=int)
    if np.any(crop < 1) or np.any(crop > shape):
        raise CellsynthError(f"a crop of {tuple(crop.tolist())} voxels does not fit in a volume of "
                             f"{tuple(shape.tolist())}; use a larger volume or a smaller crop")
    if count < 1:
        raise CellsynthError(f"the number of crops must be at least 1, got {count}")
    margin = np.minimum(np.maximum(np.asarray(margin, dtype=int), 0), (shape - crop) // 2)
    fine = 1 if inside is None else 4
    starts = []
    for n, c, m in zip(shape - 2 * margin, crop, margin):
        k = int(math.ceil(fine * n / c)) if n > c else 1
        starts.append(m + np.unique(np.round(np.linspace(0, n - c, k)).astype(int)))
    grid = np.stack(np.meshgrid(*starts, indexing="ij"), axis=-1).reshape(-1, 3)
    if inside is not None:
        # labelled voxels per crop from a summed-volume table
        table = np.pad(np.asarray(inside, dtype=np.int64), ((1, 0), (1, 0), (1, 0))).cumsum(0).cumsum(1).cumsum(2)
        z0, y0, x0 = grid.T
        z1, y1, x1 = (grid + crop).T
        total = (table[z1, y1, x1] - table[z0, y1, x1] - table[z1, y0, x1] - table[z1, y1, x0]
                 + table[z0, y0, x1] + table[z0, y1, x0] + table[z1, y0, x0] - table[z0, y0, x0])
        grid = grid[total >= TISSUE_FRACTION_INSIDE * np.prod(crop)]
        if len(grid) == 0:
            raise CellsynthError(f"no crop of {tuple(crop.tolist())} voxels lies inside the tissue; "
                                 "use a smaller crop or measure without --inside-tissue")
    picks = np.unique(np.round(np.linspace(0, len(grid) - 1, min(count, len(grid)))).astype(int))
    return [tuple(slice(int(s), int(s + c)) for s, c in zip(grid[i], crop)) for i in picks[:count]]


def measure_crops(
    labels: np.ndarray, voxel_size: VoxelSize, kind: str, crop_um: Sequence[float], count: int = 8, *,
    inside_tissue: bool = False, margin_um: float = 0.0, **kwargs: Any,
) -> list[TissueCells]:
    """:func:`measure_cells` in up to ``count`` crops of ``crop_um`` (µm, z y x) of a volume.

    The crop in voxels is ``round(crop_um / voxel_size)``; labels are measured as cut by
    each crop. ``inside_tissue`` keeps only crops lying inside the labelled tissue (see
    :func:`crop_boxes`), to compare dense tissue with labels that also hold background.
    ``margin_um`` keeps the crops that far from the volume's faces where it is long enough
    (else centres them): a simulated volume's faces cut no cell, so its crops should keep
    clear of them (see :func:`compare_tissue`).
    """
    voxel = np.asarray(check_voxel_size(voxel_size))
    labels = np.asarray(labels)
    crop = np.maximum(np.round(np.asarray(crop_um, dtype=np.float64) / voxel).astype(int), 1)
    margin = np.round(float(margin_um) / voxel).astype(int)
    boxes = crop_boxes(labels.shape, crop, count, inside=(labels != 0) if inside_tissue else None, margin=margin)
    return [measure_cells(labels[box], voxel, kind, **kwargs) for box in boxes]


def ks_distance(a: np.ndarray, b: np.ndarray, weights_a: np.ndarray | None = None,
                weights_b: np.ndarray | None = None) -> float:
    """Kolmogorov-Smirnov distance (largest gap between the two weighted empirical CDFs).

    Examples
    --------
    >>> ks_distance(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    1.0
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    wa = np.ones(len(a)) if weights_a is None else np.asarray(weights_a, dtype=np.float64)
    wb = np.ones(len(b)) if weights_b is None else np.asarray(weights_b, dtype=np.float64)
    ka, kb = np.isfinite(a) & (wa > 0), np.isfinite(b) & (wb > 0)
    if not ka.any() or not kb.any():
        return float("nan")
    a, wa, b, wb = a[ka], wa[ka], b[kb], wb[kb]
    grid = np.union1d(a, b)

    def cdf(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        order = np.argsort(x)
        cumulative = np.concatenate([[0.0], np.cumsum(w[order])]) / w.sum()
        return cumulative[np.searchsorted(x[order], grid, side="right")]

    return float(np.max(np.abs(cdf(a, wa) - cdf(b, wb))))


def _pooled(tables: Sequence[TissueCells], column: str, cells: str) -> tuple[np.ndarray, np.ndarray]:
    values = np.concatenate([t.columns[column] for t in tables])
    if cells == "interior":
        weights = np.concatenate([np.where(t.columns["interior"], t.columns["weight"], 0.0) for t in tables])
    else:
        weights = np.ones(len(values))
    return values, weights


@dataclass
class Comparison:
    """Real against simulated tissue statistics (see :func:`compare_tissue`)."""

    real: dict[str, float]
    simulated: dict[str, float]
    simulated_sd: dict[str, float]
    relative_difference: dict[str, float]
    ks: dict[str, float]
    crop_um: tuple[float, float, float]
    volumes: dict[str, int]
    distributions: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)
    """Per-cell values and weights of both sides, for :func:`cellsynth.evaluate.plots.plot_tissue_distributions`."""

    def table(self) -> str:
        """A plain-text table: statistic, real, simulated (sd over crops), difference."""
        lines = [f"crop {' x '.join(f'{c:.1f}' for c in self.crop_um)} µm (z y x); "
                 f"real: {self.volumes['real']} volume(s), simulated: {self.volumes['simulated']} crop(s)",
                 f"{'statistic':<24}{'real':>11}{'simulated':>11}{'(sd)':>9}{'difference':>12}"]
        for key in STATISTICS:
            r, s, sd, d = self.real[key], self.simulated[key], self.simulated_sd[key], self.relative_difference[key]
            if not (np.isfinite(r) or np.isfinite(s)):
                continue
            lines.append(f"{key:<24}{_fmt(r):>11}{_fmt(s):>11}{_fmt(sd):>9}"
                         f"{(f'{100 * d:+.1f} %' if np.isfinite(d) else '-'):>12}")
        lines.append(f"{'distribution (KS)':<24}")
        for key, value in self.ks.items():
            lines.append(f"  {key:<22}{_fmt(value):>11}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"crop_um": list(self.crop_um), "volumes": self.volumes, "real": self.real,
                "simulated": self.simulated, "simulated_sd": self.simulated_sd,
                "relative_difference": self.relative_difference, "ks": self.ks}


def _fmt(value: float) -> str:
    if not np.isfinite(value):
        return "-"
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.3e}"


def physical_extent(shape: Sequence[int], voxel_size: VoxelSize) -> np.ndarray:
    """The extent of a volume in µm (z, y, x)."""
    return np.asarray(shape, dtype=np.float64) * np.asarray(check_voxel_size(voxel_size))


def matched_extent(*volumes: Sequence[tuple[np.ndarray, VoxelSize]]) -> np.ndarray:
    """The smallest physical extent (µm, z y x) per axis among all ``(labels, voxel_size)`` given."""
    pairs = [pair for group in volumes for pair in group]
    return np.min([physical_extent(np.shape(labels), voxel) for labels, voxel in pairs], axis=0)


def measure_volumes(
    volumes: Sequence[tuple[np.ndarray, VoxelSize]], kind: str, extent_um: Sequence[float] | None = None, *,
    crops: int = 8, **kwargs: Any,
) -> list[TissueCells]:
    """:func:`measure_crops` of every ``(labels, voxel_size)`` in crops of ``extent_um``
    (None: each volume whole)."""
    if extent_um is None:
        kwargs.pop("inside_tissue", None)
        kwargs.pop("margin_um", None)
        return [measure_cells(labels, voxel, kind, **kwargs) for labels, voxel in volumes]
    return [t for labels, voxel in volumes for t in measure_crops(labels, voxel, kind, extent_um, crops, **kwargs)]


def count_profile(
    labels: np.ndarray, voxel_size: VoxelSize, axis: int, slab_um: float, step_um: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Labels (cells, cut or whole) per slab along one axis: how the tissue changes along it.

    Slabs of ``slab_um`` along ``axis`` start every ``step_um`` (default: half a slab) from
    the volume's first plane, as many as fit; each counts the labels it holds a voxel of.
    Where cells shrink along the axis, the counts grow (for slabs thinner than cells, by less
    than the inverse cell volume: a slab also holds the cells it cuts).

    Parameters
    ----------
    labels
        Instance labels (Z, Y, X).
    voxel_size
        Voxel size (z, y, x) in µm.
    axis
        0, 1 or 2 (z, y, x).
    slab_um, step_um
        Slab thickness and the step between slab starts (µm), rounded to whole planes.

    Returns
    -------
    centres_um, counts
        Each slab's centre along the axis (µm from the first plane's start) and its label count.

    Examples
    --------
    >>> labels = np.repeat(np.arange(1, 9), 2)[None, :, None] * np.ones((2, 1, 3), np.uint8)
    >>> centres, counts = count_profile(labels, (1, 1, 1), 1, 4.0)
    >>> centres.tolist(), counts.tolist()
    ([2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0], [2, 2, 2, 2, 2, 2, 2])
    """
    labels = _check_labels(labels)
    voxel = np.asarray(check_voxel_size(voxel_size))
    if axis not in (0, 1, 2):
        raise CellsynthError(f"axis must be 0, 1 or 2 (z, y, x), got {axis!r}")
    size = voxel[axis]
    planes = int(round(slab_um / size)) if np.isfinite(slab_um) and slab_um > 0 else 0
    step = planes // 2 if step_um is None else (int(round(step_um / size)) if np.isfinite(step_um) else 0)
    if planes < 1 or step < 1 or planes > labels.shape[axis]:
        raise CellsynthError(f"slabs of {slab_um!r} µm every {step_um!r} µm do not fit along an axis of "
                             f"{labels.shape[axis] * size:g} µm in {size:g} µm planes; choose a thinner slab")
    starts = np.arange(0, labels.shape[axis] - planes + 1, step)
    counts = []
    for start in starts:
        slab = np.take(labels, np.arange(start, start + planes), axis=axis)
        counts.append(int(np.count_nonzero(np.unique(slab))))
    return (starts + planes / 2.0) * size, np.asarray(counts)


def count_trend(labels: np.ndarray, voxel_size: VoxelSize, axis: int, slab_um: float,
                step_um: float | None = None) -> tuple[float, float]:
    """Mean log count and its least-squares slope per µm over :func:`count_profile`'s slabs.

    Examples
    --------
    >>> labels = np.repeat(np.arange(1, 9), 2)[None, :, None] * np.ones((2, 1, 3), np.uint8)
    >>> [round(v, 4) for v in count_trend(labels, (1, 1, 1), 1, 4.0)]
    [0.6931, 0.0]
    """
    centres, counts = count_profile(labels, voxel_size, axis, slab_um, step_um)
    if len(counts) < 2 or np.any(counts == 0):
        raise CellsynthError("a count trend needs at least two slabs, each holding a cell; use thinner slabs")
    logs = np.log(counts)
    slope = float(np.polyfit(centres, logs, 1)[0])
    return float(np.mean(logs)), slope


def compare_tissue(
    real: Sequence[tuple[np.ndarray, VoxelSize]], simulated: Sequence[tuple[np.ndarray, VoxelSize]], kind: str, *,
    crops: int = 8, crop_um: Sequence[float] | None = None, inside_tissue: bool = False, sphericity: bool = True,
    margin_um: float = 0.0, progress: bool | None = None,
) -> Comparison:
    """Compare the tissue statistics of real and simulated labels, crop for crop.

    All volumes are measured in crops of the same physical size: the smallest extent per
    axis among them (the real volumes' size when the simulated ones are larger), up to
    ``crops`` crops per volume spread evenly over it (:func:`crop_boxes`). Crop-dependent
    statistics then compare like with like, provided the simulated crops keep clear of the
    simulated volume's faces (``margin_um``): a real volume is a crop of a larger tissue, so
    its faces cut cells whose centres lie outside it, while every simulated cell has its
    centre inside the simulated volume, and packed tissue next to the faces is not like the
    tissue inside. Crops of the packed ovule preset touching three faces hold about 50
    labels where crops of the same size 4 µm or more inside hold about 80.

    Parameters
    ----------
    real, simulated
        ``(labels, voxel_size)`` pairs.
    kind
        ``"nuclei"`` or ``"membranes"``.
    crops
        Crops per volume.
    crop_um
        Crop size (µm, z y x) instead of the smallest extent.
    margin_um
        Keep the simulated crops this far from the simulated volumes' faces (µm; about a
        cell diameter; where a volume is too short for that, its crops are centred along
        that axis). Default 0: crops spread over the whole volume.
    inside_tissue
        Use only crops lying inside the labelled tissue (for labels with background
        compared with dense tissue).
    sphericity
        Measure sphericity (the slowest statistic).
    progress
        Progress bars.

    Returns
    -------
    Comparison
        See :func:`compare_tables`.
    """
    if not real or not simulated:
        raise CellsynthError("compare needs at least one real and one simulated label volume")
    extent = matched_extent(real, simulated) if crop_um is None else np.asarray(crop_um, dtype=np.float64)
    options = dict(crops=crops, sphericity=sphericity, progress=progress, inside_tissue=inside_tissue)
    return compare_tables(measure_volumes(real, kind, extent, **options),
                          measure_volumes(simulated, kind, extent, margin_um=margin_um, **options))


def compare_tables(real: Sequence[TissueCells], simulated: Sequence[TissueCells]) -> Comparison:
    """Compare real and simulated tissue measured in crops of one size.

    Returns
    -------
    Comparison
        Summaries of both sides, the standard deviation of each simulated statistic over
        its crops, the relative difference ``(simulated - real) / real`` and the
        Kolmogorov-Smirnov distance of the per-cell distributions in
        :data:`COMPARED_DISTRIBUTIONS`.
    """
    real, simulated = list(real), list(simulated)
    if not real or not simulated:
        raise CellsynthError("compare needs at least one real and one simulated label volume")
    real_stats, sim_stats = summarize(real), summarize(simulated)
    per_crop = [summarize(t) for t in simulated]
    sd = {k: (float(np.nanstd([p[k] for p in per_crop])) if np.isfinite([p[k] for p in per_crop]).sum() > 1
              else float("nan")) for k in STATISTICS}
    ks, distributions = {}, {}
    for column, cells in COMPARED_DISTRIBUTIONS.items():
        a, wa = _pooled(real, column, cells)
        b, wb = _pooled(simulated, column, cells)
        name = column + ("" if cells == "all" else " (interior)")
        ks[name] = ks_distance(a, b, wa, wb)
        distributions[name] = {"real": (a, wa), "simulated": (b, wb)}
    extent = physical_extent(real[0].shape, real[0].voxel_size)
    return Comparison(real=real_stats, simulated=sim_stats, simulated_sd=sd,
                      relative_difference=relative_differences(real_stats, sim_stats), ks=ks,
                      crop_um=tuple(float(e) for e in extent),
                      volumes={"real": len(real), "simulated": len(simulated)}, distributions=distributions)


def relative_differences(real: Mapping[str, float], simulated: Mapping[str, float]) -> dict[str, float]:
    """``(simulated - real) / |real|`` per statistic (NaN where either is undefined or real is 0)."""
    return {k: ((simulated[k] - real[k]) / abs(real[k])
                if np.isfinite(real[k]) and np.isfinite(simulated[k]) and real[k] != 0 else float("nan"))
            for k in STATISTICS}


def summary_table(named: Mapping[str, Mapping[str, float]]) -> str:
    """A plain-text table of summaries side by side (one column per name)."""
    names = list(named)
    lines = [f"{'statistic':<24}" + "".join(f"{n[:14]:>15}" for n in names)]
    for key in STATISTICS:
        values = [named[n].get(key, float("nan")) for n in names]
        if any(np.isfinite(v) for v in values):
            lines.append(f"{key:<24}" + "".join(f"{_fmt(v):>15}" for v in values))
    return "\n".join(lines)
