"""Automatic annotation of real images (the paper's S_automatic case), training-free.

Nuclei (:func:`annotate_nuclei`):

1. percentile normalization;
2. multi-scale Laplacian-of-Gaussian detection with the scales in µm: for each radius
   ``r`` the response is ``-s**2 * LoG_s(image)`` with ``s = r / sqrt(3)`` and the second
   derivatives taken in µm (so anisotropic voxels are handled), maximised over scales;
   local maxima at least ``min_distance`` apart and above ``threshold`` are nuclei;
3. seeded watershed of the lightly smoothed image from those seeds, then a local
   half-maximum threshold inside each basin (halfway between the basin's background,
   its 20th percentile, and its peak, its 95th percentile), keeping the part connected
   to the seed. This adapts to the intensity falling off with depth.

Membranes (:func:`annotate_membranes`): cell seeds are the h-minima of the lightly smoothed
membrane signal (cell interiors are dark): the bottoms of the basins that are at least
``seed_depth`` deep (:func:`skimage.morphology.h_minima`), so a faint wall or texture
inside a cell that is lower than ``seed_depth`` does not split it, however close together
the cell's walls are. A seeded watershed of the same signal
gives the cells, cut to the organism region of
:func:`cellsynth.conditioning.foreground_from_image`. On the two PlantSeg crops in
../shared/data this seeding raised the F1 at IoU 0.5 from 0.675 to 0.795 (ovule) and from
0.47 to 0.61 (lateral root) over local minima at least a fixed distance apart
(``benchmarks/bench_annotate.py``).

Both return an :class:`cellsynth.io.Sample` (labels, the structure mask of
:func:`cellsynth.simulate.annotations.structure_mask`, the organism foreground, and
positions in µm and voxels) whose ``positions.csv`` feeds
``cellsynth simulate nuclei --positions``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from scipy import ndimage

from cellsynth.errors import CellsynthError
from cellsynth.intensity import normalize_percentiles
from cellsynth.io import Sample, VoxelSize, check_volume, check_voxel_size, label_dtype
from cellsynth.memory import check_memory

DEFAULT_NUCLEUS_RADIUS_UM = (1.5, 4.0)
"""Default range of nucleus radii (µm) searched by the detector."""
DEFAULT_NUCLEUS_THRESHOLD = 0.07
DEFAULT_NUCLEUS_LEVEL = 0.55
"""Nuclei defaults chosen on the training part (first 75 % along y) of the GoNuclear crop in
../shared/data only (F1 at IoU 0.5 there 0.800; 0.05 / 0.5 before: 0.750); its held-out part:
0.760 (``benchmarks/bench_annotate.py``)."""
MEMBRANE_CLOSING_UM = 4.0
"""Membranes: closing radius (µm) of the organism foreground estimate."""


def _ellipsoid(radius_um: float, voxel: np.ndarray) -> np.ndarray:
    """Boolean ellipsoidal footprint of a ball of ``radius_um`` on the voxel grid."""
    half = np.maximum(np.round(radius_um / voxel).astype(int), 1)
    grid = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    return sum((g * v / radius_um) ** 2 for g, v in zip(grid, voxel)) <= 1.0


def log_response(image: np.ndarray, voxel_size: VoxelSize, radius_um: float) -> np.ndarray:
    """Scale-normalized blob response ``-s**2 * LoG_s`` for blobs of radius ``radius_um``.

    ``s = radius / sqrt(3)`` (the LoG of a ball of radius r peaks there in 3D). The
    Laplacian is the sum of the second derivatives in µm, so a blob of a given size in µm
    gives the same response whatever the voxel size.
    """
    voxel = np.asarray(check_voxel_size(voxel_size))
    s = radius_um / np.sqrt(3.0)
    image = np.asarray(image, dtype=np.float32)
    laplacian = np.zeros(image.shape, dtype=np.float32)
    for axis in range(3):
        order = [2 if a == axis else 0 for a in range(3)]
        laplacian += ndimage.gaussian_filter(image, s / voxel, order=order, mode="reflect") / np.float32(voxel[axis] ** 2)
    return -np.float32(s * s) * laplacian


def detect_nuclei(image: np.ndarray, voxel_size: VoxelSize, *, radius_um: tuple[float, float] = DEFAULT_NUCLEUS_RADIUS_UM,
                  n_scales: int = 6, threshold: float = DEFAULT_NUCLEUS_THRESHOLD, min_distance_um: float | None = None,
                  mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Detect bright blobs (nuclei) with a multi-scale LoG.

    Parameters
    ----------
    image
        Normalized image (Z, Y, X) in [0, 1].
    voxel_size
        Voxel size (z, y, x) in µm.
    radius_um
        Smallest and largest nucleus radius in µm.
    n_scales
        Radii tried, evenly spaced over ``radius_um``.
    threshold
        Minimum scale-normalized response (in normalized intensity units); lower finds
        fainter nuclei and more false ones.
    min_distance_um
        Minimum distance between two detections (default: the smallest radius).
    mask
        Optional region; detections outside are dropped.

    Returns
    -------
    positions, radii
        (N, 3) voxel coordinates (z, y, x) of the detections, sorted by decreasing
        response, and the radius (µm) of the best-matching scale of each.
    """
    voxel = np.asarray(check_voxel_size(voxel_size))
    r_min, r_max = (float(r) for r in radius_um)
    if not 0 < r_min <= r_max:
        raise CellsynthError(f"--radius needs 0 < MIN <= MAX in µm, got {r_min} {r_max}")
    radii = np.linspace(r_min, r_max, max(1, n_scales)) if r_max > r_min else np.array([r_min])
    best = np.full(image.shape, -np.inf, dtype=np.float32)
    scale = np.zeros(image.shape, dtype=np.int8)
    for i, radius in enumerate(radii):
        response = log_response(image, voxel, float(radius))
        better = response > best
        best[better] = response[better]
        scale[better] = i
    footprint = _ellipsoid(min_distance_um or r_min, voxel)
    peaks = (best == ndimage.maximum_filter(best, footprint=footprint, mode="nearest")) & (best > threshold)
    if mask is not None:
        peaks &= np.asarray(mask) != 0
    positions = np.argwhere(peaks)
    order = np.argsort(-best[peaks], kind="stable")
    positions = positions[order]
    return positions, radii[scale[tuple(positions.T)]]


