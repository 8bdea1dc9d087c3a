"""A fixed filter bank of patch statistics in physical units, and the KID between two sets.

The feature extractor of the unpaired realism benchmark (:mod:`cellsynth.evaluate.realism`).
It needs no network and no download. For each random patch of a volume (a box of a fixed
size in µm) and each Gaussian scale sigma in :data:`SCALES_UM`, it takes six responses of
the image smoothed by a Gaussian of sigma µm (per axis ``sigma / voxel`` voxels):

1. the smoothed intensity ``G``;
2. the gradient magnitude ``sigma |grad G|``;
3. the Laplacian of Gaussian ``sigma^2 trace(H)``;
4. -6. the three eigenvalues of the Hessian ``sigma^2 H`` (ascending).

Derivatives are central differences in µm, multiplied by ``sigma`` (first order) or
``sigma^2`` (second order), so every response is in units of (normalized) intensity and
means the same at any voxel size (Lindeberg's scale normalization). Per patch the mean and
the standard deviation of each response are kept: ``3 scales x 6 responses x 2 = 36``
features (:data:`FEATURE_NAMES`).

:func:`kid` is the unbiased squared MMD with the cubic polynomial kernel of KID
(Binkowski et al., ICLR 2018) on features standardized by a reference set (the real
patches), so that each feature counts in units of its real patch-to-patch spread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from cellsynth.errors import CellsynthError
from cellsynth.evaluate.metrics import kid_from_features
from cellsynth.io import VoxelSize, check_voxel_size

SCALES_UM: tuple[float, ...] = (0.3, 0.6, 1.2)
"""Gaussian scales (µm) of the filter bank: walls and texture, nuclei edges, cells."""

RESPONSES: tuple[str, ...] = ("gauss", "gradient", "log", "hessian1", "hessian2", "hessian3")
"""The six responses per scale, in feature order."""

FEATURE_NAMES: tuple[str, ...] = tuple(f"{r}_{stat}@{s:g}um" for s in SCALES_UM for r in RESPONSES
                                       for stat in ("mean", "sd"))
"""Names of the 36 features, in column order."""

POINTS_PER_PATCH = 1024
"""Voxels per patch at which the responses are evaluated (their mean and sd per patch)."""

SD_FLOOR = 1e-3
"""Smallest feature spread (normalized intensity) used for standardization: a feature that is
constant over the reference patches does not blow up tiny differences."""


def symmetric_eigenvalues(h: np.ndarray) -> np.ndarray:
    """Eigenvalues (ascending) of many symmetric 3x3 matrices, in closed form.

    Parameters
    ----------
    h
        ``(..., 6)`` array of the upper triangles ``(xx, yy, zz, xy, xz, yz)``, or
        ``(..., 3, 3)`` symmetric matrices.

    Returns
    -------
    numpy.ndarray
        ``(..., 3)`` eigenvalues, ascending (the trigonometric solution of the cubic,
        Smith 1961); agrees with :func:`numpy.linalg.eigvalsh` to rounding.

    Examples
    --------
    >>> symmetric_eigenvalues(np.diag([3.0, 1.0, 2.0]))
    array([1., 2., 3.])
    """
    h = np.asarray(h, dtype=np.float64)
    if h.shape[-2:] == (3, 3):
        h = np.stack([h[..., 0, 0], h[..., 1, 1], h[..., 2, 2], h[..., 0, 1], h[..., 0, 2], h[..., 1, 2]], axis=-1)
    a, b, c, d, e, f = np.moveaxis(h, -1, 0)
    q = (a + b + c) / 3.0
    off = d * d + e * e + f * f
    p2 = (a - q) ** 2 + (b - q) ** 2 + (c - q) ** 2 + 2.0 * off
    p = np.sqrt(p2 / 6.0)
    safe = np.where(p > 0, p, 1.0)
    ba, bb, bc = (a - q) / safe, (b - q) / safe, (c - q) / safe
    bd, be, bf = d / safe, e / safe, f / safe
    det = ba * (bb * bc - bf * bf) - bd * (bd * bc - bf * be) + be * (bd * bf - bb * be)
    phi = np.arccos(np.clip(det / 2.0, -1.0, 1.0)) / 3.0
    high = q + 2.0 * p * np.cos(phi)
    low = q + 2.0 * p * np.cos(phi + 2.0 * np.pi / 3.0)
    mid = 3.0 * q - high - low
    return np.stack([low, mid, high], axis=-1)


def patch_corners(shape: Sequence[int], patch: Sequence[int], count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random patch corners (voxels), uniform over the positions where the patch fits."""
    span = np.asarray(shape) - np.asarray(patch) + 1
    if np.any(span < 1):
        raise CellsynthError(f"a patch of {tuple(patch)} voxels does not fit in a volume of {tuple(shape)}")
    return np.stack([rng.integers(0, s, count) for s in span], axis=1)


def patch_voxels(patch_um: Sequence[float], voxel_size: VoxelSize) -> tuple[int, int, int]:
    """Patch size in voxels (at least 3 per axis) of a box of ``patch_um`` µm."""
    voxel = check_voxel_size(voxel_size)
    return tuple(max(3, round(p / v)) for p, v in zip(patch_um, voxel))  # type: ignore[return-value]


