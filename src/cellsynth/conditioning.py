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

import edt
import numpy as np
from scipy import ndimage

from cellsynth.errors import CellsynthError
from cellsynth.io import VoxelSize, check_voxel_size

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
    mask = smooth > threshold_otsu(smooth)
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
