"""Statistical shape model of star-shaped objects (Eq. 4 of Eschweiler et al. 2021).

Fitting
-------
Each training shape is sampled along ``n`` fixed rays from its centroid: the directions are
a Fibonacci sphere, the same for every shape, and the radius along a ray is where the
trilinearly interpolated mask first drops below 0.5 (µm, so anisotropic voxels are
handled). The paper stacks boundary points ``p = (x_1, y_1, z_1, ...)``; with fixed unit
directions ``p_i = r_i u_i`` is a linear isometry of the radii, so the PCA of the radii has
the same eigenvalues and equivalent modes, at a third of the size. The model keeps the
mean radii, the modes ``phi_j`` (orthonormal rows) and their variances ``lambda_j``.
Shapes are not rotated into alignment: train on consistently oriented masks.

Sampling
--------
New shapes are ``r = mean + sum_j b_j phi_j`` with ``b_j`` drawn from a normal distribution
with variance ``lambda_j``, truncated to ``+-3 sqrt(lambda_j)``. (The paper writes
``b_j in [-3 lambda_j, 3 lambda_j]``, but ``lambda_j`` is a variance, so its square root is
the standard deviation.)

Voxelisation
------------
The ray radii are fitted by least squares with real spherical harmonics up to an order
``L`` with ``(L+1)**2 <= n / 2`` (well conditioned on the Fibonacci sphere), and the SH
shape is voxelised exactly by :func:`cellsynth.shapes.harmonics.voxelize_sh`. This gives a
smooth surface through the ray end points instead of the paper's Delaunay triangulation.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from cellsynth.checks import check_integer
from cellsynth.errors import CellsynthError
from cellsynth.io import VoxelSize, atomic_path, check_voxel_size
from cellsynth.memory import check_memory
from cellsynth.shapes.harmonics import check_order, sh_basis, voxelize_sh

DEFAULT_RAYS = 500
"""Default number of rays per shape."""

SAMPLING_LIMIT = 3.0
"""Mode weights are limited to this many standard deviations."""

_FORMAT = "cellsynth-shape-model-1"
_STEP_FRACTION = 0.25  # ray sampling step, in units of the smallest voxel size


def fibonacci_directions(n: int) -> np.ndarray:
    """``n`` nearly uniform unit vectors (z, y, x) on the sphere (Fibonacci lattice)."""
    if n < 4:
        raise CellsynthError(f"the shape model needs at least 4 rays, got {n}")
    k = np.arange(n) + 0.5
    z = 1.0 - 2.0 * k / n
    rho = np.sqrt(1.0 - z * z)
    angle = math.pi * (3.0 - math.sqrt(5.0)) * k
    return np.stack([z, rho * np.sin(angle), rho * np.cos(angle)], axis=1)


def sh_order_for_rays(n: int) -> int:
    """The largest SH order ``L`` with ``(L+1)**2 <= n / 2``."""
    return max(int(math.isqrt(n // 2)) - 1, 0)


MIN_RAYS = 4
"""Fewest rays a shape model may use."""

RAY_BYTES_PER_SAMPLE = 40
"""Memory of one sample point of one ray while radii are measured: its coordinates (three
float64), the interpolated value and temporaries."""


def ray_samples(shape: Sequence[int], voxel_size: VoxelSize) -> int:
    """How many points :func:`ray_radii` samples along each ray of a mask of ``shape``: every
    ``0.25`` of the smallest voxel size, across the mask's diagonal."""
    voxel = np.asarray(check_voxel_size(voxel_size))
    step = _STEP_FRACTION * voxel.min()
    reach = float(np.linalg.norm(np.asarray(shape) * voxel)) + step
    return len(np.arange(0.0, reach + step, step))


