"""Whole cells by a multiplicatively weighted Voronoi tessellation, and their membrane walls.

Tessellation (Eq. 3 of Eschweiler et al. 2021)
-----------------------------------------------
Every foreground voxel ``x`` goes to the seed ``j`` that minimises ``|x - s_j| / gamma_j``
(distances in µm). With equal weights this is the nearest-seed (Voronoi) labelling; unequal
weights bend the walls into spherical caps (Apollonius surfaces). The weights are drawn per
cell as ``gamma_j ~ Uniform(1 - spread, 1 + spread)``.

The volume is cut into blocks of voxels. For each block a candidate list is built that
provably contains every seed that can win at one of its voxels: a seed whose smallest
weighted distance to the block's box exceeds the smallest *largest* weighted distance of any
seed cannot win anywhere in it. Seeds near the block are found with a KD-tree, so the work
grows linearly with the number of voxels. The candidates of many blocks are then compared in
vectorised form (squared distances per axis, summed by broadcasting). The result equals
evaluating the argmin over all seeds at every voxel; ties go to the lower seed index.

A weighted Voronoi region can be disconnected, and a non-convex organism or the voxel grid
can cut a region into pieces. Every cell is made one face-connected piece: each smaller
piece joins the neighbouring cell it shares the most faces with. A piece with no labelled
neighbour (a part of the organism that no seed reaches) becomes a cell of its own.

Membranes: the walls of the cells are :func:`cellsynth.simulate.annotations.membrane_mask`
of their labels, the one wall definition for simulated and real labels.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from cellsynth.errors import CellsynthError
from cellsynth.io import Sample, VoxelSize, check_volume, check_voxel_size, label_dtype
from cellsynth.progress import progress_bar
from cellsynth.simulate.annotations import DEFAULT_MEMBRANE_THICKNESS_UM, check_membrane_thickness, membrane_mask

DEFAULT_WEIGHT_SPREAD = 0.2
"""Default spread of the Voronoi weights: ``gamma_j ~ Uniform(0.8, 1.2)``."""

_CHUNK_ELEMENTS = 1 << 22
"""Upper bound on the elements of one vectorised candidate comparison (memory ~ 8x bytes)."""

__all__ = ["DEFAULT_WEIGHT_SPREAD", "check_weight_spread", "draw_weights", "simulate_membranes", "weighted_voronoi"]


# --------------------------------------------------------------------------- tessellation


def weighted_voronoi(
    foreground: np.ndarray, voxel_size: VoxelSize, seeds_um: np.ndarray, weights: np.ndarray | None = None,
    *, metrics: np.ndarray | None = None, block: tuple[int, int, int] | None = None, progress: bool | None = None,
) -> np.ndarray:
    """Label each foreground voxel with the seed minimising ``distance / weight`` (Eq. 3).

    Exact (see the module docstring); without per-voxel Python loops. With ``metrics`` the
    distance to seed ``j`` is ``sqrt((x - s_j)^T M_j (x - s_j))``: each cell measures
    distance in its own metric, so a metric that shortens one direction stretches the cell
    along it (anisotropic weighted Voronoi).

    Parameters
    ----------
    foreground
        Organism mask (Z, Y, X), nonzero inside.
    voxel_size
        Voxel size in µm (z, y, x).
    seeds_um
        ``(N, 3)`` seed positions (z, y, x) in µm.
    weights
        ``(N,)`` positive weights ``gamma_j``; None for equal weights.
    metrics
        ``(N, 3, 3)`` symmetric positive definite matrices ``M_j`` (acting on (z, y, x)
        offsets in µm); None for the Euclidean distance.
    block
        Block shape in voxels; by default about a sixth of the mean seed spacing (a third
        with ``metrics``). The result does not depend on it.
    progress
        Progress bar: None (default) on a terminal only, True always, False never.

    Returns
    -------
    numpy.ndarray
        int32 volume: the seed index + 1 in the foreground, 0 outside.
    """
    voxel = np.asarray(check_voxel_size(voxel_size))
    inside = np.asarray(check_volume(foreground, "foreground"))
    inside = inside if inside.dtype == bool else inside != 0
    seeds = np.asarray(seeds_um, dtype=np.float64)
    if seeds.ndim != 2 or seeds.shape[1] != 3 or len(seeds) == 0 or not np.isfinite(seeds).all():
        raise CellsynthError("seed positions must be a non-empty (N, 3) array of finite µm coordinates (z, y, x)")
    gamma = np.ones(len(seeds)) if weights is None else np.asarray(weights, dtype=np.float64)
    if gamma.shape != (len(seeds),) or not np.all(np.isfinite(gamma) & (gamma > 0)):
        raise CellsynthError("Voronoi weights must be one positive number per seed")
    if metrics is not None:
        metrics = np.asarray(metrics, dtype=np.float64)
        if metrics.shape != (len(seeds), 3, 3) or not np.isfinite(metrics).all() \
                or not np.allclose(metrics, metrics.transpose(0, 2, 1)) or np.linalg.eigvalsh(metrics).min() <= 0:
            raise CellsynthError("cell metrics must be one symmetric positive definite 3x3 matrix per seed")
    shape = np.array(inside.shape)
    if block is None:
        spacing = (inside.sum() * np.prod(voxel) / len(seeds)) ** (1 / 3)
        # per-cell metrics cost more per block (the candidate bounds), so their blocks are larger
        block = tuple(np.clip(np.round(spacing / (6.0 if metrics is None else 3.0) / voxel), 5, 16).astype(int))
    bshape = np.minimum(np.asarray(block, dtype=int), shape)
    nblocks = -(-shape // bshape)

    # Blocks that hold foreground, and their boxes (voxel centres, µm; padded blocks are fine).
    occupied = inside
    for axis in range(3):
        occupied = np.logical_or.reduceat(occupied, np.arange(0, shape[axis], bshape[axis]), axis=axis)
    block_idx = np.argwhere(occupied)
    lo = block_idx * bshape * voxel
    hi = (block_idx * bshape + bshape - 1) * voxel
    if metrics is None:
        block_ids, seed_ids = _candidates(lo, hi, seeds, gamma)
    else:
        block_ids, seed_ids = _candidates_metric(lo, hi, seeds, gamma, metrics)

    padded = np.zeros(tuple(nblocks * bshape), dtype=np.int32)
    tiles = padded.reshape(nblocks[0], bshape[0], nblocks[1], bshape[1], nblocks[2], bshape[2])
    tiles = tiles.transpose(0, 2, 4, 1, 3, 5)  # a view: tiles[block index] is one block of `padded`
    counts = np.bincount(block_ids, minlength=len(block_idx))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    inv_gamma2 = 1.0 / gamma**2
    # M_j / gamma_j^2 as the six products it multiplies: zz, yy, xx, 2zy, 2zx, 2yx
    quadratic = None if metrics is None else np.stack(
        [metrics[:, 0, 0], metrics[:, 1, 1], metrics[:, 2, 2],
         2 * metrics[:, 0, 1], 2 * metrics[:, 0, 2], 2 * metrics[:, 1, 2]], axis=1) * inv_gamma2[:, None]
    coords = [np.arange(b) for b in bshape]
    jobs = []
    for count in np.unique(counts):
        members = np.flatnonzero(counts == count)
        per_chunk = max(1, _CHUNK_ELEMENTS // int(count * bshape.prod()))
        jobs += [(count, members[i : i + per_chunk]) for i in range(0, len(members), per_chunk)]
    for count, members in progress_bar(jobs, progress=progress, desc="tessellation", unit="chunk", leave=False,
                                       mininterval=1.0):
        cand = seed_ids[starts[members, None] + np.arange(count)]  # (n, C), ascending seed index
        where = tuple(block_idx[members].T)
        if count == 1:
            tiles[where] = (cand[:, 0] + 1)[:, None, None, None]
            continue
        origin = block_idx[members] * bshape  # (n, 3) voxel index of each block's corner
        offsets = [(origin[:, axis, None] + coords[axis][None, :]) * voxel[axis] for axis in range(3)]
        offsets = [pos[:, None, :] - seeds[cand, axis][:, :, None] for axis, pos in enumerate(offsets)]  # (n, C, b)
        if quadratic is None:
            scale = inv_gamma2[cand][:, :, None]
            terms = [d**2 * scale for d in offsets]  # squared weighted distance per axis, (n, C, b_axis)
            expand = [(slice(None), slice(None), None, None), (slice(None), None, slice(None), None),
                      (slice(None), None, None, slice(None))]
        else:
            # Delta^T M Delta = P(z, y) + Q(y, x) + R(z, x): three 2D tables per candidate
            q = quadratic[cand]  # (n, C, 6)
            dz, dy, dx = offsets
            terms = [q[..., 0, None, None] * dz[..., :, None] ** 2 + q[..., 1, None, None] * dy[..., None, :] ** 2
                     + q[..., 3, None, None] * dz[..., :, None] * dy[..., None, :],
                     q[..., 2, None, None] * dx[..., None, :] ** 2
                     + q[..., 5, None, None] * dy[..., :, None] * dx[..., None, :],
                     q[..., 4, None, None] * dz[..., :, None] * dx[..., None, :]]
            expand = [(slice(None), slice(None), slice(None), None), (slice(None), None, slice(None), slice(None)),
                      (slice(None), slice(None), None, slice(None))]
        best = terms[0][:, 0][expand[0]] + terms[1][:, 0][expand[1]] + terms[2][:, 0][expand[2]]
        pick = np.zeros(best.shape, dtype=np.int16 if count <= np.iinfo(np.int16).max else np.int32)
        trial = np.empty_like(best)
        better = np.empty(best.shape, dtype=bool)
        for c in range(1, count):  # strict '<' keeps the lowest seed index on ties, like argmin
            np.add(terms[0][:, c][expand[0]], terms[1][:, c][expand[1]], out=trial)
            trial += terms[2][:, c][expand[2]]
            np.less(trial, best, out=better)
            np.minimum(best, trial, out=best)
            np.putmask(pick, better, c)
        n = len(members)
        tiles[where] = np.take_along_axis(cand, pick.reshape(n, -1), axis=1).reshape(n, *bshape) + 1
    labels = np.ascontiguousarray(padded[: shape[0], : shape[1], : shape[2]])
    if not inside.all():
        labels[~inside] = 0
    return labels


def _candidates(lo: np.ndarray, hi: np.ndarray, seeds: np.ndarray, gamma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(block, seed) pairs such that every seed that wins somewhere in a block is listed.

    For box ``[lo, hi]`` and seed ``j`` let ``a_j`` and ``b_j`` be the smallest and largest
    weighted distances from the seed to the box. The winner ``w`` at any point of the box
    satisfies ``a_w <= min_j b_j``, so seeds with ``a_j > min_j b_j`` are dropped. The
    KD-tree pre-selection radius bounds ``min_j b_j`` from the seed nearest the centre.
    Pairs are sorted by block, then by seed index.
    """
    tree = cKDTree(seeds)
    centre = (lo + hi) / 2.0
    half_diag = np.linalg.norm(hi - lo, axis=1) / 2.0
    d_near, i_near = tree.query(centre)
    bound = (d_near + half_diag) / gamma[i_near]
    radius = bound * gamma.max() + half_diag
    block_ids, seed_ids = _pairs_within(tree, centre, radius)
    s = seeds[seed_ids]
    nearest = np.clip(s, lo[block_ids], hi[block_ids])
    farthest = np.maximum(np.abs(s - lo[block_ids]), np.abs(s - hi[block_ids]))
    g = gamma[seed_ids]
    a = np.linalg.norm(s - nearest, axis=1) / g
    b = np.linalg.norm(farthest, axis=1) / g
    return _keep_possible_winners(block_ids, seed_ids, a, b, len(centre))


