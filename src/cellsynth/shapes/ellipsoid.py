"""Voxelised ellipsoids with semi-axes in µm and a rotation.

A point ``p`` (µm, (z, y, x)) lies inside when its canonical coordinates
``q = R^T (p - c)`` satisfy ``sum_k (q_k / a_k)**2 <= 1``, with centre ``c``, semi-axes
``a`` (along the canonical z, y, x axes) and rotation ``R`` (3x3, acting on (z, y, x)
vectors; the same convention as :mod:`cellsynth.shapes.harmonics`). Voxel ``(k, j, i)`` has
its centre at ``(k vz, j vy, i vx)`` µm.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cellsynth.errors import CellsynthError
from cellsynth.io import VoxelSize, check_voxel_size

_SLAB_VOXELS = 1 << 21
"""Voxels evaluated at once (bounds the memory of large ellipsoids)."""


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix drawn uniformly from SO(3) (Haar measure)."""
    from scipy.spatial.transform import Rotation

    return Rotation.random(random_state=rng).as_matrix()


def ellipsoid_mask(
    shape: Sequence[int], voxel_size: VoxelSize, semi_axes_um: Sequence[float],
    center_um: Sequence[float] | None = None, rotation: np.ndarray | None = None,
) -> np.ndarray:
    """Voxelise an ellipsoid: the voxels whose centres lie inside it.

    Only the voxels of its bounding box are evaluated.

    Parameters
    ----------
    shape
        Volume shape (Z, Y, X).
    voxel_size
        Voxel size in µm (z, y, x).
    semi_axes_um
        Semi-axes in µm along the canonical (z, y, x) axes.
    center_um
        Centre in µm (z, y, x); default the centre of the volume.
    rotation
        Orthonormal 3x3 matrix; None for axis-aligned.

    Returns
    -------
    numpy.ndarray
        uint8 mask (0/1) of ``shape``.

    Examples
    --------
    >>> ellipsoid_mask((1, 1, 7), (1, 1, 1), (1, 1, 2))[0, 0]
    array([0, 1, 1, 1, 1, 1, 0], dtype=uint8)
    """
    voxel = np.asarray(check_voxel_size(voxel_size))
    shape = tuple(int(s) for s in shape)
    axes = np.asarray(semi_axes_um, dtype=np.float64)
    if axes.shape != (3,) or not np.all(np.isfinite(axes) & (axes > 0)):
        raise CellsynthError(f"ellipsoid semi-axes must be three positive lengths in µm (z y x), got {semi_axes_um!r}")
    rot = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)
    if rot.shape != (3, 3) or not np.allclose(rot @ rot.T, np.eye(3), atol=1e-6):
        raise CellsynthError("ellipsoid rotation must be an orthonormal 3x3 matrix acting on (z, y, x) vectors")
    center = (np.array(shape) - 1) * voxel / 2.0 if center_um is None else np.asarray(center_um, dtype=np.float64)
    out = np.zeros(shape, dtype=np.uint8)
    # half-size of the bounding box per world axis, scaled so that huge semi-axes do not overflow
    largest = axes.max()
    extent = largest * np.sqrt(((rot * (axes / largest)[None, :]) ** 2).sum(axis=1))
    bound = np.asarray(shape) + 1.0  # clip in voxels before converting to int
    lo = np.floor(np.clip((center - extent) / voxel, -1.0, bound)).astype(int).clip(0, None)
    hi = np.minimum(np.ceil(np.clip((center + extent) / voxel, -1.0, bound)).astype(int) + 1, shape)
    if np.any(hi <= lo):
        return out
    # d^T Q d <= 1 with Q = R diag(1/a^2) R^T, written as A(z, y) + dx (B(z, y) + Q_xx dx), slab by slab.
    quad = rot @ np.diag(1.0 / axes**2) @ rot.T
    dz, dy, dx = [(np.arange(a, b) * v - c) for a, b, v, c in zip(lo, hi, voxel, center)]
    dz, dy = dz[:, None], dy[None, :]
    a_zy = quad[0, 0] * dz**2 + quad[1, 1] * dy**2 + 2 * quad[0, 1] * dz * dy
    b_zy = 2 * (quad[0, 2] * dz + quad[1, 2] * dy)
    slab = max(1, _SLAB_VOXELS // (dy.size * dx.size))
    for z0 in range(0, dz.size, slab):
        z1 = min(z0 + slab, dz.size)
        total = dx * (b_zy[z0:z1, :, None] + quad[2, 2] * dx) + a_zy[z0:z1, :, None]
        out[lo[0] + z0 : lo[0] + z1, lo[1] : hi[1], lo[2] : hi[2]] = total <= 1.0
    return out
