"""Cell positions inside an organism: layer-wise assembly, Poisson-disk sampling, CSV points.

All positions are (N, 3) arrays of (z, y, x) in µm; voxel ``(k, j, i)`` has its centre at
``(k vz, j vy, i vx)``. Sampling is blue noise by random sequential adsorption: random
candidate points (uniform within the voxels of a region) are accepted in order unless they
lie closer than the minimum distance to an accepted point. Candidates are drawn and
checked in vectorised batches against a KD-tree; the sampler stops when a batch accepts
fewer than 1% of its candidates (the region is practically saturated; a full fill has a
packing fraction of about 0.3) or after at most 200 batches, so it always ends.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
from scipy.spatial import cKDTree

from cellsynth.errors import CellsynthError
from cellsynth.io import VoxelSize, check_voxel_size, read_positions
from cellsynth.simulate.anisotropy import CellPacking, mean_packing_volume

_MAX_BATCHES = 200
_MIN_BATCH = 1024
_MIN_YIELD = 0.01


def _check_distance(value: float, name: str) -> float:
    if not (np.isfinite(value) and value > 0):
        raise CellsynthError(f"{name} must be a positive length in µm, got {value!r}")
    return float(value)


def _check_count(count: int | None) -> int | None:
    if count is None:
        return None
    if isinstance(count, bool) or not float(count).is_integer() or count < 0:
        raise CellsynthError(f"cell count must be a non-negative integer, got {count!r}")
    return int(count)


def _sample_voxels(
    flat: np.ndarray, shape: tuple[int, ...], n: int, voxel: np.ndarray, rng: np.random.Generator,
) -> np.ndarray:
    """``n`` points uniform in the union of the voxels with flat indices ``flat`` (µm)."""
    picks = flat[rng.integers(0, flat.size, size=n)]
    index = np.stack(np.unravel_index(picks, shape), axis=1).astype(np.float64)
    return (index + rng.uniform(-0.5, 0.5, size=index.shape)) * voxel


def _accept(candidates: np.ndarray, accepted: list[np.ndarray], rule: float | CellPacking,
            limit: int | None) -> np.ndarray:
    """Candidates (in order) that keep clear of the accepted points and of each other.

    ``rule`` is a minimum distance (rows are z, y, x), or a :class:`CellPacking` whose cells
    must not overlap (rows are z, y, x and the cell's size and direction).
    """
    packing = rule if isinstance(rule, CellPacking) else None
    reach = rule if packing is None else 2.0 * packing.reach_um
    if accepted:
        previous = np.concatenate(accepted)
        tree = cKDTree(previous[:, :3])
        if packing is None:
            near, _ = tree.query(candidates, k=1, distance_upper_bound=reach)
            candidates = candidates[~(near < reach)]
        else:
            found = tree.query_ball_point(candidates[:, :3], reach)
            lengths = np.fromiter((len(f) for f in found), dtype=np.int64, count=len(found))
            rows = np.repeat(np.arange(len(candidates)), lengths)
            others = np.fromiter((j for f in found for j in f), dtype=np.int64, count=int(lengths.sum()))
            clash = np.zeros(len(candidates), dtype=bool)
            clash[rows[packing.too_close(candidates[rows], previous[others])]] = True
            candidates = candidates[~clash]
    if candidates.size == 0:
        return candidates
    pairs = cKDTree(candidates[:, :3]).query_pairs(reach, output_type="ndarray")
    if packing is not None and pairs.size:
        pairs = pairs[packing.too_close(candidates[pairs[:, 0]], candidates[pairs[:, 1]])]
    blocked = np.zeros(len(candidates), dtype=bool)
    keep = []
    if pairs.size:
        order = np.argsort(pairs[:, 0], kind="stable")
        pairs = pairs[order]
        starts = np.searchsorted(pairs[:, 0], np.arange(len(candidates) + 1))
    for i in range(len(candidates)):
        if blocked[i]:
            continue
        keep.append(i)
        if limit is not None and len(keep) >= limit:
            break
        if pairs.size:
            # query_pairs gives i < j: block later conflicting candidates only.
            blocked[pairs[starts[i] : starts[i + 1], 1]] = True
    return candidates[keep]


def _fill(
    flat: np.ndarray, shape: tuple[int, ...], voxel: np.ndarray, rule: float | CellPacking,
    rng: np.random.Generator, accepted: list[np.ndarray], limit: int | None,
) -> int:
    """Add blue-noise points in the voxels ``flat`` to ``accepted``; return how many.

    Batches of candidates of about half the region's capacity (fewer when only ``limit``
    more are wanted) are accepted in order; filling stops at ``limit`` or when a batch
    accepts fewer than 1% of its candidates (the region is practically saturated).
    ``rule``: a minimum distance, or the cells' packing (see :func:`_accept`).
    """
    placed = 0
    if isinstance(rule, CellPacking):
        cell_volume = mean_packing_volume(rule)
    else:
        cell_volume = math.pi / 6 * rule**3
    capacity = max(1, int(flat.size * float(np.prod(voxel)) / cell_volume))
    for _ in range(_MAX_BATCHES):
        wanted = capacity if limit is None else limit - placed
        if wanted <= 0:
            break
        size = max(_MIN_BATCH, min(4 * wanted, capacity // 2))
        candidates = _sample_voxels(flat, shape, size, voxel, rng)
        if isinstance(rule, CellPacking):
            candidates = np.column_stack([candidates, rule.draw(candidates, rng)])
        new = _accept(candidates, accepted, rule, None if limit is None else limit - placed)
        if len(new):
            accepted.append(new)
            placed += len(new)
        if len(new) < _MIN_YIELD * size and (limit is None or placed < limit):
            break
    return placed


def check_foreground(foreground: np.ndarray) -> np.ndarray:
    """Return the organism as a boolean array; refuse a non-3D or empty foreground."""
    foreground = np.asarray(foreground)
    if foreground.ndim != 3:
        raise CellsynthError(f"the organism foreground must be a 3D (Z, Y, X) mask, got shape {foreground.shape}")
    inside = foreground != 0
    if not inside.any():
        raise CellsynthError("the organism foreground is empty; choose another organism or mask")
    return inside


def _report(placed: int, count: int | None, what: str) -> None:
    if count is not None and placed < count:
        warnings.warn(f"only {placed} of {count} cells fit ({what}); lower --count or the cell size", stacklevel=3)


def poisson_disk_positions(
    foreground: np.ndarray, voxel_size: VoxelSize, min_distance_um: float, rng: np.random.Generator,
    count: int | None = None, *, packing: CellPacking | None = None,
) -> np.ndarray:
    """Blue-noise positions uniform over the whole organism.

    Parameters
    ----------
    foreground
        Organism mask (Z, Y, X), nonzero inside.
    voxel_size
        Voxel size (z, y, x) in µm.
    min_distance_um
        No two positions are closer than this (µm), e.g. the cell diameter.
    rng
        Random generator.
    count
        How many positions to place; ``None`` fills the organism until it is practically
        saturated. If fewer fit, a warning says how many were placed.
    packing
        Pack cells of these sizes and shapes (non-overlapping ellipsoids, see
        :mod:`cellsynth.simulate.anisotropy`) instead of points ``min_distance_um`` apart.

    Returns
    -------
    numpy.ndarray
        (N, 3) positions (z, y, x) in µm, in placement order; with ``packing``, (N, 10):
        the position, the cell's size ``gamma``, its long axis and its middle axis (z, y, x).

    Examples
    --------
    >>> fg = np.ones((20, 20, 20), np.uint8)
    >>> pts = poisson_disk_positions(fg, (1, 1, 1), 5.0, np.random.default_rng(0), count=10)
    >>> pts.shape
    (10, 3)
    """
    inside = check_foreground(foreground)
    voxel = np.asarray(check_voxel_size(voxel_size))
    min_distance = _check_distance(min_distance_um, "minimum distance")
    count = _check_count(count)
    accepted: list[np.ndarray] = []
    placed = _fill(np.flatnonzero(inside), inside.shape, voxel, packing or min_distance, rng, accepted, count)
    _report(placed, count, "uniform placement")
    return np.concatenate(accepted) if accepted else np.zeros((0, 3 if packing is None else 3 + CellPacking.ATTRIBUTES))


def depth_um(foreground: np.ndarray, voxel_size: VoxelSize) -> np.ndarray:
    """Depth below the organism surface in µm: positive inside, 0 outside.

    Inside the organism this equals :func:`cellsynth.conditioning.signed_distance_um`
    (computed here without the outside half, which positions do not need). Where the
    organism fills the whole volume (a box), the volume's faces are its surface.
    """
    import edt

    inside = np.ascontiguousarray(check_foreground(foreground))
    voxel = check_voxel_size(voxel_size)
    if inside.all():  # distance to the nearest face, as an EDT with a black border gives it
        depth = np.full(inside.shape, np.inf, dtype=np.float32)
        for axis, (n, v) in enumerate(zip(inside.shape, voxel)):
            index = np.arange(n, dtype=np.float32)
            face = (np.minimum(index + 1, n - index) * np.float32(v)).reshape([-1 if a == axis else 1 for a in range(3)])
            np.minimum(depth, face, out=depth)
        return depth
    return edt.edt(inside.view(np.uint8), anisotropy=voxel)


def _between(depth: np.ndarray, low: float, high: float) -> np.ndarray:
    """Flat indices of organism voxels (depth > 0) with ``low <= depth <= high``."""
    band = depth >= low if low > 0 else depth > 0
    if np.isfinite(high):
        band &= depth <= high
    return np.flatnonzero(band)


def layered_positions(
    foreground: np.ndarray, voxel_size: VoxelSize, spacing_um: float, rng: np.random.Generator,
    count: int | None = None, *, depth: np.ndarray | None = None, packing: CellPacking | None = None,
) -> np.ndarray:
    """Layer-wise assembly of cell positions from the organism surface inwards (Sec. 3.1).

    Layer ``k`` holds cells whose depth below the surface is about ``spacing/2 + k spacing``
    (within ``spacing/4``); within a layer the cells are placed by Poisson-disk sampling
    with minimum distance ``spacing``, also kept to the cells of the outer layers. When the
    next nominal layer lies deeper than the organism, one last layer takes the remaining
    core. Assembly stops when a layer gets no cell or ``count`` cells are placed (outer
    layers first).

    Parameters
    ----------
    foreground
        Organism mask (Z, Y, X).
    voxel_size
        Voxel size (z, y, x) in µm.
    spacing_um
        Distance between neighbouring cell centres (µm): the cell diameter.
    rng
        Random generator.
    count
        Maximum number of cells; ``None`` fills every layer. If fewer fit, a warning says
        how many were placed.
    depth
        Precomputed :func:`depth_um` of ``foreground`` (optional).
    packing
        Pack cells of these sizes and shapes instead of points ``spacing`` apart (see
        :func:`poisson_disk_positions`); the layers stay ``spacing`` thick.

    Returns
    -------
    numpy.ndarray
        (N, 3) positions (z, y, x) in µm, outer layers first; with ``packing``, (N, 10) as
        :func:`poisson_disk_positions` returns.
    """
    inside = check_foreground(foreground)
    voxel = np.asarray(check_voxel_size(voxel_size))
    spacing = _check_distance(spacing_um, "cell spacing")
    count = _check_count(count)
    if depth is None:
        depth = depth_um(inside, voxel_size)
    half_band = max(spacing / 4, 0.5 * float(voxel.max()))
    deepest = float(depth.max())
    accepted: list[np.ndarray] = []
    placed, layer = 0, 0
    while count is None or placed < count:
        centre = spacing / 2 + layer * spacing
        if centre - half_band < deepest:
            flat = _between(depth, centre - half_band, centre + half_band)
        else:  # the next nominal layer lies too deep: one last layer in the remaining core
            flat = _between(depth, centre - spacing + half_band, np.inf)
        if flat.size == 0:
            break
        added = _fill(flat, inside.shape, voxel, packing or spacing, rng, accepted,
                      None if count is None else count - placed)
        placed += added
        if added == 0 or centre + half_band >= deepest:
            break
        layer += 1
    _report(placed, count, f"{layer + 1} layers")
    return np.concatenate(accepted) if accepted else np.zeros((0, 3 if packing is None else 3 + CellPacking.ATTRIBUTES))


# --------------------------------------------------------------------------- given points


def positions_from_csv(path: str | os.PathLike, voxel_size: VoxelSize, shape: tuple[int, int, int]) -> np.ndarray:
    """Read cell positions from a CSV file (the paper's "nuclei at detected positions").

    The header names the coordinates: ``z_um, y_um, x_um`` (µm), or ``z_px, y_px, x_px``
    or ``z, y, x`` (voxel indices, may be fractional). A sample's ``positions.csv`` works
    as is. Other columns are ignored.

    Parameters
    ----------
    path
        CSV file with a header row.
    voxel_size
        Voxel size (z, y, x) in µm.
    shape
        Volume shape (Z, Y, X); every point must lie inside it.

    Returns
    -------
    numpy.ndarray
        (N, 3) positions (z, y, x) in µm.

    Raises
    ------
    CellsynthError
        If the file is missing or malformed, has no points, a point lies outside the
        volume, or two points are closer than half a voxel (the same position twice).
    """
    voxel = np.asarray(check_voxel_size(voxel_size))
    table = {name.lower(): column for name, column in read_positions(path).items()}
    for names, factor in ((("z_um", "y_um", "x_um"), 1.0), (("z_px", "y_px", "x_px"), voxel), (("z", "y", "x"), voxel)):
        if all(n in table for n in names):
            break
    else:
        raise CellsynthError(f"{path} needs columns z_um,y_um,x_um (µm) or z_px,y_px,x_px (voxels)")
    try:
        points = np.stack([np.asarray(table[n], dtype=np.float64) for n in names], axis=1) * factor
    except ValueError:
        raise CellsynthError(f"{path}: the columns {', '.join(names)} must hold numbers") from None
    if len(points) == 0:
        raise CellsynthError(f"{path} holds no positions; add one row per cell")
    if not np.isfinite(points).all():
        raise CellsynthError(f"{path} has missing or non-finite coordinates")
    index = np.round(points / voxel)
    outside = np.flatnonzero(np.any((index < 0) | (index >= np.asarray(shape)), axis=1))
    if outside.size:
        raise CellsynthError(
            f"{path}: {outside.size} of {len(points)} points lie outside the {tuple(shape)} volume "
            f"(first: row {outside[0] + 1}); check the units (µm or voxels) and --voxel-size"
        )
    same = cKDTree(points).query_pairs(0.5 * voxel.min(), output_type="ndarray")
    if len(same):
        first, second = sorted(same[np.lexsort(same.T[::-1])][0])
        raise CellsynthError(f"{path}: rows {first + 1} and {second + 1} give the same position (closer than half a "
                             f"voxel, {len(same)} such pairs); every cell needs its own position")
    return points


def check_positions(points_um: np.ndarray, foreground: np.ndarray, voxel_size: VoxelSize) -> np.ndarray:
    """Check that every position lies in the volume and in the organism; return voxel indices.

    Raises
    ------
    CellsynthError
        Naming how many points are outside.
    """
    voxel = np.asarray(check_voxel_size(voxel_size))
    points = np.asarray(points_um, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or not np.isfinite(points).all():
        raise CellsynthError("positions must be an (N, 3) array of finite (z, y, x) values in µm")
    index = np.round(points / voxel).astype(np.int64)
    in_volume = np.all((index >= 0) & (index < np.asarray(foreground.shape)), axis=1)
    if not in_volume.all():
        raise CellsynthError(f"{np.count_nonzero(~in_volume)} of {len(points)} positions lie outside the volume")
    in_organism = np.asarray(foreground)[tuple(index.T)] != 0
    if not in_organism.all():
        raise CellsynthError(
            f"{np.count_nonzero(~in_organism)} of {len(points)} positions lie outside the organism; "
            "use --organism box or a foreground that contains them"
        )
    return index
