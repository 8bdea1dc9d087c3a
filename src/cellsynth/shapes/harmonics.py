"""Star-convex shapes from real spherical harmonics (Eq. 5-7 of Eschweiler et al. 2021).

Shape definition
----------------
A shape is given by SH coefficients ``c`` (length ``(L+1)**2``, index ``l*l + l + m``), a
centre ``c0`` in µm, a per-axis ``scale`` and a ``rotation`` (3x3, acting on (z, y, x)
vectors). A point ``p`` (µm) belongs to the shape when its canonical coordinates

    q = (R^T (p - c0)) / scale

satisfy ``|q| <= r(q / |q|)``, where the radial function is the real SH series

    r(u) = sum_{l <= L} sum_{|m| <= l} c_lm Y_lm(u).

Directions are expressed in the canonical frame with ``theta`` the polar angle from the
first (z) axis and ``phi = atan2(y, x)`` the azimuth. The centre itself (``|q| = 0``) is
inside when ``r`` at the pole ``theta = 0`` is non-negative. A direction with negative
``r`` contains no point of the shape. :func:`inside_sh` evaluates this definition point by
point; :func:`voxelize_sh` gives exactly the same answer for every voxel centre, faster.

Real basis
----------
``Y_l0 = N_l0 P_l^0(cos theta)``, ``Y_lm = sqrt(2) N_lm P_l^m(cos theta) cos(m phi)`` for
``m > 0`` and ``Y_l,-m = sqrt(2) N_lm P_l^m(cos theta) sin(m phi)``, with the associated
Legendre functions ``P_l^m`` without the Condon-Shortley phase and
``N_lm = sqrt((2l+1)/(4 pi) (l-m)!/(l+m)!)``. This basis is orthonormal on the unit sphere.

Random shapes (Eq. 7)
---------------------
:func:`random_coefficients` draws ``c_00 = r sqrt(4 pi)``, so the mean of ``r(u)`` over the
sphere is exactly ``r`` (the orthonormal ``Y_00`` is ``1/sqrt(4 pi) = 0.2821``; setting
``c_00 = r`` as the reference code does gives a mean radius of 0.28 r). Degree 1 is left at
zero: to first order it only moves the shape off its centre, which the positions already
decide. For ``l >= 2``

    c_lm = r sqrt(4 pi) w_lm sqrt(P(l) / (2l + 1)),    w_lm ~ N(0, 1),

so ``P(l)`` is the expected mean square of the degree-``l`` part of ``r(u)/r`` over the
sphere (its relative power spectrum). The ``law`` chooses it:

- ``"power"`` (the reference's law): ``P(l) = l**-gamma``;
- ``"exponential"``: ``P(l) = exp(-gamma (l - 1))``.

Both equal 1 at the unused ``l = 1`` and decay with ``l``. Small ``gamma`` gives irregular
shapes, large ``gamma`` near-spheres (Fig. 4 of the paper). With the power law and
``gamma = 5`` the radius varies by about 18% RMS, mostly the ellipsoidal degree 2.

The mean of ``r(u)`` over directions is ``r`` exactly; the volume-equivalent radius
``(3 V / 4 pi)**(1/3)`` is larger for rough shapes (by about 2% at ``gamma = 5``, but by
half at ``gamma = 1`` and order 20, whose radius varies by more than 100% RMS).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from cellsynth.errors import CellsynthError
from cellsynth.io import VoxelSize, check_voxel_size
from cellsynth.memory import check_memory

LAWS = ("power", "exponential")
"""Names of the coefficient decay laws of :func:`random_coefficients`."""

MAX_ORDER = 100
"""Largest supported SH order ``L`` (the Legendre recurrence stays accurate far beyond)."""

_SQRT2 = math.sqrt(2.0)
VOXELIZE_BYTES_PER_VOXEL = 80
"""Memory :func:`voxelize_sh` needs per voxel of a shape's bounding box: the canonical
coordinates and distance (float64), the angle indices (int64) and temporaries."""

_SQRT4PI = math.sqrt(4.0 * math.pi)


# --------------------------------------------------------------------------- indexing


def n_coefficients(l_max: int) -> int:
    """Number of real SH coefficients up to order ``l_max``: ``(l_max + 1)**2``."""
    return (check_order(l_max) + 1) ** 2


def check_order(l_max: int) -> int:
    """Validate an SH order and return it as an int."""
    if isinstance(l_max, bool) or not float(l_max).is_integer() or not 0 <= l_max <= MAX_ORDER:
        raise CellsynthError(f"SH order must be an integer from 0 to {MAX_ORDER}, got {l_max!r}")
    return int(l_max)


def order_of(coeffs: np.ndarray) -> int:
    """The SH order ``L`` of a coefficient vector of length ``(L+1)**2``."""
    n = np.shape(coeffs)[-1] if np.ndim(coeffs) else 0
    l_max = math.isqrt(n) - 1
    if n == 0 or (l_max + 1) ** 2 != n:
        raise CellsynthError(f"SH coefficients must have (L+1)**2 entries, got {n}")
    return l_max


# --------------------------------------------------------------------------- basis


def sh_basis(l_max: int, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Real orthonormal spherical harmonics up to order ``l_max``.

    Built from :func:`scipy.special.sph_harm_y` (which includes the Condon-Shortley phase;
    the real basis here does not).

    Parameters
    ----------
    l_max
        Highest order ``L``.
    theta, phi
        Polar angle in [0, pi] and azimuth (radians); broadcast against each other.

    Returns
    -------
    numpy.ndarray
        ``((l_max+1)**2, *shape)`` float64; row ``l*l + l + m`` holds ``Y_lm``.

    Examples
    --------
    >>> float(sh_basis(0, np.array(0.3), np.array(1.0))[0])  # 1 / sqrt(4 pi)
    0.28209479177387814
    """
    from scipy.special import sph_harm_y

    l_max = check_order(l_max)
    theta, phi = np.broadcast_arrays(np.asarray(theta, dtype=np.float64), np.asarray(phi, dtype=np.float64))
    out = np.empty((n_coefficients(l_max), *theta.shape))
    for l in range(l_max + 1):
        out[l * l + l] = sph_harm_y(l, 0, theta, phi).real
        for m in range(1, l + 1):
            y = sph_harm_y(l, m, theta, phi) * ((-1) ** m * _SQRT2)
            out[l * l + l + m] = y.real
            out[l * l + l - m] = y.imag
    return out


