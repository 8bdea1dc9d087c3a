"""Checks of plain values (seeds, counts, lengths, fractions), shared by the library and the command line.

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


def _range_text(low: float | None, high: float | None, low_open: bool = False, high_open: bool = False) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'above' if low_open else 'at least'} {low:g}"
    return f"{'below' if high_open else 'at most'} {high:g}"
