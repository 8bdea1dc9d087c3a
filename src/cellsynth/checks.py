"""Checks of plain values (seeds, counts, lengths, fractions, voxel sizes), shared by the library and the command line.

The functions raise :class:`~cellsynth.errors.CellsynthError` with a message that names the
value. The command line uses the same functions as ``type=`` of its flags
(:mod:`cellsynth.cli.options`), and its ``--config`` files go through those flags, so a
value is checked the same way wherever it comes from.

Examples
--------
>>> check_seed(3), check_number(0.5, "ada-p", low=0, high=1), check_integer(4, "batch", low=1)
(3, 0.5, 4)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from cellsynth.errors import CellsynthError

MAX_SEED = 2**63 - 1


def check_seed(seed: Any, name: str = "seed") -> int:
    """A random seed: a whole number from 0 to 2**63 - 1 (what :class:`numpy.random.SeedSequence` takes)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= MAX_SEED:
        raise CellsynthError(f"{name} must be a whole number from 0 to {MAX_SEED}, got {seed!r}")
    return int(seed)


def check_integer(value: Any, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """A whole number within ``[low, high]`` (either bound may be None)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise CellsynthError(f"{name} must be a whole number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise CellsynthError(f"{name} must be {_range_text(low, high)}, got {value!r}")
    return int(value)


def check_number(value: Any, name: str, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """A finite number within ``[low, high]`` (open at a bound with ``low_open`` / ``high_open``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise CellsynthError(f"{name} must be a finite number, got {value!r}")
    if (low is not None and (value < low or (low_open and value == low))) or \
            (high is not None and (value > high or (high_open and value == high))):
        raise CellsynthError(f"{name} must be {_range_text(low, high, low_open, high_open)}, got {value!r}")
    return float(value)


VOXEL_SIZE_RANGE_UM = (1e-4, 1e4)
"""Voxel sizes outside this range (0.1 nm to 1 cm) are refused as a mistake of units."""


def check_voxel_size(voxel_size: Any) -> tuple[float, float, float]:
    """Validate a voxel size and return it as a tuple of three positive floats (µm).

    Raises
    ------
    CellsynthError
        If it does not have three finite entries within :data:`VOXEL_SIZE_RANGE_UM`.
    """
    if isinstance(voxel_size, (str, bytes, Mapping)):
        raise CellsynthError(f"voxel size must be three numbers (z y x) in µm, got {voxel_size!r}")
    try:
        values = tuple(float(v) for v in voxel_size)
    except (TypeError, ValueError):
        raise CellsynthError(f"voxel size must be three numbers (z y x) in µm, got {voxel_size!r}") from None
    if len(values) != 3 or not all(math.isfinite(v) and v > 0 for v in values):
        raise CellsynthError(f"voxel size must be three positive numbers (z y x) in µm, got {voxel_size!r}")
    low, high = VOXEL_SIZE_RANGE_UM
    if not all(low <= v <= high for v in values):
        raise CellsynthError(f"voxel size {' '.join(f'{v:g}' for v in values)} µm is outside {low:g}-{high:g} µm; "
                             "give it in micrometres (z y x)")
    return values  # type: ignore[return-value]


def _range_text(low: float | None, high: float | None, low_open: bool = False, high_open: bool = False) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'above' if low_open else 'at least'} {low:g}"
    return f"{'below' if high_open else 'at most'} {high:g}"
