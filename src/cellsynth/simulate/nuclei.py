"""Nuclei as random spherical-harmonic shapes at given positions (Sec. 3.3 of the paper).

Each nucleus gets a mean radius ``r ~ N(radius_um, radius_std_um)``, random SH
coefficients of order ``sh_order`` and smoothness ``gamma`` (see
:mod:`cellsynth.shapes.harmonics`), and optionally an elongation along an orientation.
Nuclei are painted in order and never overwrite each other or leave the organism; of what
a nucleus can still occupy, only its largest face-connected piece is kept, so every label
is one connected piece and no two nuclei overlap. A nucleus left with no voxel is dropped
(a warning says how many) and labels stay consecutive, 1..N.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from cellsynth.errors import CellsynthError
from cellsynth.io import Sample, VoxelSize, check_voxel_size, label_dtype
from cellsynth.progress import progress_bar
from cellsynth.shapes.ellipsoid import random_rotation
from cellsynth.shapes.harmonics import LAWS, check_order, degree_power, random_coefficients, voxelize_sh
from cellsynth.simulate.positions import check_foreground, check_positions


def axis_rotation(axis: Sequence[float], roll: float = 0.0) -> np.ndarray:
    """A rotation matrix (acting on (z, y, x) vectors) whose first column is ``axis``.

    It maps the canonical long (z) axis of a shape onto ``axis``; ``roll`` (radians)
    turns the shape about that axis.
    """
    a = np.asarray(axis, dtype=np.float64)
    norm = np.linalg.norm(a)
    if a.shape != (3,) or not np.isfinite(norm) or norm == 0:
        raise CellsynthError(f"orientation must be a non-zero (z, y, x) vector, got {np.asarray(axis).tolist()}")
    a = a / norm
    helper = np.eye(3)[np.argmin(np.abs(a))]
    b = helper - a * (helper @ a)
    b /= np.linalg.norm(b)
    c = np.cross(a, b)
    b, c = np.cos(roll) * b + np.sin(roll) * c, -np.sin(roll) * b + np.cos(roll) * c
    return np.stack([a, b, c], axis=1)


def elongation_scale(elongation: float) -> np.ndarray:
    """Volume-preserving stretch ``(e**(2/3), e**(-1/3), e**(-1/3))`` along the long axis."""
    if not (np.isfinite(elongation) and elongation > 0):
        raise CellsynthError(f"elongation must be a positive ratio (1 = round), got {elongation!r}")
    return np.array([elongation ** (2 / 3), elongation ** (-1 / 3), elongation ** (-1 / 3)])


def check_nuclei_parameters(
    shape: Sequence[int], voxel_size: VoxelSize, *, radius_um: float, radius_std_um: float, smoothness: float,
    sh_order: int, law: str, elongation: float, orientation: Sequence[float] | None,
) -> int:
    """Check the nucleus parameters of :func:`simulate_nuclei` for a volume; return the SH order.

    Raises
    ------
    CellsynthError
        Naming the parameter and what to change.
    """
    voxel = np.asarray(check_voxel_size(voxel_size))
    extent = float((np.asarray(shape) * voxel).min())
    if not (isinstance(radius_um, (int, float, np.number)) and np.isfinite(radius_um) and radius_um > 0):
        raise CellsynthError(f"radius must be a positive length in µm, got {radius_um!r}")
    if 2 * radius_um > extent:
        raise CellsynthError(
            f"nuclei of radius {radius_um} µm do not fit in a volume {extent:g} µm thick; lower --radius or "
            "enlarge --shape"
        )
    if not (isinstance(radius_std_um, (int, float, np.number)) and np.isfinite(radius_std_um) and radius_std_um >= 0):
        raise CellsynthError(f"radius std must be a non-negative length in µm, got {radius_std_um!r}")
    if radius_std_um > extent:
        raise CellsynthError(f"a radius std of {radius_std_um:g} µm exceeds the volume ({extent:g} µm thick); give the "
                             "spread of the nucleus radius in µm, e.g. 1")
    order = check_order(sh_order)
    if law not in LAWS:
        raise CellsynthError(f"unknown coefficient law {law!r}; use one of {', '.join(LAWS)}")
    degree_power(order, smoothness, law)
    elongation_scale(elongation)
    if orientation is not None:
        axis_rotation(orientation)
    return order


def simulate_nuclei(
    foreground: np.ndarray,
    voxel_size: VoxelSize,
    centers_um: np.ndarray,
    rng: np.random.Generator,
    *,
    radius_um: float = 9.0,
    radius_std_um: float = 1.0,
    smoothness: float = 5.0,
    sh_order: int = 20,
    law: str = "power",
    elongation: float = 1.0,
    orientation: Sequence[float] | None = None,
    progress: bool | None = None,
) -> Sample:
    """Simulate SH nuclei at given centres inside an organism.

    Parameters
    ----------
    foreground
        Organism mask (Z, Y, X); nuclei are clipped to it.
    voxel_size
        Voxel size (z, y, x) in µm (anisotropic sizes are fine).
    centers_um
        (N, 3) nucleus centres (z, y, x) in µm; each must lie in the organism.
    rng
        Random generator.
    radius_um, radius_std_um
        Mean and standard deviation of the nuclei's mean radii (µm). Draws are clipped
        to at least a quarter of the mean.
    smoothness
        ``gamma`` of the coefficient law: larger is rounder (paper: 5).
    sh_order
        SH order ``l`` (paper: up to 20).
    law
        ``"power"`` (``l**-gamma``) or ``"exponential"``; see
        :func:`cellsynth.shapes.harmonics.random_coefficients`.
    elongation
        Ratio of the long axis to the short ones (1 = no elongation), volume preserving.
    orientation
        Long-axis direction (z, y, x) for all nuclei; ``None`` draws one per nucleus.
    progress
        Progress bar: None (default) on a terminal only, True always, False never.

    Returns
    -------
    cellsynth.io.Sample
        ``labels`` 1..N (uint16, uint32 above 65535), ``mask = labels > 0``, the
        ``foreground``, a ``positions`` table (label, z/y/x in µm and voxels,
        radius_um, smoothness, sh_order, elongation, volume_um3) and metadata.

    Examples
    --------
    >>> fg = np.ones((32, 32, 32), np.uint8)
    >>> s = simulate_nuclei(fg, (1, 1, 1), np.array([[16.0, 16, 16]]), np.random.default_rng(0),
    ...                     radius_um=6, sh_order=8)
    >>> int(s.labels.max()), s.mask.dtype.name
    (1, 'uint8')
    """
    start = time.perf_counter()
    voxel = np.asarray(check_voxel_size(voxel_size))
    foreground = np.asarray(foreground)
    inside = check_foreground(foreground)
    centers = np.asarray(centers_um, dtype=np.float64).reshape(-1, 3)
    index = check_positions(centers, inside, voxel)
    sh_order = check_nuclei_parameters(foreground.shape, voxel, radius_um=radius_um, radius_std_um=radius_std_um,
                                       smoothness=smoothness, sh_order=sh_order, law=law, elongation=elongation,
                                       orientation=orientation)
    scale = elongation_scale(elongation)
    fixed_rotation = None if orientation is None else axis_rotation(orientation)

    radii = np.maximum(radius_um + radius_std_um * rng.standard_normal(len(centers)), 0.25 * radius_um)
    labels = np.zeros(foreground.shape, dtype=label_dtype(len(centers)))
    kept: list[int] = []
    volumes: list[int] = []
    for k in progress_bar(range(len(centers)), progress=progress, desc="nuclei", unit="nucleus"):
        coeffs = random_coefficients(sh_order, float(radii[k]), smoothness, rng, law)
        if elongation == 1.0:
            rotation = None
        elif fixed_rotation is not None:
            rotation = fixed_rotation @ axis_rotation((1.0, 0.0, 0.0), rng.uniform(0.0, 2 * np.pi))
        else:
            rotation = random_rotation(rng)
        box, shape_mask = voxelize_sh(coeffs, centers[k], voxel, foreground.shape, scale=scale, rotation=rotation)
        region = labels[box]
        free = shape_mask & (region == 0) & inside[box]
        pieces, n_pieces = ndimage.label(free)
        if n_pieces == 0:
            continue
        if n_pieces > 1:
            free = pieces == (np.argmax(np.bincount(pieces.ravel())[1:]) + 1)
        kept.append(k)
        volumes.append(int(np.count_nonzero(free)))
        region[free] = len(kept)
    if not kept:
        raise CellsynthError(
            f"no nucleus covers a voxel centre (radius {radius_um} µm, voxel size {tuple(voxel.tolist())} µm); "
            "increase --radius or use smaller voxels"
        )
    dropped = len(centers) - len(kept)
    if dropped:
        warnings.warn(f"{dropped} of {len(centers)} nuclei had no free space and were dropped", stacklevel=2)

    kept_arr = np.asarray(kept, dtype=np.int64)
    n = len(kept)
    positions = {
        "label": np.arange(1, n + 1),
        "z_um": centers[kept_arr, 0], "y_um": centers[kept_arr, 1], "x_um": centers[kept_arr, 2],
        "z_px": index[kept_arr, 0], "y_px": index[kept_arr, 1], "x_px": index[kept_arr, 2],
        "radius_um": radii[kept_arr],
        "smoothness": np.full(n, float(smoothness)),
        "sh_order": np.full(n, sh_order),
        "elongation": np.full(n, float(elongation)),
        "volume_um3": np.asarray(volumes, dtype=np.float64) * float(np.prod(voxel)),
    }
    metadata = {
        "kind": "nuclei",
        "nuclei_requested": len(centers),
        "nuclei_placed": n,
        "parameters": {"radius_um": radius_um, "radius_std_um": radius_std_um, "smoothness": smoothness,
                   "sh_order": sh_order, "law": law, "elongation": elongation,
                   "orientation": None if orientation is None else list(map(float, orientation))},
        "timings": {"nuclei_s": round(time.perf_counter() - start, 4)},
    }
    return Sample(
        labels=labels, mask=(labels > 0).astype(np.uint8), foreground=inside.astype(np.uint8),
        voxel_size=tuple(voxel.tolist()), positions=positions, metadata=metadata,
    )
