"""The organism: the foreground region that cells fill (first stage of the simulation).

Shapes (``spec`` of :func:`make_organism`):

- ``"box"``: the whole volume;
- ``"ellipsoid"``: semi-axes in µm and a rotation (:mod:`cellsynth.shapes.ellipsoid`);
- ``"sh"``: a smooth random embryo-like blob, a spherical-harmonics shape
  (:mod:`cellsynth.shapes.harmonics`) stretched to the semi-axes;
- a path to a mask or label file (TIFF, HDF5 ``label`` dataset, OME-Zarr, ``.npy``):
  nonzero is inside;
- a path to a statistical shape model ``.npz`` (:mod:`cellsynth.shapes.shape_model`): one
  new shape is drawn from it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cellsynth.errors import CellsynthError
from cellsynth.io import VoxelSize, check_voxel_size, read_labels
from cellsynth.shapes.ellipsoid import ellipsoid_mask, random_rotation
from cellsynth.shapes.harmonics import radius_at, random_coefficients, sphere_quadrature, voxelize_sh
from cellsynth.shapes.shape_model import ShapeModel

SHAPES = ("box", "ellipsoid", "sh")
"""The built-in organism shapes; any other spec is a file path."""

DEFAULT_FILL = 0.45
"""Default semi-axes as a fraction of the volume's extent along each axis."""

DEFAULT_SH_ORDER = 6
"""Default SH order of ``"sh"`` organisms (low: smooth, embryo-like)."""

DEFAULT_SH_SMOOTHNESS = 6.0
"""Default smoothness gamma (power law) of ``"sh"`` organisms."""

_SLAB_VOXELS = 1 << 20
"""Voxels per slab when voxelising an SH organism (bounds its memory)."""

_MAX_VOXELS = 4 * 1024**3
"""Volumes beyond this many voxels are refused as absurd (16 GiB of uint32 labels)."""


def check_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    """Validate a volume shape (Z, Y, X) and return it as ints."""
    try:
        values = tuple(int(s) for s in shape)
        exact = all(float(s) == int(s) for s in shape)
    except (TypeError, ValueError):
        raise CellsynthError(f"shape must be three whole numbers (Z Y X), got {shape!r}") from None
    if len(values) != 3 or not exact or min(values) < 1:
        raise CellsynthError(f"shape must be three positive whole numbers (Z Y X), got {shape!r}")
    if np.prod(values, dtype=np.float64) > _MAX_VOXELS:
        raise CellsynthError(f"shape {values} has more than {_MAX_VOXELS} voxels; choose a smaller volume")
    return values  # type: ignore[return-value]


def make_organism(
    spec: str | os.PathLike, shape: Sequence[int], voxel_size: VoxelSize, rng: np.random.Generator, *,
    semi_axes_um: Sequence[float] | None = None, center_um: Sequence[float] | None = None,
    rotation: str | np.ndarray | None = None, sh_order: int = DEFAULT_SH_ORDER,
    smoothness: float = DEFAULT_SH_SMOOTHNESS, n_modes: int | None = None,
) -> np.ndarray:
    """Make the organism foreground.

    Parameters
    ----------
    spec
        ``"box"``, ``"ellipsoid"``, ``"sh"``, a mask/label file or a shape model ``.npz``.
    shape
        Volume shape (Z, Y, X).
    voxel_size
        Voxel size in µm (z, y, x).
    rng
        Random generator (SH coefficients, random rotations, shape model weights).
    semi_axes_um
        Ellipsoid semi-axes, or the largest radius of the SH blob along each axis, in µm
        (z, y, x); default :data:`DEFAULT_FILL` of the volume's extent.
    center_um
        Centre in µm; default the centre of the volume.
    rotation
        None, ``"random"`` (uniform) or a 3x3 matrix acting on (z, y, x) vectors
        (ellipsoid, sh and shape model).
    sh_order, smoothness
        Order and smoothness (gamma, power law) of the SH blob.
    n_modes
        Shape model modes to vary (default all).

    Returns
    -------
    numpy.ndarray
        uint8 mask (0/1) of ``shape``.

    Raises
    ------
    CellsynthError
        For an unknown spec, a file that does not fit, or an empty organism.

    Examples
    --------
    >>> make_organism("ellipsoid", (20, 40, 40), (1, 1, 1), np.random.default_rng(0)).sum() > 0
    np.True_
    """
    shape = check_shape(shape)
    voxel = np.asarray(check_voxel_size(voxel_size))
    extent = np.array(shape) * voxel
    axes = DEFAULT_FILL * extent if semi_axes_um is None else np.asarray(semi_axes_um, dtype=np.float64)
    rot = random_rotation(rng) if isinstance(rotation, str) and rotation == "random" else rotation
    if isinstance(rot, str):
        raise CellsynthError(f"unknown rotation {rotation!r}; use 'random' or a 3x3 matrix")
    spec_name = str(spec)
    if spec_name == "box":
        mask = np.ones(shape, dtype=np.uint8)
    elif spec_name == "ellipsoid":
        mask = ellipsoid_mask(shape, voxel, axes, center_um, rot)
    elif spec_name == "sh":
        mask = _sh_blob(shape, voxel, axes, center_um, rot, sh_order, smoothness, rng)
    elif Path(spec_name).suffix.lower() == ".npz":
        mask = ShapeModel.load(spec_name).sample(shape, voxel, rng, n_modes=n_modes, center_um=center_um, rotation=rot)
    elif Path(spec_name).exists() or os.sep in spec_name or "." in Path(spec_name).name:
        mask = _mask_from_file(Path(spec_name), shape, voxel)
    else:
        raise CellsynthError(
            f"unknown organism {spec_name!r}; use {', '.join(SHAPES)}, a mask file or a shape model .npz")
    if not mask.any():
        raise CellsynthError(f"the organism {spec_name!r} is empty in a {shape} volume; "
                             "enlarge it, move its centre into the volume or use another shape")
    return mask