def segment_nuclei(image: np.ndarray, voxel_size: VoxelSize, seeds: np.ndarray, *, smoothing_um: float = 0.25,
                   level: float = DEFAULT_NUCLEUS_LEVEL, background_percentile: float = 20.0) -> np.ndarray:
    """Seeded watershed plus a local half-maximum threshold per nucleus.

    Parameters
    ----------
    image
        Normalized image (Z, Y, X).
    voxel_size
        Voxel size in µm.
    seeds
        (N, 3) voxel coordinates, one per nucleus.
    smoothing_um
        Gaussian smoothing (µm) before the watershed.
    level
        Fraction between the basin's background and peak intensity that bounds a
        nucleus (0.5: half maximum).
    background_percentile
        Percentile of each basin taken as its local background.

    Returns
    -------
    numpy.ndarray
        Instance labels 1..N (uint16/uint32), label i for seed i (empty if lost).
    """
    from skimage.segmentation import watershed

    voxel = np.asarray(check_voxel_size(voxel_size))
    smooth = ndimage.gaussian_filter(np.asarray(image, np.float32), smoothing_um / voxel)
    n = len(seeds)
    dtype = label_dtype(n)
    if n == 0:
        return np.zeros(smooth.shape, dtype=dtype)
    markers = np.zeros(smooth.shape, dtype=np.int32)
    markers[tuple(np.asarray(seeds, dtype=int).T)] = np.arange(1, n + 1)
    basins = watershed(-smooth, markers)
    ids = np.arange(1, n + 1)
    low = ndimage.labeled_comprehension(smooth, basins, ids, lambda a: np.percentile(a, background_percentile),
                                        np.float32, 0.0)
    high = ndimage.labeled_comprehension(smooth, basins, ids, lambda a: np.percentile(a, 95), np.float32, 0.0)
    cut = np.concatenate([[np.inf], low + level * (high - low)]).astype(np.float32)
    inside = smooth > cut[basins]
    # keep, per nucleus, the part connected to its seed
    parts, _ = ndimage.label(inside)
    seed_part = np.concatenate([[0], parts[tuple(np.asarray(seeds, dtype=int).T)]])
    keep = inside & (parts == seed_part[basins]) & (parts > 0)
    labels = np.where(keep, basins, 0).astype(dtype)
    return labels


