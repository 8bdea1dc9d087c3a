"""Positional conditioning (Eq. 1 of Eschweiler et al. 2021) and the organism foreground.

The positional map tells the generator how deep each voxel lies in the specimen:

    f = tanh(dist / alpha)    inside the organism,
    f = tanh(-dist / beta)    outside,

where ``dist`` is the Euclidean distance to the organism surface in µm. Small ``alpha``
saturates quickly (the whole interior looks "deep", i.e. poor image quality); large
``alpha`` keeps the interior close to the surface value (good quality). The same
functions serve simulated samples and real training images, so alpha means the same for
both.

**The organism** is one thing everywhere (design note: a generator otherwise learns the
positional map instead of the mask). A simulated sample carries its organism
(``foreground.tif``). Where only labels exist (real training volumes, a labels file given
to ``cellsynth synthesize``), :func:`organism_from_labels` finds it: the labelled cells,
closed across the gaps between neighbouring cells, with the volume border treated as
unknown (a crop taken inside a tissue is the organism up to its border, like a simulated
``box`` organism). The volume border is never the organism surface: where the organism
fills the volume, the surface lies outside it, the distance is infinite and the map is 1
everywhere (:func:`signed_distance_um`).
"""

from __future__ import annotations

from typing import Any

import edt
import numpy as np
from scipy import ndimage

from cellsynth.errors import CellsynthError
from cellsynth.io import VoxelSize, check_voxel_size
from cellsynth.memory import release_free_memory

DEFAULT_DECAY_UM = 100.0
"""The paper's alpha and beta (section 4), for renderers that were not trained with others."""


def signed_distance_um(foreground: np.ndarray, voxel_size: VoxelSize, *, overwrite: bool = False) -> np.ndarray:
    """Signed distance to the organism surface in µm: positive inside, negative outside.

    A foreground voxel's distance is that to the nearest background voxel, and a background
    voxel's distance is that to the nearest foreground voxel (anisotropic, via ``edt``).
    If the foreground fills the whole volume, the surface lies outside it and the distance
    is ``+inf`` everywhere.

    Parameters
    ----------
    foreground
        Organism mask, (Z, Y, X), nonzero inside.
    voxel_size
        Voxel size in µm (z, y, x).
    overwrite
        Let a C-contiguous bool ``foreground`` serve as scratch memory (its content is then
        undefined), which saves a copy for large volumes.
    """
    voxel = check_voxel_size(voxel_size)
    if overwrite and isinstance(foreground, np.ndarray) and foreground.dtype == bool and foreground.flags.c_contiguous:
        inside = foreground
    else:
        inside = np.ascontiguousarray(np.asarray(foreground) != 0)
    if not inside.any():
        raise CellsynthError("the organism foreground is empty; check the foreground mask")
    if inside.all():
        return np.full(inside.shape, np.inf, dtype=np.float32)
    # One EDT over two labels (1 inside, 2 outside) gives every voxel its distance to the
    # nearest voxel of the other region: 5 bytes per voxel instead of two transforms.
    regions = inside.view(np.uint8)
    np.subtract(2, regions, out=regions)
    dist = edt.edt(regions, anisotropy=voxel, black_border=False)
    for z in range(0, dist.shape[0], 16):  # in slabs: no full-size temporary
        np.negative(dist[z:z + 16], out=dist[z:z + 16], where=regions[z:z + 16] == 2)
    return dist.astype(np.float32, copy=False)