@functools.lru_cache(maxsize=8)
def _recurrence(l_max: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Constants of the normalized Legendre recurrence in ``x = cos(theta)``.

    ``p_lm(x) = N_lm P_l^m(x) / sin(theta)**m`` is a polynomial in x with
    ``p_mm = 1/sqrt(4 pi) prod_{k<=m} sqrt((2k+1)/(2k))``,
    ``p_{m+1,m} = sqrt(2m+3) x p_mm`` and
    ``p_lm = a_lm (x p_{l-1,m} - b_lm p_{l-2,m})``.
    """
    diag = np.empty(l_max + 1)
    diag[0] = 1.0 / _SQRT4PI
    for m in range(1, l_max + 1):
        diag[m] = diag[m - 1] * math.sqrt((2 * m + 1) / (2 * m))
    a = np.zeros((l_max + 1, l_max + 1))
    b = np.zeros((l_max + 1, l_max + 1))
    for l in range(2, l_max + 1):
        for m in range(l - 1):
            a[l, m] = math.sqrt((4 * l * l - 1) / (l * l - m * m))
            b[l, m] = math.sqrt(((l - 1) ** 2 - m * m) / (4 * (l - 1) ** 2 - 1))
    return diag, a, b


def _split(coeffs: np.ndarray, l_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients as (l, m) tables for the cos and sin parts, sqrt(2) folded in."""
    ccos = np.zeros((l_max + 1, l_max + 1))
    csin = np.zeros((l_max + 1, l_max + 1))
    for l in range(l_max + 1):
        ccos[l, 0] = coeffs[l * l + l]
        for m in range(1, l + 1):
            ccos[l, m] = _SQRT2 * coeffs[l * l + l + m]
            csin[l, m] = _SQRT2 * coeffs[l * l + l - m]
    return ccos, csin


def _legendre_sums(ccos: np.ndarray, csin: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``A_m(x) = sum_l ccos[l, m] p_lm(x)`` and ``B_m`` likewise, shape (L+1, N).

    Element-wise operations only, in a fixed order, so each point's value does not depend
    on how many points are evaluated together.
    """
    l_max = ccos.shape[0] - 1
    diag, a, b = _recurrence(l_max)
    x = x[None, :]
    n = x.shape[1]
    sum_cos = np.zeros((l_max + 1, n))
    sum_sin = np.zeros((l_max + 1, n))
    prev2 = np.zeros((l_max + 1, n))
    prev1 = np.zeros((l_max + 1, n))
    for l in range(l_max + 1):
        p = np.zeros((l_max + 1, n))
        if l >= 2:
            p[: l - 1] = a[l, : l - 1, None] * (x * prev1[: l - 1] - b[l, : l - 1, None] * prev2[: l - 1])
        if l >= 1:
            p[l - 1] = (math.sqrt(2 * l + 1) * diag[l - 1]) * x[0]
        p[l] = diag[l]
        sum_cos[: l + 1] += ccos[l, : l + 1, None] * p[: l + 1]
        sum_sin[1 : l + 1] += csin[l, 1 : l + 1, None] * p[1 : l + 1]
        prev2, prev1 = prev1, p
    return sum_cos, sum_sin


def _radius_from_directions(coeffs: np.ndarray, uz: np.ndarray, uy: np.ndarray, ux: np.ndarray) -> np.ndarray:
    """``r(u)`` for unit vectors ``u = (uz, uy, ux)`` (1D arrays), exactly as defined.

    Uses ``sin(theta)**m (cos m phi + i sin m phi) = (ux + i uy)**m``, so only +, *, and
    the Legendre recurrence are involved: the result is reproducible bit for bit.
    """
    l_max = order_of(coeffs)
    ccos, csin = _split(np.asarray(coeffs, dtype=np.float64), l_max)
    sum_cos, sum_sin = _legendre_sums(ccos, csin, uz)
    radius = sum_cos[0].copy()
    re, im = np.ones_like(ux), np.zeros_like(ux)
    for m in range(1, l_max + 1):
        re, im = re * ux - im * uy, re * uy + im * ux
        radius += sum_cos[m] * re + sum_sin[m] * im
    return radius


def radius_at(coeffs: np.ndarray, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """The radial function ``r(theta, phi) = sum c_lm Y_lm(theta, phi)``.

    Parameters
    ----------
    coeffs
        SH coefficients, length ``(L+1)**2``.
    theta, phi
        Polar angle and azimuth in radians (broadcast).

    Returns
    -------
    numpy.ndarray
        Radius in the units of ``coeffs`` (µm for shapes), shaped like the broadcast angles.
    """
    theta, phi = np.broadcast_arrays(np.asarray(theta, dtype=np.float64), np.asarray(phi, dtype=np.float64))
    sin_t = np.sin(theta).ravel()
    uz, uy, ux = np.cos(theta).ravel(), sin_t * np.sin(phi).ravel(), sin_t * np.cos(phi).ravel()
    return _radius_from_directions(coeffs, uz, uy, ux).reshape(theta.shape)


# --------------------------------------------------------------------------- random shapes


def degree_power(l_max: int, smoothness: float, law: str = "power") -> np.ndarray:
    """Relative power ``P(l)`` of each degree ``l = 0..l_max`` (0 for ``l < 2``).

    ``"power"``: ``l**-smoothness``; ``"exponential"``: ``exp(-smoothness (l - 1))``.
    """
    l_max = check_order(l_max)
    if not (np.isfinite(smoothness) and smoothness >= 0):
        raise CellsynthError(f"smoothness (gamma) must be a non-negative number, got {smoothness!r}")
    if law not in LAWS:
        raise CellsynthError(f"unknown coefficient law {law!r}; use one of {', '.join(LAWS)}")
    degrees = np.arange(l_max + 1, dtype=np.float64)
    degrees[0] = 1.0  # degree 0 carries the size, not the roughness
    power = degrees ** -float(smoothness) if law == "power" else np.exp(-float(smoothness) * (degrees - 1))
    power[:2] = 0.0
    return power


def random_coefficients(
    l_max: int, radius: float, smoothness: float, rng: np.random.Generator, law: str = "power",
) -> np.ndarray:
    """Random SH coefficients of a shape with mean radius ``radius`` (Eq. 7).

    See the module docstring for the law. The mean of the radial function over the sphere
    equals ``radius`` exactly.

    Parameters
    ----------
    l_max
        SH order ``L`` (the paper uses up to 20).
    radius
        Mean radius (µm), > 0.
    smoothness
        ``gamma`` >= 0; larger is smoother.
    rng
        Random generator.
    law
        ``"power"`` or ``"exponential"``.

    Returns
    -------
    numpy.ndarray
        float64 coefficients of length ``(l_max+1)**2``.

    Examples
    --------
    >>> c = random_coefficients(8, 9.0, 5.0, np.random.default_rng(0))
    >>> round(float(c[0] / np.sqrt(4 * np.pi)), 6)
    9.0
    """
    if not (np.isfinite(radius) and radius > 0):
        raise CellsynthError(f"radius must be a positive length in µm, got {radius!r}")
    power = degree_power(l_max, smoothness, law)
    degrees = np.repeat(np.arange(l_max + 1), 2 * np.arange(l_max + 1) + 1)
    weights = rng.standard_normal(degrees.size)
    coeffs = radius * _SQRT4PI * weights * np.sqrt(power[degrees] / (2 * degrees + 1))
    coeffs[0] = radius * _SQRT4PI
    return coeffs


def roughness(coeffs: np.ndarray, samples: int = 64) -> float:
    """Relative RMS deviation of the radial function from its mean, by Gauss quadrature.

    ``sqrt(mean((r - mean r)**2)) / mean r`` over the sphere; 0 for a sphere.
    """
    theta, phi, weights = sphere_quadrature(samples)
    radius = radius_at(coeffs, theta, phi)
    mean = float(np.sum(weights * radius) / (4 * np.pi))
    return float(np.sqrt(np.sum(weights * (radius - mean) ** 2) / (4 * np.pi)) / mean)


def sphere_quadrature(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gauss-Legendre (in cos theta) x uniform (in phi) quadrature on the unit sphere.

    Exact for spherical harmonics products up to total order ``n - 1``.

    Returns
    -------
    theta, phi, weights
        2D grids of shape ``(n, 2n)``; the weights sum to ``4 pi``.
    """
    x, w = np.polynomial.legendre.leggauss(n)
    phi = (np.arange(2 * n) + 0.5) * (np.pi / n)
    theta, phi = np.meshgrid(np.arccos(x), phi, indexing="ij")
    return theta, phi, np.repeat(w[:, None] * (np.pi / n), 2 * n, axis=1)


# --------------------------------------------------------------------------- voxelisation


def _check_transform(scale: Sequence[float], rotation: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    scale = np.asarray(scale, dtype=np.float64)
    if scale.shape != (3,) or not np.all(np.isfinite(scale) & (scale > 0)):
        raise CellsynthError(f"scale must be three positive factors (z y x), got {scale.tolist()}")
    rot = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)
    if rot.shape != (3, 3) or not np.allclose(rot @ rot.T, np.eye(3), atol=1e-6):
        raise CellsynthError("rotation must be an orthonormal 3x3 matrix acting on (z, y, x) vectors")
    return scale, rot


def _canonical(
    offsets: tuple[np.ndarray, np.ndarray, np.ndarray], scale: np.ndarray, rot: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distance and unit direction (z, y, x) of world offsets (µm) in the canonical frame.

    Element-wise operations in a fixed order (reproducible bit for bit). The centre gets
    the pole direction (1, 0, 0).
    """
    pz, py, px = offsets
    q = [(rot[0, k] * pz + rot[1, k] * py + rot[2, k] * px) / scale[k] for k in range(3)]
    dist = np.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2])
    centre = dist == 0
    safe = np.where(centre, 1.0, dist)
    uz = np.where(centre, 1.0, q[0] / safe)
    return dist, uz, q[1] / safe, q[2] / safe


def inside_sh(
    coeffs: np.ndarray, points_um: np.ndarray, center_um: Sequence[float], *,
    scale: Sequence[float] = (1.0, 1.0, 1.0), rotation: np.ndarray | None = None,
) -> np.ndarray:
    """Whether each point lies inside the shape: ``|q| <= r(q/|q|)`` (the definition).

    A direct, unaccelerated test; :func:`voxelize_sh` agrees with it on every voxel.

    Parameters
    ----------
    coeffs
        SH coefficients.
    points_um
        ``(N, 3)`` points (z, y, x) in µm.
    center_um
        Shape centre (z, y, x) in µm.
    scale, rotation
        Per-axis stretch of the canonical shape and its rotation (see the module docstring).

    Returns
    -------
    numpy.ndarray
        Boolean array of length N.
    """
    scale_arr, rot = _check_transform(scale, rotation)
    points = np.asarray(points_um, dtype=np.float64).reshape(-1, 3)
    center = np.asarray(center_um, dtype=np.float64)
    offsets = tuple(points[:, k] - center[k] for k in range(3))
    dist, uz, uy, ux = _canonical(offsets, scale_arr, rot)  # type: ignore[arg-type]
    return dist <= _radius_from_directions(coeffs, uz, uy, ux)


@functools.lru_cache(maxsize=16)
def _grid_tables(l_max: int, n_theta: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cell-centred polar angles' cosines, ``sin(theta)**m`` and the half-cell phase shifts."""
    theta = (np.arange(n_theta) + 0.5) * (np.pi / n_theta)
    m = np.arange(l_max + 1)
    sin_pow = np.sin(theta)[None, :] ** m[:, None]
    return np.cos(theta), sin_pow, np.exp(0.5j * (np.pi / n_theta) * m)


def _lipschitz(coeffs: np.ndarray, l_max: int) -> tuple[float, float]:
    """Bounds on ``|grad r|`` over the sphere (per radian) and on ``sum |c_lm| |Y_lm|``.

    ``sum_m |grad Y_lm|**2 = l(l+1)(2l+1)/(4 pi)`` and ``sum_m Y_lm**2 = (2l+1)/(4 pi)``
    with Cauchy-Schwarz give rigorous bounds per degree.
    """
    gradient = size = 0.0
    for l in range(l_max + 1):
        norm = float(np.linalg.norm(coeffs[l * l : (l + 1) ** 2]))
        gradient += norm * math.sqrt(l * (l + 1) * (2 * l + 1) / (4 * math.pi))
        size += norm * math.sqrt((2 * l + 1) / (4 * math.pi))
    return gradient, size


def _radius_grid(coeffs: np.ndarray, l_max: int, n_theta: int) -> np.ndarray:
    """``r`` on the cell-centred (n_theta, 2 n_theta) angular grid.

    Each row in phi is a trigonometric series, summed by an inverse real FFT (single
    threaded, so it does not stall when the cores are busy).
    """
    x, sin_pow, shift = _grid_tables(l_max, n_theta)
    ccos, csin = _split(coeffs, l_max)
    sum_cos, sum_sin = _legendre_sums(ccos, csin, x)
    n_phi = 2 * n_theta
    spectrum = np.zeros((n_theta, n_phi // 2 + 1), dtype=np.complex128)
    spectrum[:, : l_max + 1] = (((sum_cos - 1j * sum_sin) * sin_pow) * shift[:, None]).T * (n_phi / 2)
    spectrum[:, 0] = sum_cos[0] * n_phi
    return np.fft.irfft(spectrum, n=n_phi, axis=1)


def voxelize_sh(
    coeffs: np.ndarray, center_um: Sequence[float], voxel_size: VoxelSize, shape: Sequence[int], *,
    scale: Sequence[float] = (1.0, 1.0, 1.0), rotation: np.ndarray | None = None,
) -> tuple[tuple[slice, slice, slice], np.ndarray]:
    """Voxelise an SH shape: the voxels whose centres satisfy :func:`inside_sh`.

    Only the voxels of the shape's bounding box are visited. Most are decided from the
    radius on a fine angular grid with a rigorous margin (the Lipschitz bound of ``r``
    times the angular distance to the nearest grid node); those within the margin of the
    surface are tested against the exact radial function. The result is therefore
    identical to testing every voxel of the volume with :func:`inside_sh`.

    Voxel ``(k, j, i)`` has its centre at ``(k vz, j vy, i vx)`` µm.

    Parameters
    ----------
    coeffs
        SH coefficients (µm).
    center_um
        Centre (z, y, x) in µm.
    voxel_size
        Voxel size (z, y, x) in µm; anisotropic sizes are fine.
    shape
        Shape of the volume (Z, Y, X).
    scale, rotation
        Stretch and rotation of the canonical shape.

    Returns
    -------
    slices, mask
        The bounding box in the volume (clipped; possibly empty) and the boolean
        inside-mask of that box.
    """
    voxel = np.asarray(check_voxel_size(voxel_size))
    scale_arr, rot = _check_transform(scale, rotation)
    coeffs = np.asarray(coeffs, dtype=np.float64)
    l_max = order_of(coeffs)
    center = np.asarray(center_um, dtype=np.float64)
    shape = tuple(int(s) for s in shape)

    gradient, size = _lipschitz(coeffs, l_max)
    slack = 1e-9 * size + 1e-12
    if l_max == 0 or gradient == 0:
        n_theta, r_grid = 1, np.full((1, 2), coeffs[0] / _SQRT4PI)
        margin = slack
    else:
        # Finer grids narrow the band that needs the exact radius; their cost grows as
        # n_theta**2. Multiples of 64 keep the cached tables few.
        n_theta = 64 * int(np.clip(math.ceil(math.pi * gradient / (0.5 * voxel.min()) / 64), 1, 5))
        r_grid = _radius_grid(coeffs, l_max, n_theta)
        margin = gradient * (math.pi / n_theta) * (1 + 1e-6) + slack
    r_max = float(r_grid.max()) + margin
    empty = (slice(0, 0),) * 3, np.zeros((0, 0, 0), dtype=bool)
    if r_max < 0:
        return empty
    extent = r_max * np.sqrt(((rot * scale_arr[None, :]) ** 2).sum(axis=1))
    lo = np.maximum(np.floor((center - extent) / voxel).astype(int), 0)
    hi = np.minimum(np.ceil((center + extent) / voxel).astype(int) + 1, shape)
    if np.any(hi <= lo):
        return empty
    slices = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    check_memory(float(np.prod((hi - lo).astype(np.float64))) * VOXELIZE_BYTES_PER_VOXEL,
                 f"voxelising a shape over {'x'.join(map(str, hi - lo))} voxels", "use a smaller volume or shape")
    axes = [np.arange(a, b) * v - c for a, b, v, c in zip(lo, hi, voxel, center)]
    offsets = np.meshgrid(*axes, indexing="ij", sparse=True)
    offsets = tuple(np.broadcast_to(o, tuple(hi - lo)).ravel() for o in offsets)
    dist, uz, uy, ux = _canonical(offsets, scale_arr, rot)  # type: ignore[arg-type]

    step = math.pi / n_theta
    it = np.minimum((np.arccos(np.clip(uz, -1.0, 1.0)) / step).astype(np.int64), n_theta - 1)
    ip = (np.mod(np.arctan2(uy, ux), 2 * math.pi) / step).astype(np.int64) % (2 * n_theta)
    nearest = r_grid[it, ip]
    inside = dist <= nearest - margin
    unsure = np.flatnonzero(~inside & (dist <= nearest + margin))
    if unsure.size:
        inside[unsure] = dist[unsure] <= _radius_from_directions(coeffs, uz[unsure], uy[unsure], ux[unsure])
    return slices, inside.reshape(tuple(hi - lo))  # type: ignore[return-value]