def _sh_blob(
    shape: tuple[int, int, int], voxel: np.ndarray, axes: np.ndarray, center_um: Sequence[float] | None,
    rotation: np.ndarray | None, sh_order: int, smoothness: float, rng: np.random.Generator,
) -> np.ndarray:
    """A random SH shape scaled so that its largest radius along each axis is ``axes``."""
    axes = np.asarray(axes, dtype=np.float64)
    if axes.shape != (3,) or not np.all(np.isfinite(axes) & (axes > 0)):
        raise CellsynthError(f"organism semi-axes must be three positive lengths in µm (z y x), got {axes.tolist()}")
    coeffs = random_coefficients(sh_order, 1.0, smoothness, rng)
    theta, phi, _ = sphere_quadrature(max(2 * sh_order + 2, 16))
    # In µm with the largest semi-axis as unit stretch, so voxelize_sh sizes its grid to the voxels.
    largest = float(axes.max())
    coeffs = coeffs * (largest / radius_at(coeffs, theta, phi).max())
    center = (np.array(shape) - 1) * voxel / 2.0 if center_um is None else np.asarray(center_um, dtype=np.float64)
    mask = np.zeros(shape, dtype=np.uint8)
    slab = max(1, _SLAB_VOXELS // (shape[1] * shape[2]))
    for z0 in range(0, shape[0], slab):  # slab by slab: bounded memory for large organisms
        part = (min(slab, shape[0] - z0), shape[1], shape[2])
        shifted = center - np.array([z0 * voxel[0], 0.0, 0.0])
        box, inside = voxelize_sh(coeffs, shifted, tuple(voxel), part, scale=axes / largest, rotation=rotation)
        mask[z0 : z0 + part[0]][box] = inside
    return mask


def _mask_from_file(path: Path, shape: tuple[int, int, int], voxel: np.ndarray) -> np.ndarray:
    """Nonzero voxels of a mask or label file, checked against the requested grid."""
    array: Any
    array, file_voxel = read_labels(path)
    if tuple(array.shape) != shape:
        raise CellsynthError(f"organism mask {path} has shape {tuple(array.shape)} but the volume is {shape}; "
                             f"pass --shape {' '.join(map(str, array.shape))}")
    if file_voxel is not None and not np.allclose(file_voxel, voxel, rtol=1e-3):
        recorded = " ".join(f"{v:g}" for v in file_voxel)
        raise CellsynthError(f"organism mask {path} has voxel size {recorded} µm but {' '.join(f'{v:g}' for v in voxel)} "
                             f"was requested; pass --voxel-size {recorded}")
    return (np.asarray(array) != 0).astype(np.uint8)