def parabolic_minimum(f: np.ndarray, spacing: float) -> np.ndarray:
    """``d[z] = min_k f[k] + (spacing (z - k))**2`` along axis 0, for every column at once.

    The 1D squared distance transform of a sampled function (Felzenszwalb and Huttenlocher,
    Theory of Computing 8:415, 2012): the lower envelope of the parabolas rooted at
    ``(k, f[k])``, found for all columns together with numpy. Along the last axis of a
    volume this turns per-plane squared distances into 3D ones, exactly.

    Parameters
    ----------
    f
        ``(n, columns)`` values; ``inf`` where a column has no point at that position.
    spacing
        Distance between neighbouring positions (µm).

    Returns
    -------
    numpy.ndarray
        float64 ``(n, columns)``; ``inf`` for columns without any finite value.

    Examples
    --------
    >>> parabolic_minimum(np.array([[np.inf], [0.0], [np.inf], [np.inf]]), 2.0)[:, 0]
    array([ 4.,  0.,  4., 16.])
    """
    f = np.asarray(f, dtype=np.float64)
    n, columns = f.shape
    missing = ~np.isfinite(f).any(axis=0)
    finite = np.where(np.isfinite(f), f, _FAR)  # far, but arithmetic stays finite
    s2 = float(spacing) ** 2
    lifted = finite + s2 * np.arange(n, dtype=np.float64)[:, None] ** 2  # f[k] + s2 k^2
    apex = np.zeros((n, columns), np.int64)  # positions of the envelope's parabolas
    bound = np.empty((n + 1, columns))  # where each of them starts to be the lowest
    bound[0], bound[1] = -np.inf, np.inf
    top = np.zeros(columns, np.int64)  # index of the last parabola of each envelope
    everyone = np.arange(columns)
    for q in range(1, n):
        todo = everyone
        while todo.size:
            k = apex[top[todo], todo]
            cross = (lifted[q, todo] - lifted[k, todo]) / (2 * s2 * (q - k))
            beaten = cross <= bound[top[todo], todo]
            done, cross_done = todo[~beaten], cross[~beaten]
            top[done] += 1
            apex[top[done], done] = q
            bound[top[done], done] = cross_done
            bound[top[done] + 1, done] = np.inf
            todo = todo[beaten]
            top[todo] -= 1
    out = np.empty((n, columns))
    top[:] = 0
    for q in range(n):
        while True:
            ahead = bound[top + 1, everyone] < q
            if not ahead.any():
                break
            top[ahead] += 1
        k = apex[top, everyone]
        out[q] = s2 * (q - k) ** 2 + finite[k, everyone]
    out[:, missing] = np.inf
    return out


_FAR = 1e30
"""Stands for infinity inside :func:`parabolic_minimum`."""


def signed_distance_out_of_core(
    foreground: Any, voxel_size: VoxelSize, out: Any, *, memory_budget: int, scratch: Any,
) -> None:
    """:func:`signed_distance_um` of an on-disk foreground into an on-disk array, in bounded memory.

    Separable, in two passes whose slabs are sized from ``memory_budget`` (bytes): the
    squared distance in each z-plane to the nearest voxel of the other region (``edt``, in
    slabs of z-planes, into ``scratch``), then along z for blocks of y-rows
    (:func:`parabolic_minimum`), each voxel taking the nearest voxel outside (inside) the
    organism in any plane. Exact: the same distances as :func:`signed_distance_um`.

    Parameters
    ----------
    foreground
        Organism mask (Z, Y, X), any array with slicing (zarr, numpy); nonzero inside.
    voxel_size
        µm (z, y, x).
    out
        float32 array of the foreground's shape for the signed distance in µm.
    memory_budget
        Bytes the two passes may hold at a time.
    scratch
        float32 array of the same shape for the per-plane distances (e.g. a temporary
        zarr array chunked by :func:`out_of_core_blocks`).
    """
    voxel = check_voxel_size(voxel_size)
    shape = tuple(int(s) for s in foreground.shape)
    planes, rows = out_of_core_blocks(shape, memory_budget)
    any_inside = any_outside = False
    for z0 in range(0, shape[0], planes):
        inside = np.asarray(foreground[z0:z0 + planes]) != 0
        any_inside, any_outside = any_inside or inside.any(), any_outside or not inside.all()
        regions = np.ascontiguousarray(2 - inside.view(np.uint8))
        scratch[z0:z0 + planes] = np.stack([edt.edtsq(plane, anisotropy=voxel[1:], black_border=False)
                                            for plane in regions]).astype(np.float32)
    if not any_inside:
        raise CellsynthError("the organism foreground is empty; check the foreground mask")
    release_free_memory()
    for y0 in range(0, shape[1], rows):
        block = np.asarray(scratch[:, y0:y0 + rows])
        inside = np.asarray(foreground[:, y0:y0 + rows]) != 0
        columns = (shape[0], -1)
        dist = np.sqrt(parabolic_minimum(np.where(inside, block, 0.0).reshape(columns), voxel[0]),
                       dtype=np.float32).reshape(block.shape)  # to the nearest voxel outside
        to_inside = parabolic_minimum(np.where(inside, 0.0, block).reshape(columns), voxel[0]).reshape(block.shape)
        np.negative(np.sqrt(to_inside, dtype=np.float32), out=dist, where=~inside)
        del to_inside
        if not any_outside:
            dist[...] = np.inf
        out[:, y0:y0 + rows] = dist
    release_free_memory()


OUT_OF_CORE_BYTES_PER_VOXEL = (16, 80)
"""Bytes per voxel of a slab of :func:`signed_distance_out_of_core`: its per-plane pass (mask,
labels, float32 distances and their stack) and its pass along z (float64 values, envelope
positions and bounds, the two transforms and the result)."""