def _candidates_metric(
    lo: np.ndarray, hi: np.ndarray, seeds: np.ndarray, gamma: np.ndarray, metrics: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_candidates` for distances ``sqrt((x - s_j)^T M_j (x - s_j)) / gamma_j``.

    ``b_j`` is exact: the distance is convex, so its largest value on a box is at a corner.
    ``a_j`` is the distance to the nearest of the planes that separate the seed from the
    box (through the box's Euclidean nearest point, and the faces): the metric ball of
    radius ``t`` reaches a plane at Euclidean distance ``g`` along ``n`` only if
    ``t >= g / sqrt(n^T M^-1 n)``. The seeds are pre-selected in stages: the exact
    ``b`` of the eight Euclidean nearest seeds bounds the winner's distance; a KD-tree
    ball and the cheap bound ``a_j >= g sqrt(lambda_min(M_j))`` drop most seeds before
    the tight bounds are computed.
    """
    tree = cKDTree(seeds)
    centre = (lo + hi) / 2.0
    half_diag = np.linalg.norm(hi - lo, axis=1) / 2.0
    scaled = metrics / gamma[:, None, None] ** 2
    shortest = np.sqrt(np.linalg.eigvalsh(scaled)[:, 0])  # weighted length of the shortest unit step
    k = min(8, len(seeds))
    _, near = tree.query(centre, k=k)
    near = near.reshape(len(centre), k)
    blocks = np.repeat(np.arange(len(centre)), k)
    bound = _farthest_corner(lo[blocks], hi[blocks], seeds[near.ravel()], scaled[near.ravel()])
    bound = bound.reshape(-1, k).min(axis=1)
    block_ids, seed_ids = _pairs_within(tree, centre, bound / shortest.min() + half_diag)
    s = seeds[seed_ids]
    gap = s - np.clip(s, lo[block_ids], hi[block_ids])
    gap_norm = np.linalg.norm(gap, axis=1)
    cheap = gap_norm * shortest[seed_ids] <= bound[block_ids] * (1 + 1e-9) + 1e-12
    block_ids, seed_ids, gap, gap_norm = block_ids[cheap], seed_ids[cheap], gap[cheap], gap_norm[cheap]
    inverse = np.linalg.inv(scaled)[seed_ids]
    outside = gap_norm > 0
    n = np.where(outside[:, None], gap, 1.0) / np.where(outside, gap_norm, 1.0)[:, None]
    a = np.where(outside, gap_norm, 0.0) / np.sqrt(_quadratic_form(n, inverse))
    a = np.maximum(a, np.max(np.abs(gap) / np.sqrt(np.diagonal(inverse, axis1=1, axis2=2)), axis=1))
    b = _farthest_corner(lo[block_ids], hi[block_ids], seeds[seed_ids], scaled[seed_ids])
    return _keep_possible_winners(block_ids, seed_ids, a, b, len(centre))


def _quadratic_form(delta: np.ndarray, metrics: np.ndarray) -> np.ndarray:
    """Row-wise ``delta^T M delta`` for (N, 3) offsets and (N, 3, 3) symmetric matrices."""
    d0, d1, d2 = delta[:, 0], delta[:, 1], delta[:, 2]
    return (metrics[:, 0, 0] * d0 * d0 + metrics[:, 1, 1] * d1 * d1 + metrics[:, 2, 2] * d2 * d2
            + 2.0 * (metrics[:, 0, 1] * d0 * d1 + metrics[:, 0, 2] * d0 * d2 + metrics[:, 1, 2] * d1 * d2))


def _farthest_corner(lo: np.ndarray, hi: np.ndarray, seeds: np.ndarray, metrics: np.ndarray) -> np.ndarray:
    """Largest ``sqrt((x - s)^T M (x - s))`` over the corners ``x`` of each box (row-wise)."""
    largest = np.zeros(len(seeds))
    low, high = lo - seeds, hi - seeds
    for corner in range(8):
        pick = np.array([(corner >> k) & 1 for k in range(3)], dtype=bool)
        np.maximum(largest, _quadratic_form(np.where(pick, high, low), metrics), out=largest)
    return np.sqrt(largest)


def _pairs_within(tree: cKDTree, centre: np.ndarray, radius: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(block, seed) pairs of the seeds within ``radius`` of each block centre, sorted."""
    found = tree.query_ball_point(centre, radius * (1 + 1e-9) + 1e-9, return_sorted=True)
    lengths = np.fromiter((len(f) for f in found), dtype=np.int64, count=len(found))
    block_ids = np.repeat(np.arange(len(found)), lengths)
    seed_ids = np.fromiter((s for f in found for s in f), dtype=np.int64, count=int(lengths.sum()))
    return block_ids, seed_ids


def _keep_possible_winners(block_ids: np.ndarray, seed_ids: np.ndarray, a: np.ndarray, b: np.ndarray,
                           blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """The pairs whose lower bound ``a`` does not exceed the block's smallest upper bound ``b``."""
    upper = np.full(blocks, np.inf)
    np.minimum.at(upper, block_ids, b)
    keep = a <= upper[block_ids] * (1 + 1e-9) + 1e-12
    return block_ids[keep], seed_ids[keep]


def connect_cells(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Make every labelled cell one face-connected piece, in place.

    The largest piece of each label keeps it. Every other piece joins the label it shares
    the most faces with among the settled voxels (repeated until nothing changes); pieces
    that touch no settled voxel become new labels (numbered after the largest existing one).
    Works cell by cell in its bounding box, and piece by piece in the piece's own box (grown
    by one voxel), so the cost follows the size of the stray pieces, not of their cells; the
    extra memory is one byte per voxel.

    Returns
    -------
    labels, moved
        The labels and the number of voxels in the pieces that were moved (a piece can
        rejoin its own label through a piece moved before it).
    """
    face = ndimage.generate_binary_structure(3, 1)
    stray: list[tuple[tuple[slice, ...], np.ndarray]] = []  # (piece's grown box, piece mask in it)
    for index, box in enumerate(ndimage.find_objects(labels)):
        if box is None:
            continue
        grown = _grown_box(box, labels.shape)
        pieces, count = ndimage.label(labels[grown] == index + 1, structure=face)
        if count > 1:
            largest = np.argmax(np.bincount(pieces.ravel())[1:]) + 1
            for k, piece_box in enumerate(ndimage.find_objects(pieces), start=1):
                if k != largest:
                    local = _grown_box(piece_box, pieces.shape)
                    where = tuple(slice(g.start + p.start, g.start + p.stop) for g, p in zip(grown, local))
                    stray.append((where, pieces[local] == k))
    if not stray:
        return labels, 0
    unsettled = np.zeros(labels.shape, dtype=bool)
    for grown, piece in stray:
        unsettled[grown] |= piece
    moved = 0
    pending = stray
    while pending:
        left = []
        for grown, piece in pending:
            ring = ndimage.binary_dilation(piece, structure=face) & ~piece
            local = labels[grown]
            neighbours = local[ring & ~unsettled[grown] & (local != 0)]
            if neighbours.size == 0:
                left.append((grown, piece))
                continue
            values, contacts = np.unique(neighbours, return_counts=True)
            local[piece] = values[np.argmax(contacts)]
            unsettled[grown] &= ~piece
            moved += int(piece.sum())
        if len(left) == len(pending):  # no settled cell reaches these pieces: each is a cell of its own
            for grown, piece in left:
                labels[grown][piece] = labels.max() + 1
            break
        pending = left
    return labels, moved


def _grown_box(box: tuple[slice, ...], shape: tuple[int, ...]) -> tuple[slice, ...]:
    """A bounding box grown by one voxel on every side, clipped to ``shape``."""
    return tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, shape))


# --------------------------------------------------------------------------- simulation


def check_weight_spread(spread: float) -> float:
    """Check the spread of the Voronoi weights: a number in [0, 1)."""
    if not (isinstance(spread, (int, float, np.number)) and np.isfinite(spread) and 0 <= spread < 1):
        raise CellsynthError(f"weight spread must be in [0, 1), got {spread!r}")
    return float(spread)


def draw_weights(count: int, spread: float, rng: np.random.Generator) -> np.ndarray:
    """Voronoi weights ``gamma_j ~ Uniform(1 - spread, 1 + spread)`` for ``count`` cells."""
    spread = check_weight_spread(spread)
    return rng.uniform(1.0 - spread, 1.0 + spread, size=count)


def simulate_membranes(
    foreground: np.ndarray, voxel_size: VoxelSize, seeds_um: np.ndarray, rng: np.random.Generator, *,
    weight_spread: float = DEFAULT_WEIGHT_SPREAD, membrane_thickness_um: float = DEFAULT_MEMBRANE_THICKNESS_UM,
    weights: np.ndarray | None = None, metrics: np.ndarray | None = None, progress: bool | None = None,
) -> Sample:
    """Simulate whole cells and their membranes filling an organism.

    Parameters
    ----------
    foreground
        Organism mask (Z, Y, X).
    voxel_size
        Voxel size in µm (z, y, x).
    seeds_um
        ``(N, 3)`` cell positions (z, y, x) in µm, e.g. from
        :func:`cellsynth.simulate.positions.poisson_disk_positions`.
    rng
        Random generator (draws the weights).
    weight_spread
        Spread of the weights ``gamma_j ~ U(1 - spread, 1 + spread)``; 0 gives a plain
        Voronoi tessellation with flat walls.
    weights
        The cells' weights ``gamma_j`` (e.g. the sizes the seeds were packed with); None
        draws them with ``weight_spread``.
    metrics
        ``(N, 3, 3)``: each cell measures distance in its own metric, e.g. that of its
        ellipsoid (:func:`cellsynth.simulate.anisotropy.cell_metrics`); None: the Euclidean
        distance (Eq. 3).
    membrane_thickness_um
        Wall thickness in µm (see :func:`membrane_mask`).
    progress
        Progress bar: None (default) on a terminal only, True always, False never.

    Returns
    -------
    Sample
        ``labels``: whole cells 1..N (uint16, uint32 above 65535), each one connected
        piece, filling the foreground; ``mask``: the membranes; ``foreground``;
        ``positions``: label, seed position (µm and voxels; the centroid for a piece of the
        organism that no seed reached, whose weight is NaN), weight and volume (µm³) per
        cell; ``metadata``: parameters, counts and timings.

    Examples
    --------
    >>> fg = np.ones((20, 20, 20), np.uint8)
    >>> sample = simulate_membranes(fg, (1, 1, 1), [[5, 5, 5], [14, 14, 14]], np.random.default_rng(0))
    >>> int(sample.labels.max()), bool(sample.labels.all())
    (2, True)
    """
    voxel = check_voxel_size(voxel_size)
    fg = np.asarray(check_volume(foreground, "foreground")) != 0
    if not fg.any():
        raise CellsynthError("the organism foreground is empty; choose another organism shape")
    seeds = np.asarray(seeds_um, dtype=np.float64).reshape(-1, 3)
    if len(seeds) == 0:
        raise CellsynthError("no cell positions were given; lower the cell size or enlarge the organism")
    check_membrane_thickness(membrane_thickness_um)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    if weights is None:
        weights = draw_weights(len(seeds), weight_spread, rng)
    weights = np.asarray(weights, dtype=np.float64)
    raw = weighted_voronoi(fg, voxel, seeds, weights, metrics=metrics, progress=progress)
    timings["tessellation_s"] = time.perf_counter() - start

    start = time.perf_counter()
    raw, moved = connect_cells(raw)
    timings["connectivity_s"] = time.perf_counter() - start

    start = time.perf_counter()
    present = np.flatnonzero(np.bincount(raw.ravel())[1:]) + 1  # raw label = seed index + 1 (+ new pieces)
    lut = np.zeros(int(raw.max()) + 1, dtype=label_dtype(len(present)))
    lut[present] = np.arange(1, len(present) + 1)
    labels = lut[raw]
    del raw
    mask = membrane_mask(labels, voxel, membrane_thickness_um)
    timings["membranes_s"] = time.perf_counter() - start

    counts = np.bincount(labels.ravel(), minlength=len(present) + 1)[1:]
    source = present - 1  # seed index, or >= len(seeds) for pieces no seed reached
    from_seed = source < len(seeds)
    seed_of = np.minimum(source, len(seeds) - 1)
    origin = seeds[seed_of]
    for index in np.flatnonzero(~from_seed):  # a piece no seed reached: its centroid
        origin[index] = np.mean(np.nonzero(labels == index + 1), axis=1) * voxel
    positions: dict[str, Any] = {"label": np.arange(1, len(present) + 1)}
    for k, axis in enumerate("zyx"):
        positions[f"{axis}_um"] = origin[:, k]
    for k, axis in enumerate("zyx"):
        positions[f"{axis}_px"] = origin[:, k] / voxel[k]
    positions["weight"] = np.where(from_seed, weights[seed_of], np.nan)
    if metrics is not None:
        long_axes = np.linalg.eigh(np.asarray(metrics, dtype=np.float64))[1][:, :, 0]  # least metric: longest axis
        for k, axis in enumerate("zyx"):
            positions[f"long_axis_{axis}"] = np.where(from_seed, long_axes[seed_of, k], np.nan)
    positions["volume_um3"] = counts * float(np.prod(voxel))
    metadata = {
        "kind": "membranes",
        "parameters": {"weight_spread": float(weight_spread), "membrane_thickness_um": float(membrane_thickness_um),
                       "cell_metrics": metrics is not None},
        "cells_requested": len(seeds),
        "cells": len(present),
        "seeds_without_cell": int(len(seeds) - from_seed.sum()),
        "voxels_reassigned_for_connectivity": int(moved),
        "timings": {k: round(v, 4) for k, v in timings.items()},
    }
    return Sample(labels=labels, mask=mask, foreground=fg.view(np.uint8), voxel_size=voxel,
                  positions=positions, metadata=metadata)
