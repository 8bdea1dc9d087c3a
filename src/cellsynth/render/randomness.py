"""Counter-based randomness: random fields that are fixed functions of a seed and the global voxel.

Synthesis runs patch by patch, so every random value (noise, brightness fields) is computed
from the seed and the voxel's **global** coordinates with an integer hash instead of drawn
from a stream: any tiling of a volume, in any order, gives the same values bit for bit.
"""

from __future__ import annotations

import math
from typing import Any

import torch

# 32-bit arithmetic in int32 tensors: products wrap modulo 2**32 and right shifts are made
# logical by masking (tests compare with numpy uint32).

def _srl(x: torch.Tensor, k: int) -> torch.Tensor:
    return (x >> k) & ((1 << (32 - k)) - 1)


def mix32(x: torch.Tensor) -> torch.Tensor:
    """The "lowbias32" integer hash (C. Wellons) on int32 tensors."""
    x = x ^ _srl(x, 16)
    x = x * 0x7FEB352D
    x = x ^ _srl(x, 15)
    x = x * (0x846CA68B - (1 << 32))
    return x ^ _srl(x, 16)


def _as_int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _hash_grid(seed: int, stream: int, coords: list[torch.Tensor]) -> torch.Tensor:
    """Hash of (seed, stream, z, y, x) over the grid spanned by three coordinate vectors."""
    keys = []
    for axis, c in enumerate(coords):
        salt = _as_int32(seed * 0x9E3779B1 + stream * 0x85EBCA77 + (axis + 1) * 0xC2B2AE3D)
        keys.append(mix32(mix32(c.to(torch.int32) ^ salt)))
    zy = mix32(keys[0][:, None] ^ keys[1][None, :])
    return mix32(zy[:, :, None] ^ keys[2][None, None, :])


def _unit(bits: torch.Tensor, n_bits: int) -> torch.Tensor:
    """Uniform floats in (0, 1) from non-negative integers below 2**n_bits."""
    return (bits.to(torch.float32) + 0.5) * (1.0 / (1 << n_bits))


def _coords(origin: list[int], shape: tuple[int, ...], device: Any) -> list[torch.Tensor]:
    return [torch.arange(o, o + s, dtype=torch.int64, device=device) for o, s in zip(origin, shape)]


def voxel_normal(seed: int, origin: list[int], shape: tuple[int, ...], device: Any = "cpu") -> torch.Tensor:
    """Standard normal values, one per global voxel, for the patch at ``origin``.

    Parameters
    ----------
    seed
        Different seeds give independent values.
    origin
        Corner (z, y, x) of the patch in the whole volume, in voxels.
    shape
        Patch shape (Z, Y, X).
    device
        Torch device of the result.

    Returns
    -------
    torch.Tensor
        float32 ``shape``. One hash per pair of voxels (x = 2j, 2j + 1) gives two 16-bit
        uniforms and, by Box-Muller, the pair's two normals (tails are cut at 4.8 sigma).

    Examples
    --------
    >>> whole = voxel_normal(1, [0, 0, 0], (2, 4, 4))
    >>> bool((voxel_normal(1, [1, 2, 1], (1, 2, 3)) == whole[1:, 2:, 1:]).all())
    True
    """
    coords = _coords(origin, shape, device)
    x0 = origin[2] // 2
    pairs = torch.arange(x0, (origin[2] + shape[2] - 1) // 2 + 1, dtype=torch.int64, device=device)
    h = _hash_grid(seed, 0, [coords[0], coords[1], pairs])
    radius = torch.sqrt(-2.0 * torch.log(_unit(_srl(h, 16), 16)))
    angle = (2.0 * math.pi) * _unit(h & 0xFFFF, 16)
    normal = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=-1).reshape(*h.shape[:2], -1)
    start = origin[2] - 2 * x0
    return normal[:, :, start:start + shape[2]]


def value_noise(seed: int, stream: int, origin: list[int], shape: tuple[int, ...], cells: tuple[int, ...],
                amplitude: float, *, smooth: bool, device: Any = "cpu") -> torch.Tensor:
    """A smooth random field ``amplitude * v``, ``v`` value noise in [-1, 1], for the patch at ``origin``.

    Parameters
    ----------
    seed, stream
        Seed and stream number: different pairs give independent fields.
    origin, shape
        Corner (z, y, x) of the patch in the whole volume and its shape, in voxels.
    cells
        Lattice spacing (z, y, x) in voxels: the field's correlation length.
    amplitude
        Largest absolute value.
    smooth
        Smoothstep interpolation between lattice nodes (else linear).
    device
        Torch device of the result.

    Lattice values are hashed from global lattice indices and interpolated axis by axis; a
    voxel's weights depend only on its global coordinate modulo the cell size, so every
    tiling gives the same field.
    """
    first = [o // s for o, s in zip(origin, cells)]
    last = [(o + n - 1) // s + 1 for o, n, s in zip(origin, shape, cells)]
    lattice = [torch.arange(f, l + 1, dtype=torch.int64, device=device) for f, l in zip(first, last)]
    values = _unit(_srl(_hash_grid(seed, stream, lattice), 8), 24) * (2.0 * amplitude) - amplitude
    for axis in (2, 1, 0):
        s = cells[axis]
        if s > 1:
            t = torch.arange(s, dtype=torch.float32, device=device) / s
            weight = (t * t * (3 - 2 * t) if smooth else t).view([s if a == axis + 1 else 1 for a in range(4)])
            n = values.shape[axis] - 1
            lo = values.narrow(axis, 0, n).unsqueeze(axis + 1)
            hi = values.narrow(axis, 1, n).unsqueeze(axis + 1)
            merged = list(values.shape)
            merged[axis] = n * s
            values = torch.lerp(lo, hi, weight).reshape(merged)
        values = values.narrow(axis, origin[axis] - first[axis] * s, shape[axis])
    return values