def out_of_core_blocks(shape: tuple[int, int, int], memory_budget: int) -> tuple[int, int]:
    """Slab heights of :func:`signed_distance_out_of_core` within ``memory_budget`` bytes: z-planes
    per slab of the first pass, y-rows per block of the second (at least one each).

    Examples
    --------
    >>> out_of_core_blocks((256, 1024, 1024), 2**30)
    (64, 51)
    """
    per_plane, per_row = (OUT_OF_CORE_BYTES_PER_VOXEL[0] * shape[1] * shape[2],
                          OUT_OF_CORE_BYTES_PER_VOXEL[1] * shape[0] * shape[2])
    return max(1, min(shape[0], memory_budget // per_plane)), max(1, min(shape[1], memory_budget // per_row))


def positional_map(
    foreground: np.ndarray, voxel_size: VoxelSize, alpha: float = 100.0, beta: float = 100.0,
) -> np.ndarray:
    """Eq. 1: ``tanh(dist/alpha)`` inside the organism and ``tanh(-dist/beta)`` outside.

    Parameters
    ----------
    foreground
        Organism mask, (Z, Y, X).
    voxel_size
        Voxel size in µm (z, y, x).
    alpha, beta
        Decay lengths in µm inside and outside (paper default 100).

    Returns
    -------
    numpy.ndarray
        float32 map in (-1, 1): positive inside, negative outside.

    Examples
    --------
    >>> fg = np.zeros((1, 1, 9), np.uint8); fg[..., 2:7] = 1
    >>> print(positional_map(fg, (1, 1, 1), alpha=1, beta=1).round(2)[0, 0])
    [-0.96 -0.76  0.76  0.96  1.    0.96  0.76 -0.76 -0.96]
    """
    return positional_map_from_distance(signed_distance_um(foreground, voxel_size), alpha, beta)


def positional_map_from_distance(dist_um: np.ndarray, alpha: float = 100.0, beta: float = 100.0) -> np.ndarray:
    """Eq. 1 applied to a signed distance in µm (see :func:`signed_distance_um`).

    Works on any part of the distance map, so large volumes can be converted slab by slab.
    """
    for name, value in (("alpha", alpha), ("beta", beta)):
        if not (np.isfinite(value) and value > 0):
            raise CellsynthError(f"{name} must be a positive length in µm, got {value}")
    dist = np.asarray(dist_um, dtype=np.float32)
    out = np.where(dist > 0, np.float32(1 / alpha), np.float32(1 / beta))
    np.multiply(out, dist, out=out)
    return np.tanh(out, out=out)


def cell_spacing_um(labels: np.ndarray, voxel_size: VoxelSize) -> float:
    """Median distance in µm from each labelled cell's centroid to the nearest other centroid.

    Raises
    ------
    CellsynthError
        With fewer than two cells.

    Examples
    --------
    >>> labels = np.zeros((1, 1, 12), np.uint16); labels[0, 0, [1, 5, 11]] = [1, 2, 3]
    >>> cell_spacing_um(labels, (1.0, 1.0, 0.5))
    2.0
    """
    from scipy.spatial import cKDTree

    voxel = np.asarray(check_voxel_size(voxel_size))
    flat = np.asarray(labels).ravel()
    index = np.flatnonzero(flat)
    ids = flat[index].astype(np.int64)
    counts = np.bincount(ids)
    present = counts > 0
    if present.sum() < 2:
        raise CellsynthError("the labels hold fewer than two cells; give the organism foreground explicitly")
    coords = np.unravel_index(index, np.shape(labels))
    centroids = np.stack([np.bincount(ids, weights=c * v)[present] / counts[present]
                          for c, v in zip(coords, voxel)], axis=1)
    distances, _ = cKDTree(centroids).query(centroids, k=2)
    return float(np.median(distances[:, 1]))


ORGANISM_CLOSING_SPACINGS = 2.0
"""Default closing radius of :func:`organism_from_labels`, in median cell spacings."""


def organism_from_labels(labels: np.ndarray, voxel_size: VoxelSize, closing_um: float | None = None) -> np.ndarray:
    """The organism region of instance labels: the cells, closed across the gaps between them.

    A morphological closing with a ball of radius ``closing_um`` (µm) fills the gaps
    between neighbouring cells (up to about twice the radius), then enclosed holes are
    filled and the largest connected region is kept. The volume border is treated as
    unknown: the labels are mirrored across it before the closing, so a crop taken inside
    a tissue comes out as the whole volume (like a simulated ``box`` organism) instead of
    losing the cell-free corners at its border.

    Parameters
    ----------
    labels
        Instance labels (Z, Y, X), 0 = background.
    voxel_size
        Voxel size in µm (z, y, x).
    closing_um
        Closing radius in µm; by default :data:`ORGANISM_CLOSING_SPACINGS` times the median
        nearest-neighbour distance between cell centroids (:func:`cell_spacing_um`), so
        sparse nuclei and dense membranes both close into one tissue. A single cell is its
        own organism.

    Returns
    -------
    numpy.ndarray
        uint8 mask (0/1) of the labels' shape.

    Examples
    --------
    >>> labels = np.zeros((6, 30, 30), np.uint16)
    >>> labels[2:4, 5:9, 5:9], labels[2:4, 5:9, 20:24] = 1, 2
    >>> organism = organism_from_labels(labels, (1.0, 1.0, 1.0))
    >>> bool(organism[3, 7, 14]), bool(organism[3, 25, 14])  # between the cells / far from them
    (True, False)
    """
    voxel = np.asarray(check_voxel_size(voxel_size))
    cells = np.asarray(labels) != 0
    if not cells.any():
        raise CellsynthError("the labels are empty; there is no organism to render")
    if cells.all():
        return np.ones(cells.shape, np.uint8)
    if closing_um is None:
        if len(np.unique(np.asarray(labels)[cells])) < 2:
            return ndimage.binary_fill_holes(cells).astype(np.uint8)
        closing_um = ORGANISM_CLOSING_SPACINGS * cell_spacing_um(labels, voxel)
    if not (np.isfinite(closing_um) and closing_um > 0):
        raise CellsynthError(f"the organism closing must be a positive length in µm, got {closing_um}")
    radius = np.ceil(closing_um / voxel).astype(int) + 1
    mirror = np.minimum(radius, np.array(cells.shape) - 1)  # np.pad reflects at most shape - 1 voxels
    padded = np.pad(cells, [(m, m) for m in mirror], mode="reflect")
    padded = np.pad(padded, [(r - m, r - m) for r, m in zip(radius, mirror)])
    # closing with a ball of radius closing_um via two distance transforms (fast for large radii)
    dilated = edt.edt(np.ascontiguousarray(~padded), anisotropy=tuple(voxel), black_border=False) <= closing_um
    closed = edt.edt(np.ascontiguousarray(dilated), anisotropy=tuple(voxel), black_border=False) > closing_um
    closed = ndimage.binary_fill_holes(closed[tuple(slice(r, r + s) for r, s in zip(radius, cells.shape))] | cells)
    regions, n = ndimage.label(closed)
    if n > 1:
        closed = regions == (np.argmax(np.bincount(regions.ravel())[1:]) + 1)
    return closed.astype(np.uint8)


def foreground_from_image(
    image: np.ndarray, voxel_size: VoxelSize, smoothing_um: float = 2.0, closing_um: float = 3.0,
) -> np.ndarray:
    """Estimate the organism region of a real image.

    Gaussian smoothing (sigma in µm), an Otsu threshold, a morphological closing with an
    ellipsoidal element of radius ``closing_um``, hole filling, and the largest connected
    component. For images without labels (automatic annotation); where labels exist, the
    organism is :func:`organism_from_labels`.

    Returns
    -------
    numpy.ndarray
        uint8 mask (0/1) of the image's shape.
    """
    from skimage.filters import threshold_otsu

    voxel = np.asarray(check_voxel_size(voxel_size))
    image = np.asarray(image, dtype=np.float32)
    if not np.isfinite(image).all():
        raise CellsynthError("the image contains NaN or infinite values")
    if image.max() == image.min():
        raise CellsynthError("the image is constant; there is no organism to find")
    smooth = ndimage.gaussian_filter(image, sigma=smoothing_um / voxel)
    try:
        mask = smooth > threshold_otsu(smooth)
    except ValueError:  # skimage cannot make its histogram of an image of almost no contrast
        raise CellsynthError("the image has almost no contrast after smoothing; there is no organism to find "
                             "(check that the right image or channel was given)") from None
    if closing_um > 0:
        # closing with a ball of radius closing_um (µm) via two distance transforms: much faster
        # than ndimage.binary_closing with a large anisotropic structuring element
        radius = np.ceil(closing_um / voxel).astype(int) + 1
        padded = np.pad(mask, radius[:, None])
        dilated = edt.edt(np.ascontiguousarray(~padded), anisotropy=tuple(voxel), black_border=False) <= closing_um
        mask = edt.edt(np.ascontiguousarray(dilated), anisotropy=tuple(voxel), black_border=False) > closing_um
        mask = mask[tuple(slice(r, r + s) for r, s in zip(radius, image.shape))]
    mask = ndimage.binary_fill_holes(mask)
    labels, n = ndimage.label(mask)
    if n > 1:
        mask = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)
    return mask.astype(np.uint8)