def ray_radii(
    mask: np.ndarray, voxel_size: VoxelSize, directions: np.ndarray, center_um: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Radii (µm) of a shape along rays from its centroid (or ``center_um``).

    Returns
    -------
    radii, center
        ``(n,)`` distance to the first crossing of the 0.5 level of the trilinearly
        interpolated mask along each direction, and the centre used (µm).
    """
    voxel = np.asarray(check_voxel_size(voxel_size))
    inside = np.asarray(mask) != 0
    if not inside.any():
        raise CellsynthError("a training mask is empty")
    center = (np.array(ndimage.center_of_mass(inside)) * voxel if center_um is None
              else np.asarray(center_um, dtype=np.float64))
    step = _STEP_FRACTION * voxel.min()
    distances = np.arange(ray_samples(inside.shape, voxel)) * step
    points = (center[None, None, :] + distances[None, :, None] * directions[:, None, :]) / voxel
    values = ndimage.map_coordinates(inside.astype(np.float32), points.reshape(-1, 3).T, order=1, cval=0.0)
    values = values.reshape(len(directions), len(distances))
    if values[0, 0] < 0.5:
        raise CellsynthError("a training shape does not contain its centroid; the shape model needs star-shaped masks")
    below = values < 0.5
    first = below.argmax(axis=1)  # the far end is outside the volume, so every ray crosses
    before, after = values[np.arange(len(first)), first - 1], values[np.arange(len(first)), first]
    fraction = (before - 0.5) / (before - after)
    return distances[first - 1] + fraction * step, center


def principal_axes(mask: np.ndarray, voxel_size: VoxelSize) -> np.ndarray:
    """The rotation that takes a shape's principal-axes frame to the volume frame.

    Parameters
    ----------
    mask
        The shape (nonzero = inside).
    voxel_size
        µm (z, y, x).

    Returns
    -------
    numpy.ndarray
        ``(3, 3)`` rotation ``R`` (det +1) whose columns are the shape's axes in the volume
        frame: column 0 (the canonical z) is the axis of least spread, column 2 (x) that of
        most spread. A canonical direction ``d`` points along ``R @ d`` in the volume. The sign
        of the first two columns makes the third central moment along them non-negative, so
        an egg points the same way whatever its orientation; the third column completes a
        right-handed frame.
    """
    voxel = np.asarray(check_voxel_size(voxel_size))
    points = np.argwhere(np.asarray(mask) != 0) * voxel
    if len(points) == 0:
        raise CellsynthError("a training mask is empty")
    points -= points.mean(axis=0)
    _, vectors = np.linalg.eigh(points.T @ points)  # ascending spread: z, y, x of the canonical frame
    for column in (1, 2):
        if np.sum((points @ vectors[:, column]) ** 3) < 0:
            vectors[:, column] *= -1
    vectors[:, 0] = np.cross(vectors[:, 1], vectors[:, 2])
    return vectors


def shapes_from_labels(labels: np.ndarray) -> list[np.ndarray]:
    """One boolean mask per label (cropped to the label with a one-voxel margin)."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "uib":
        raise CellsynthError(f"masks must be integer label or 0/1 volumes, got {labels.dtype}")
    if labels.dtype == bool or labels.max() <= 1:
        return [np.asarray(labels) != 0] if labels.any() else []
    shapes = []
    for index, box in enumerate(ndimage.find_objects(labels.astype(np.int64, copy=False))):
        if box is not None:
            grown = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
            shapes.append(np.pad(labels[grown] == index + 1, 1))
    return shapes


@dataclass(frozen=True)
class ShapeModel:
    """A PCA model of ray radii (see the module docstring).

    Attributes
    ----------
    mean
        ``(n,)`` mean radius per ray in µm.
    modes
        ``(m, n)`` orthonormal modes, by decreasing variance.
    variances
        ``(m,)`` variance of each mode (µm²), the eigenvalues ``lambda_j``.
    directions
        ``(n, 3)`` unit ray directions (z, y, x).
    voxel_size
        Voxel size of the training data (µm); the default for sampling.
    sh_order
        SH order used to voxelise shapes.
    aligned
        Whether the training shapes were turned into their principal-axes frames; samples
        then have their longest axis along x and their shortest along z.
    """

    mean: np.ndarray
    modes: np.ndarray
    variances: np.ndarray
    directions: np.ndarray
    voxel_size: VoxelSize
    sh_order: int
    aligned: bool = False

    @property
    def n_modes(self) -> int:
        """Number of modes."""
        return len(self.variances)

    def radii(self, weights: np.ndarray) -> np.ndarray:
        """Ray radii (µm) of ``mean + sum_j weights_j phi_j`` (Eq. 4); negative radii become 0."""
        weights = np.asarray(weights, dtype=np.float64)
        return np.maximum(self.mean + weights @ self.modes[: len(weights)], 0.0)

    def project(self, radii: np.ndarray) -> np.ndarray:
        """The mode weights ``b`` of a shape given by its ray radii."""
        return self.modes @ (np.asarray(radii, dtype=np.float64) - self.mean)

    def sample_weights(self, rng: np.random.Generator, n_modes: int | None = None) -> np.ndarray:
        """Mode weights ``b_j ~ N(0, lambda_j)`` truncated to ``+-3 sqrt(lambda_j)``.

        Parameters
        ----------
        rng
            Random generator.
        n_modes
            Use the first ``n_modes`` modes (default all).
        """
        n = self.n_modes if n_modes is None else int(n_modes)
        if not 0 <= n <= self.n_modes:
            raise CellsynthError(f"the shape model has {self.n_modes} modes; choose 0 to {self.n_modes}, got {n_modes}")
        z = rng.standard_normal(n)
        while np.any(far := np.abs(z) > SAMPLING_LIMIT):
            z[far] = rng.standard_normal(int(far.sum()))
        return z * np.sqrt(self.variances[:n])

    def voxelize(
        self, radii: np.ndarray, shape: Sequence[int], voxel_size: VoxelSize,
        center_um: Sequence[float] | None = None, rotation: np.ndarray | None = None,
    ) -> np.ndarray:
        """Voxelise a shape given by ray radii (SH least-squares fit, then exact voxelisation).

        Parameters
        ----------
        radii
            ``(n,)`` radii in µm along :attr:`directions`.
        shape
            Volume shape (Z, Y, X).
        voxel_size
            Voxel size in µm (z, y, x) of the output.
        center_um
            Shape centre in µm; default the centre of the volume.
        rotation
            Optional 3x3 rotation (see :mod:`cellsynth.shapes.harmonics`).

        Returns
        -------
        numpy.ndarray
            uint8 mask of ``shape``.
        """
        voxel = np.asarray(check_voxel_size(voxel_size))
        shape = tuple(int(s) for s in shape)
        check_memory(2 * float(np.prod(shape, dtype=np.float64)), f"a {'x'.join(map(str, shape))} mask",
                     "choose a smaller --shape")
        if len(shape) != 3 or min(shape) < 1:
            raise CellsynthError(f"the output shape must be three positive sizes (Z Y X), got {shape}")
        center = (np.array(shape) - 1) * voxel / 2.0 if center_um is None else np.asarray(center_um, dtype=np.float64)
        coeffs = np.linalg.lstsq(self._basis(), np.asarray(radii, dtype=np.float64), rcond=None)[0]
        box, inside = voxelize_sh(coeffs, center, voxel, shape, rotation=rotation)
        out = np.zeros(shape, dtype=np.uint8)
        out[box] = inside
        return out

    def sample(
        self, shape: Sequence[int], voxel_size: VoxelSize, rng: np.random.Generator, *,
        n_modes: int | None = None, center_um: Sequence[float] | None = None, rotation: np.ndarray | None = None,
    ) -> np.ndarray:
        """Draw a new shape and voxelise it (uint8 mask of ``shape``)."""
        return self.voxelize(self.radii(self.sample_weights(rng, n_modes)), shape, voxel_size, center_um, rotation)

    def _basis(self) -> np.ndarray:
        z, y, x = self.directions.T
        return sh_basis(self.sh_order, np.arccos(np.clip(z, -1.0, 1.0)), np.arctan2(y, x)).T

    def save(self, path: str | os.PathLike) -> None:
        """Write the model as a small ``.npz`` file, atomically."""
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(
                f, format=np.array(_FORMAT), mean=self.mean, modes=self.modes, variances=self.variances,
                directions=self.directions, voxel_size=np.array(self.voxel_size), sh_order=np.array(self.sh_order),
                aligned=np.array(self.aligned),
            )

    @classmethod
    def load(cls, path: str | os.PathLike) -> ShapeModel:
        """Read a model written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise CellsynthError(f"shape model not found: {path}")
        refit = "fit one with `cellsynth shape-model fit`"
        with open(path, "rb") as f:
            if f.read(2) != b"PK":  # every .npz is a zip archive
                raise CellsynthError(f"{path} is not a cellsynth shape model (not an .npz archive); {refit}")
        try:
            with np.load(path, allow_pickle=False) as data:
                check_memory(sum(info.file_size for info in data.zip.infolist()), f"the shape model {path}",
                             f"the file claims arrays larger than memory; {refit}")
                if "format" not in data.files or str(data["format"]) != _FORMAT:
                    raise CellsynthError(f"{path} is not a cellsynth shape model; {refit}")
                arrays = {k: np.asarray(data[k], dtype=np.float64) for k in ("mean", "modes", "variances",
                                                                              "directions")}
                model = cls(**arrays, voxel_size=check_voxel_size(data["voxel_size"]),
                            sh_order=check_order(int(data["sh_order"])),
                            aligned=bool(data["aligned"]) if "aligned" in data.files else False)
        except CellsynthError:
            raise
        except Exception as err:  # noqa: BLE001 - zipfile, numpy and int() raise many types for damaged files
            raise CellsynthError(f"cannot read shape model {path} ({type(err).__name__}: {err}); {refit}") from None
        n = len(model.mean)
        if model.mean.ndim != 1 or model.directions.shape != (n, 3) or model.modes.shape != (len(model.variances), n) \
                or not all(np.isfinite(a).all() for a in (model.mean, model.modes, model.variances, model.directions)) \
                or (model.variances < 0).any() or (model.sh_order + 1) ** 2 > n:
            raise CellsynthError(f"shape model {path} is inconsistent; {refit}")
        return model


def fit_shape_model(
    shapes: Iterable[np.ndarray], voxel_size: VoxelSize, *, n_rays: int = DEFAULT_RAYS, sh_order: int | None = None,
    align: bool = False,
) -> ShapeModel:
    """Fit a statistical shape model to training masks.

    Parameters
    ----------
    shapes
        At least 3 masks (any shapes; nonzero = inside), e.g. from
        :func:`shapes_from_labels`. Each must contain its centroid.
    voxel_size
        Their voxel size in µm (z, y, x).
    n_rays
        Number of rays per shape.
    sh_order
        SH order for voxelising; default the largest with ``(L+1)**2 <= n_rays / 2``.
    align
        Turn each shape into its principal-axes frame before sampling its rays
        (:func:`principal_axes`), for shapes that are not consistently oriented.

    Returns
    -------
    ShapeModel
        With ``k - 1`` modes for ``k`` shapes (fewer if shapes coincide).
    """
    voxel = check_voxel_size(voxel_size)
    shapes = list(shapes)
    n_rays = check_integer(n_rays, "number of rays", low=MIN_RAYS)
    if len(shapes) < 3:
        raise CellsynthError(
            f"a shape model needs at least 3 training shapes, got {len(shapes)}; give more masks or labels")
    order = sh_order_for_rays(n_rays) if sh_order is None else check_integer(sh_order, "SH order", low=0)
    if (order + 1) ** 2 > n_rays:
        raise CellsynthError(f"SH order {sh_order} needs more rays: (order + 1)**2 must not exceed {n_rays}")
    samples = max(ray_samples(s.shape, voxel) for s in shapes)
    check_memory(n_rays * (samples * RAY_BYTES_PER_SAMPLE + 8 * (len(shapes) + 4)),
                 f"fitting {len(shapes)} shapes with {n_rays} rays", "use fewer --rays (the default is 500)")
    directions = fibonacci_directions(n_rays)
    radii = np.array([ray_radii(s, voxel, directions @ principal_axes(s, voxel).T if align else directions)[0]
                      for s in shapes]).reshape(-1, len(directions))
    mean = radii.mean(axis=0)
    _, singular, modes = np.linalg.svd(radii - mean, full_matrices=False)
    variances = singular**2 / (len(radii) - 1)
    keep = variances > 1e-12 * max(float(variances.sum()), 1e-300)
    return ShapeModel(mean=mean, modes=modes[keep], variances=variances[keep], directions=directions,
                      voxel_size=voxel, sh_order=order, aligned=bool(align))
