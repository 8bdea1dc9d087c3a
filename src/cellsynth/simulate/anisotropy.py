"""Cell sizes, elongations and orientations: the shape model behind packed tissue.

Real plant cells are elongated (median principal-axis ratio about 2 in the PlantSeg ovule
labels), their long axes follow those of their neighbours, and their volumes vary (CV about
0.45). Weighted Voronoi cells around evenly spaced points are round and alike. Here every
cell ``j`` has

- a size ``gamma_j ~ Uniform(1 - spread, 1 + spread)`` (the weight of Eq. 3),
- a long axis ``u_j`` and a middle axis ``v_j`` (unit vectors, z y x) from an
  :class:`OrientationField`,
- a shape: the ellipsoid of unit volume with semi-axes ``a1 >= a2 >= a3`` along ``u_j``,
  ``v_j`` and ``u_j x v_j``, where ``a1 / a3`` is the elongation ``e`` and ``a2 / a3 =
  e**f`` with the flatness ``f`` in [0, 1] (0: a cigar, 1: a disc), scaled by
  ``gamma_j``. Real plant cells are in between (measured ``a1 / a2`` and ``a2 / a3`` both
  about 1.4 in the ovule labels).

Optionally the whole tissue is stretched by factors (z, y, x) (product 1): real tissue is
often flatter along one axis (in the PlantSeg ovule labels the mean chord along z is about
0.85 of the geometric mean over the three axes). Cells are packed as non-overlapping such
ellipsoids (:class:`CellPacking`): two cells are too close when the distance between their
centres is less than the sum of their radii along the line joining them. The tessellation
then measures the distance to cell ``j`` in its own metric ``M_j`` (the one whose unit
ball is the cell's ellipsoid, see :func:`cell_metrics`) divided by ``gamma_j`` -- Eq. 3
with an anisotropic distance. With ``e = 1`` and no stretch this is Eq. 3 with size-aware
seed spacing.

Optionally the cell size changes along the tissue (a ``size_gradient`` ``g``, per µm, z y
x): cell ``j`` at ``p_j`` gets ``gamma_j exp(g . (p_j - c))`` with ``c`` the centre of the
volume, so that its linear size (and its packing radius) grows by ``exp(g_a)`` per µm along
axis ``a`` and its volume by ``exp(3 g_a)``; real roots have smaller cells towards the tip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from cellsynth.errors import CellsynthError
from cellsynth.io import VoxelSize, check_voxel_size


def random_directions(count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` unit vectors (z, y, x) uniform on the sphere."""
    v = rng.standard_normal((count, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def check_elongation(elongation: float) -> float:
    """Validate an elongation: a positive ratio, 1 = round, below 1 flattened along the axis."""
    if not (isinstance(elongation, (int, float)) and np.isfinite(elongation) and elongation > 0):
        raise CellsynthError(f"elongation must be a positive ratio (1 = round), got {elongation!r}")
    return float(elongation)


def check_direction(direction: Sequence[float]) -> np.ndarray:
    """A non-zero (z, y, x) vector, normalised."""
    d = np.asarray(direction, dtype=np.float64)
    norm = float(np.linalg.norm(d)) if d.shape == (3,) else float("nan")
    if not np.isfinite(norm) or norm == 0:
        raise CellsynthError(f"orientation must be a non-zero (z, y, x) vector, got {np.asarray(direction).tolist()}")
    return d / norm


class OrientationField:
    """Long and middle axis directions of cells as a function of position.

    Three kinds: one long-axis ``direction`` for every cell (the middle axis turned at
    random about it); a smooth random field whose frames stay alike over about
    ``coherence_um``; or (coherence 0) an independent random frame per cell. The random
    long axes are scaled by ``bias`` (z, y, x) before they are normalised, so that a small
    factor makes them rarely point along that axis. Use :func:`orientation_field` to make one.
    """

    def __init__(self, *, direction: np.ndarray | None = None, grid: np.ndarray | None = None,
                 spacing_um: float = 0.0, bias: np.ndarray | None = None) -> None:
        self.direction = direction
        self.grid = grid  # (6, gz, gy, gx): two vector fields on a grid of spacing_um, origin at 0
        self.spacing_um = spacing_um
        self.bias = np.ones(3) if bias is None else np.asarray(bias, dtype=np.float64)

    def frames(self, points_um: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(N, 2, 3): the unit long axis and a unit middle axis perpendicular to it at each point."""
        points = np.asarray(points_um, dtype=np.float64).reshape(-1, 3)
        if self.direction is not None:
            long_axes = np.broadcast_to(self.direction, points.shape).copy()
            other = random_directions(len(points), rng)
        elif self.grid is None:
            long_axes = _unit(random_directions(len(points), rng) * self.bias, rng)
            other = random_directions(len(points), rng)
        else:
            coords = (points / self.spacing_um).T
            values = np.stack([ndimage.map_coordinates(c, coords, order=1, mode="nearest") for c in self.grid], axis=1)
            long_axes, other = _unit(values[:, :3] * self.bias, rng), values[:, 3:]
        middle = other - np.einsum("ni,ni->n", other, long_axes)[:, None] * long_axes
        return np.stack([long_axes, _unit(middle, rng, perpendicular_to=long_axes)], axis=1)


def _unit(vectors: np.ndarray, rng: np.random.Generator, perpendicular_to: np.ndarray | None = None) -> np.ndarray:
    """Normalise rows; a (near) zero row becomes a random unit vector (perpendicular to the given one)."""
    norm = np.linalg.norm(vectors, axis=1)
    lost = norm < 1e-9
    out = vectors / np.where(lost, 1.0, norm)[:, None]
    if lost.any():
        fresh = random_directions(int(lost.sum()), rng)
        if perpendicular_to is not None:
            base = perpendicular_to[lost]
            fresh = np.cross(base, fresh)
            fresh /= np.linalg.norm(fresh, axis=1, keepdims=True)
        out[lost] = fresh
    return out


def orientation_field(
    shape: Sequence[int], voxel_size: VoxelSize, rng: np.random.Generator, *,
    orientation: Sequence[float] | None = None, coherence_um: float = 0.0, bias: Sequence[float] | None = None,
) -> OrientationField:
    """An orientation field for the cells of a volume.

    Parameters
    ----------
    shape, voxel_size
        The volume (Z, Y, X) and its voxel size in µm.
    rng
        Random generator (draws the random field).
    orientation
        One long-axis direction (z, y, x) for every cell; overrides ``coherence_um``.
    coherence_um
        Without ``orientation``: 0 gives each cell its own random frame; a positive
        length gives a smooth random field: two white-noise vector fields smoothed by a
        Gaussian of this standard deviation (µm) give the long and middle axes, so that
        cells closer than about this length point alike.
    bias
        Factors (z, y, x) on the random long axes before normalisation: ``(0.3, 1, 1)``
        lays most of them in the xy plane (default: none).

    Returns
    -------
    OrientationField

    Examples
    --------
    >>> field = orientation_field((10, 10, 10), (1, 1, 1), np.random.default_rng(0), orientation=(0, 0, 2))
    >>> frames = field.frames(np.zeros((2, 3)), np.random.default_rng(0))
    >>> frames[:, 0].tolist(), bool(np.allclose(frames[:, 1, 2], 0))
    ([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]], True)
    """
    voxel = np.asarray(check_voxel_size(voxel_size))
    if orientation is not None:
        return OrientationField(direction=check_direction(orientation))
    if not (isinstance(coherence_um, (int, float)) and np.isfinite(coherence_um) and coherence_um >= 0):
        raise CellsynthError(f"orientation coherence must be a length >= 0 in µm, got {coherence_um!r}")
    if bias is not None:
        bias = np.asarray(bias, dtype=np.float64)
        if bias.shape != (3,) or not np.all(np.isfinite(bias) & (bias > 0)):
            raise CellsynthError(f"orientation bias must be three positive factors (z y x), got {bias.tolist()}")
    if coherence_um == 0:
        return OrientationField(bias=bias)
    spacing = coherence_um / 2.0
    extent = np.asarray(shape) * voxel
    size = tuple(int(n) for n in np.ceil(extent / spacing).astype(int) + 7)  # margin for the smoothing
    noise = rng.standard_normal((6, *size))
    grid = np.stack([ndimage.gaussian_filter(c, coherence_um / spacing, mode="wrap") for c in noise])
    return OrientationField(grid=grid, spacing_um=spacing, bias=bias)


def check_flatness(flatness: float) -> float:
    """Validate a flatness: 0 (cigar: middle axis as short as the short one) to 1 (disc)."""
    if not (isinstance(flatness, (int, float)) and np.isfinite(flatness) and 0 <= flatness <= 1):
        raise CellsynthError(f"flatness must be in [0, 1] (0 cigar, 1 disc), got {flatness!r}")
    return float(flatness)


def semi_axes(elongation: float, flatness: float = 0.0) -> tuple[float, float, float]:
    """Semi-axes (long, middle, short) of the unit-volume ellipsoid with ``long / short =
    elongation`` and ``middle / short = elongation**flatness``.

    Examples
    --------
    >>> [round(a, 3) for a in semi_axes(8.0)]
    [4.0, 0.5, 0.5]
    """
    e, f = check_elongation(elongation), check_flatness(flatness)
    short = e ** (-(1.0 + f) / 3.0)
    return short * e, short * e**f, short


def check_stretch(stretch: Sequence[float] | None) -> np.ndarray:
    """Tissue stretch factors (z, y, x), scaled to a product of 1 (None: no stretch)."""
    if stretch is None:
        return np.ones(3)
    values = np.asarray(stretch, dtype=np.float64)
    if values.shape != (3,) or not np.all(np.isfinite(values) & (values > 0)):
        raise CellsynthError(f"stretch must be three positive factors (z y x), got {stretch!r}")
    return values / np.prod(values) ** (1.0 / 3.0)


def check_size_gradient(gradient: Sequence[float] | None) -> np.ndarray:
    """A cell-size gradient (z, y, x) in 1/µm: three finite numbers (None: none, zeros)."""
    if gradient is None:
        return np.zeros(3)
    values = np.asarray(gradient, dtype=np.float64)
    if values.shape != (3,) or not np.all(np.isfinite(values)):
        raise CellsynthError(f"size gradient must be three finite numbers (z y x) per µm, got {gradient!r}")
    return values


def cell_metrics(frames: np.ndarray, elongation: float, flatness: float = 0.0,
                 stretch: Sequence[float] | None = None) -> np.ndarray:
    """The metrics ``M_j`` (N, 3, 3) whose unit balls are the cells' ellipsoids.

    ``M = S^-1 (sum_k e_k e_k^T / a_k**2) S^-1`` over the long axis, the middle axis and
    their cross product, with the semi-axes ``a_k`` of :func:`semi_axes`, and ``S`` the
    diagonal tissue stretch (z, y, x; product 1): the ellipsoid is drawn in the frame and
    then stretched with the whole tissue.

    Parameters
    ----------
    frames
        (N, 2, 3): each cell's unit long axis and a unit middle axis perpendicular to it.
    elongation, flatness
        The cells' shape.
    stretch
        Factors (z, y, x) by which the whole tissue is stretched (None: none).
    """
    frames = np.asarray(frames, dtype=np.float64).reshape(-1, 2, 3)
    u, v = frames[:, 0], frames[:, 1]
    w = np.cross(u, v)
    a = semi_axes(elongation, flatness)
    metric = sum(e[:, :, None] * e[:, None, :] / s**2 for e, s in zip((u, v, w), a))
    inverse = 1.0 / check_stretch(stretch)
    return metric * inverse[None, :, None] * inverse[None, None, :]


_UPPER = (np.array([0, 1, 2, 0, 0, 1]), np.array([0, 1, 2, 1, 2, 2]))  # zz, yy, xx, zy, zx, yx


@dataclass
class CellPacking:
    """Sizes, shapes and the non-overlap rule of packed cells (see the module docstring).

    Parameters
    ----------
    spacing_um
        Distance between the centres of two touching cells of size 1 and elongation 1: the
        diameter of the average cell's packing ball (µm).
    elongation, flatness
        Every cell's shape (see :func:`semi_axes`).
    weight_spread
        ``gamma ~ Uniform(1 - spread, 1 + spread)``.
    field
        Long and middle axis directions.
    stretch
        Factors (z, y, x) by which the whole tissue is stretched after the cells are
        shaped and oriented (see :func:`cell_metrics`).
    size_gradient
        Per µm (z, y, x): a cell at ``p`` is ``exp(size_gradient . (p - extent_um / 2))``
        times as large (see the module docstring; None: no gradient).
    extent_um
        Size of the volume (µm, z y x), whose centre is the gradient's origin; needed with a
        gradient.
    """

    spacing_um: float
    elongation: float = 1.0
    weight_spread: float = 0.0
    field: OrientationField | None = None
    flatness: float = 0.0
    stretch: Sequence[float] | None = None
    size_gradient: Sequence[float] | None = None
    extent_um: Sequence[float] | None = None

    ATTRIBUTES = 7
    """Columns per cell after its position: gamma and the six entries of its metric (zz, yy, xx, zy, zx, yx)."""

    def __post_init__(self) -> None:
        if not (np.isfinite(self.spacing_um) and self.spacing_um > 0):
            raise CellsynthError(f"cell spacing must be a positive length in µm, got {self.spacing_um!r}")
        check_elongation(self.elongation)
        check_flatness(self.flatness)
        self.stretch = check_stretch(self.stretch)
        if not (np.isfinite(self.weight_spread) and 0 <= self.weight_spread < 1):
            raise CellsynthError(f"weight spread must be in [0, 1), got {self.weight_spread!r}")
        if self.field is None:
            self.field = OrientationField()
        self.size_gradient = check_size_gradient(self.size_gradient)
        if self.extent_um is None:
            if np.any(self.size_gradient != 0):
                raise CellsynthError("a size gradient needs the volume's extent (its centre is the gradient's origin)")
            self.extent_um = np.zeros(3)
        self.extent_um = np.asarray(self.extent_um, dtype=np.float64)

    def size_factors(self, points_um: np.ndarray) -> np.ndarray:
        """``exp(size_gradient . (p - centre))`` at each point (N, 3): the cells' size factors."""
        return np.exp((np.asarray(points_um, dtype=np.float64) - self.extent_um / 2.0) @ self.size_gradient)

    @property
    def reach_um(self) -> float:
        """The largest radius a cell can have along any direction (µm)."""
        longest = semi_axes(self.elongation, self.flatness)[0] * float(np.max(self.stretch))
        largest = math.exp(float(np.abs(self.size_gradient) @ self.extent_um) / 2.0)  # at a corner of the volume
        return self.spacing_um / 2.0 * (1.0 + self.weight_spread) * longest * largest

    def draw(self, points_um: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Sizes and metrics for candidate cells at ``points_um``: (N, 7) = gamma, metric entries."""
        weights = rng.uniform(1.0 - self.weight_spread, 1.0 + self.weight_spread, size=len(points_um))
        weights = weights * self.size_factors(points_um)
        metrics = cell_metrics(self.field.frames(points_um, rng), self.elongation, self.flatness, self.stretch)
        return np.column_stack([weights, metrics[:, _UPPER[0], _UPPER[1]]])

    def radii(self, attributes: np.ndarray, unit: np.ndarray) -> np.ndarray:
        """Radius (µm) of each cell's ellipsoid along the unit vectors ``unit`` (N, 3)."""
        m = attributes[:, 1:7]
        z, y, x = unit.T
        form = (m[:, 0] * z * z + m[:, 1] * y * y + m[:, 2] * x * x
                + 2.0 * (m[:, 3] * z * y + m[:, 4] * z * x + m[:, 5] * y * x))
        return self.spacing_um / 2.0 * attributes[:, 0] / np.sqrt(form)

    def too_close(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether cells ``a`` and ``b`` (rows: z, y, x and the attributes) overlap."""
        delta = b[:, :3] - a[:, :3]
        distance = np.linalg.norm(delta, axis=1)
        unit = delta / np.maximum(distance, 1e-300)[:, None]
        return distance < self.radii(a[:, 3:], unit) + self.radii(b[:, 3:], unit)

    @staticmethod
    def metrics(attributes: np.ndarray) -> np.ndarray:
        """The (N, 3, 3) tessellation metrics stored in ``attributes`` (N, 7)."""
        out = np.empty((len(attributes), 3, 3))
        out[:, _UPPER[0], _UPPER[1]] = attributes[:, 1:7]
        out[:, _UPPER[1], _UPPER[0]] = attributes[:, 1:7]
        return out


def mean_packing_volume(packing: CellPacking) -> float:
    """Volume of the average cell's packing ellipsoid (µm³): ``pi/6 spacing**3 E[gamma**3]``,
    averaged over the volume where the size has a gradient."""
    s = packing.weight_spread
    # the mean of exp(3 g (x - L/2)) over [0, L] per axis: sinh(h) / h with h = 3 g L / 2
    h = 1.5 * packing.size_gradient * packing.extent_um
    gradient = float(np.prod(np.where(h == 0, 1.0, np.sinh(h) / np.where(h == 0, 1.0, h))))
    return math.pi / 6.0 * packing.spacing_um**3 * (1.0 + s * s) * gradient  # E[gamma^3], gamma ~ U(1 - s, 1 + s)