def positions_table(labels: np.ndarray, voxel_size: VoxelSize) -> dict[str, np.ndarray]:
    """label, z/y/x in µm and voxels, and the equivalent radius (µm) of every label."""
    from cellsynth.simulate.annotations import label_centroids_um

    voxel = np.asarray(check_voxel_size(voxel_size))
    ids, centroids, counts = label_centroids_um(labels, voxel)
    px = centroids / voxel if len(ids) else np.zeros((0, 3))
    radius = np.cbrt(3.0 * counts * np.prod(voxel) / (4.0 * np.pi))
    table = {"label": ids.astype(np.int64)}
    for i, axis in enumerate("zyx"):
        table[f"{axis}_um"] = centroids[:, i] if len(ids) else np.zeros(0)
    for i, axis in enumerate("zyx"):
        table[f"{axis}_px"] = px[:, i]
    table["radius_um"] = radius
    return table


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Make labels consecutive 1..N (dropping the empty ones)."""
    present = np.unique(labels)
    present = present[present > 0]
    lut = np.zeros(int(labels.max()) + 1, dtype=label_dtype(len(present)))
    lut[present] = np.arange(1, len(present) + 1)
    return lut[labels]


ANNOTATE_BYTES_PER_VOXEL = 150
"""Peak memory of an annotation per voxel of the image (measured: about 80 for nuclei and 130
for membranes on a 64x128x128 image)."""


def _normalized(image: Any, percentiles: tuple[float, float]) -> np.ndarray:
    image = np.asarray(check_volume(np.asarray(image), "image"))
    check_memory(ANNOTATE_BYTES_PER_VOXEL * float(image.size), f"annotating a {'x'.join(map(str, image.shape))} image",
                 "annotate a smaller crop")
    return normalize_percentiles(image, *percentiles)


def annotate_nuclei(image: Any, voxel_size: VoxelSize, *, radius_um: tuple[float, float] = DEFAULT_NUCLEUS_RADIUS_UM,
                    threshold: float = DEFAULT_NUCLEUS_THRESHOLD, min_distance_um: float | None = None,
                    smoothing_um: float = 0.25, level: float = DEFAULT_NUCLEUS_LEVEL,
                    percentiles: tuple[float, float] = (1.0, 99.9)) -> Sample:
    """Detect and segment nuclei in a real image (see the module notes).

    Parameters
    ----------
    image
        The microscope image (Z, Y, X), any numeric type.
    voxel_size
        Voxel size (z, y, x) in µm.
    radius_um
        Range of nucleus radii in µm.
    threshold, min_distance_um
        Detection settings (:func:`detect_nuclei`).
    smoothing_um, level
        Segmentation settings (:func:`segment_nuclei`).
    percentiles
        Intensity normalization.

    Returns
    -------
    cellsynth.io.Sample
        labels, mask (nuclei), foreground (organism), positions (label centroids) and
        metadata (settings, counts, timings).
    """
    from cellsynth.conditioning import foreground_from_image
    from cellsynth.simulate.annotations import structure_mask

    voxel = check_voxel_size(voxel_size)
    t0 = time.perf_counter()
    norm = _normalized(image, percentiles)
    positions, radii = detect_nuclei(norm, voxel, radius_um=radius_um, threshold=threshold,
                                     min_distance_um=min_distance_um)
    t1 = time.perf_counter()
    labels = _relabel(segment_nuclei(norm, voxel, positions, smoothing_um=smoothing_um, level=level))
    t2 = time.perf_counter()
    foreground = foreground_from_image(norm, voxel)
    metadata = {
        "kind": "nuclei", "source": "cellsynth annotate (LoG detection + seeded watershed)",
        "parameters": {"radius_um": list(radius_um), "threshold": threshold, "min_distance_um": min_distance_um,
                       "smoothing_um": smoothing_um, "level": level, "percentiles": list(percentiles)},
        "detections": int(len(positions)), "cells": int(labels.max()),
        "timings": {"detect": t1 - t0, "segment": t2 - t1, "foreground": time.perf_counter() - t2},
    }
    return Sample(labels=labels, mask=structure_mask(labels, "nuclei", voxel), foreground=foreground,
                  voxel_size=voxel, positions=positions_table(labels, voxel), metadata=metadata)


def annotate_membranes(image: Any, voxel_size: VoxelSize, *, seed_depth: float = 0.05, smoothing_um: float = 0.3,
                       membrane_thickness_um: float | None = None, cut_to_foreground: bool = True,
                       percentiles: tuple[float, float] = (1.0, 99.9)) -> Sample:
    """Segment cells from a membrane image with a seeded watershed (see the module notes).

    Parameters
    ----------
    image
        The microscope image of cell membranes (Z, Y, X).
    voxel_size
        Voxel size (z, y, x) in µm.
    seed_depth
        How much darker (in normalized intensity, 0 to 1) a cell interior must be than the
        lowest wall to a darker neighbour to get a seed of its own; raise it where cells
        are split, lower it where neighbours merge.
    smoothing_um
        Gaussian smoothing of the membrane signal (µm) before seeding and the watershed.
    membrane_thickness_um
        Wall thickness of the written mask (default: the package default).
    cut_to_foreground
        Remove the cells' voxels outside the estimated organism region. Turn off for
        crops that lie entirely inside tissue, where the estimate may miss parts.
    percentiles
        Intensity normalization.

    Returns
    -------
    cellsynth.io.Sample
        labels (whole cells), mask (membranes), foreground (organism), positions (cell
        centroids) and metadata.
    """
    from skimage.morphology import h_minima
    from skimage.segmentation import watershed

    from cellsynth.conditioning import foreground_from_image
    from cellsynth.simulate.annotations import structure_mask

    voxel = np.asarray(check_voxel_size(voxel_size))
    t0 = time.perf_counter()
    norm = _normalized(image, percentiles)
    if not seed_depth > 0:
        raise CellsynthError(f"the seed depth must be a positive intensity difference (images are normalized to 0-1), "
                             f"e.g. 0.05; got {seed_depth}")
    smooth = ndimage.gaussian_filter(norm, smoothing_um / voxel)
    markers, n = ndimage.label(h_minima(smooth, seed_depth))  # a flat minimum gives one seed
    foreground = foreground_from_image(norm, tuple(voxel), closing_um=MEMBRANE_CLOSING_UM)
    labels = watershed(smooth, markers)
    if cut_to_foreground:
        labels[foreground == 0] = 0
    labels = _relabel(labels.astype(label_dtype(n)))
    t1 = time.perf_counter()
    kwargs = {} if membrane_thickness_um is None else {"membrane_thickness_um": membrane_thickness_um}
    metadata = {
        "kind": "membranes", "source": "cellsynth annotate (seeded watershed on the membrane signal)",
        "parameters": {"seed_depth": seed_depth, "smoothing_um": smoothing_um,
                       "cut_to_foreground": cut_to_foreground,
                       "membrane_thickness_um": membrane_thickness_um, "percentiles": list(percentiles)},
        "cells": int(labels.max()), "timings": {"segment": t1 - t0},
    }
    return Sample(labels=labels, mask=structure_mask(labels, "membranes", tuple(voxel), **kwargs),
                  foreground=foreground, voxel_size=tuple(voxel), positions=positions_table(labels, voxel),
                  metadata=metadata)
