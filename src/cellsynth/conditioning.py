"""Positional conditioning (Eq. 1 of Eschweiler et al. 2021) and the organism foreground.

The positional map tells the generator how deep each voxel lies in the specimen:

    f = tanh(dist / alpha)    inside the organism,
    f = tanh(-dist / beta)    outside,

where ``dist`` is the Euclidean distance to the organism surface in µm. Small ``alpha``
saturates quickly (the whole interior looks "deep", i.e. poor image quality); large
``alpha`` keeps the interior close to the surface value (good quality). The same
functions serve simulated samples and real training images, so alpha means the same for
both.
"""

from __future__ import annotations

import edt
import numpy as np
from scipy import ndimage

from cellsynth.errors import CellsynthError
from cellsynth.io import VoxelSize, check_voxel_size


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


def foreground_from_image(
    image: np.ndarray, voxel_size: VoxelSize, smoothing_um: float = 2.0, closing_um: float = 3.0,
) -> np.ndarray:
    """Estimate the organism region of a real image.

    Gaussian smoothing (sigma in µm), an Otsu threshold, a morphological closing with an
    ellipsoidal element of radius ``closing_um``, hole filling, and the largest connected
    component. Training data and synthesis use this same function.

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