def filter_bank_features(image: np.ndarray, voxel_size: VoxelSize, corners: np.ndarray,
                         patch: Sequence[int], scales_um: Sequence[float] = SCALES_UM, *,
                         points: int = POINTS_PER_PATCH, seed: int = 0) -> np.ndarray:
    """The filter-bank statistics of patches of one (normalized) volume.

    The volume is smoothed once per scale; the responses are evaluated at ``points``
    random voxels of each patch (central differences: 3-point second derivatives, 4-point
    mixed ones) and their mean and standard deviation kept.

    Parameters
    ----------
    image
        A volume (Z, Y, X), already normalized (e.g. by its 1st and 99.9th percentiles).
    voxel_size
        Voxel size in µm (z, y, x).
    corners
        ``(n, 3)`` patch corners in voxels (:func:`patch_corners`).
    patch
        Patch size in voxels (z, y, x).
    scales_um
        Gaussian scales in µm.
    points
        Voxels sampled per patch (all of them where the patch is smaller).
    seed
        Seed of the sampled voxels.

    Returns
    -------
    numpy.ndarray
        ``(n, 12 * len(scales_um))`` float64 features, columns as :data:`FEATURE_NAMES`.
    """
    voxel = np.asarray(check_voxel_size(voxel_size))
    image = np.asarray(image, dtype=np.float32)
    patch = np.asarray([int(p) for p in patch])
    corners = np.asarray(corners, dtype=np.int64).reshape(-1, 3)
    n = len(corners)
    volume = int(np.prod(patch))
    rng = np.random.default_rng(seed)
    if volume <= points:
        offsets = np.stack(np.unravel_index(np.arange(volume), patch), axis=1)[None].repeat(n, axis=0)
    else:
        offsets = np.stack(np.unravel_index(rng.integers(0, volume, (n, points)), patch), axis=-1)
    z, y, x = np.moveaxis(corners[:, None, :] + offsets + 1, -1, 0)  # +1: the padding below
    columns = []
    for sigma in scales_um:
        smooth = ndimage.gaussian_filter(image, sigma / voxel, mode="reflect", truncate=3.0)
        s = np.pad(smooth, 1, mode="reflect").astype(np.float64)
        vz, vy, vx = voxel
        c = s[z, y, x]
        gz = (s[z + 1, y, x] - s[z - 1, y, x]) / (2 * vz)
        gy = (s[z, y + 1, x] - s[z, y - 1, x]) / (2 * vy)
        gx = (s[z, y, x + 1] - s[z, y, x - 1]) / (2 * vx)
        hzz = (s[z + 1, y, x] - 2 * c + s[z - 1, y, x]) / vz**2
        hyy = (s[z, y + 1, x] - 2 * c + s[z, y - 1, x]) / vy**2
        hxx = (s[z, y, x + 1] - 2 * c + s[z, y, x - 1]) / vx**2
        hzy = (s[z + 1, y + 1, x] - s[z + 1, y - 1, x] - s[z - 1, y + 1, x] + s[z - 1, y - 1, x]) / (4 * vz * vy)
        hzx = (s[z + 1, y, x + 1] - s[z + 1, y, x - 1] - s[z - 1, y, x + 1] + s[z - 1, y, x - 1]) / (4 * vz * vx)
        hyx = (s[z, y + 1, x + 1] - s[z, y + 1, x - 1] - s[z, y - 1, x + 1] + s[z, y - 1, x - 1]) / (4 * vy * vx)
        eig = symmetric_eigenvalues(np.stack([hzz, hyy, hxx, hzy, hzx, hyx], axis=-1)) * sigma**2
        responses = (c, np.sqrt(gz * gz + gy * gy + gx * gx) * sigma, (hzz + hyy + hxx) * sigma**2,
                     eig[..., 0], eig[..., 1], eig[..., 2])
        columns += [v for r in responses for v in (r.mean(axis=1), r.std(axis=1))]
    return np.stack(columns, axis=1)


def standardizer(reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread (floored at :data:`SD_FLOOR`) of reference features, per column."""
    reference = np.asarray(reference, dtype=np.float64)
    return reference.mean(axis=0), np.maximum(reference.std(axis=0), SD_FLOOR)


def kid(a: np.ndarray, b: np.ndarray, scale: tuple[np.ndarray, np.ndarray] | None = None) -> float:
    """Kernel inception distance: unbiased squared MMD with ``k(x, y) = (x . y / d + 1)^3``.

    Parameters
    ----------
    a, b
        ``(m, d)`` and ``(n, d)`` feature sets (m, n >= 2).
    scale
        ``(mean, sd)`` to standardize both sets with (:func:`standardizer`), or None.

    Returns
    -------
    float
        About 0 for two samples of one distribution (it may be slightly negative: the
        estimator is unbiased); larger is more different.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(200, 4))
    >>> abs(kid(x[:100], x[100:])) < 0.1
    True
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise CellsynthError(f"the feature sets must be (n, d) arrays of one width, got {a.shape} and {b.shape}")
    if scale is not None:
        a, b = (a - scale[0]) / scale[1], (b - scale[0]) / scale[1]
    return kid_from_features(a, b)


def describe() -> dict[str, Any]:
    """The filter bank's definition, for recording beside the scores."""
    return {"scales_um": list(SCALES_UM), "responses": list(RESPONSES), "statistics": ["mean", "sd"],
            "kernel": "(x.y/d + 1)^3 on features standardized by the real patches' mean and sd",
            "sd_floor": SD_FLOOR}
