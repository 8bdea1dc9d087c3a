"""Value types of the command-line flags (``type=`` of argparse), built on :mod:`cellsynth.checks`.

A flag's type parses the text and checks the value with the same function the library uses,
so ``--seed -1`` is refused by every command alike, and ``--config`` files, whose values go
through the same types (:func:`cellsynth.cli.config_defaults`), cannot skip a check.

Examples
--------
>>> positive_int("4"), nonnegative("0.5"), seed("7")
(4, 0.5, 7)
>>> positive_int("0")
Traceback (most recent call last):
...
argparse.ArgumentTypeError: value must be at least 1, got 0
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from cellsynth.checks import check_integer, check_number, check_seed
from cellsynth.errors import CellsynthError


def integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """A flag type for whole numbers within ``[low, high]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        return _checked(check_integer, value, low=low, high=high)

    parse.__name__ = "whole number"
    return parse


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False) -> Callable[[str], float]:
    """A flag type for finite numbers within ``[low, high]`` (open where asked)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        return _checked(check_number, value, low=low, high=high, low_open=low_open, high_open=high_open)

    parse.__name__ = "number"
    return parse


def _checked(check: Callable, value: float, **bounds: object):
    try:
        return check(value, "value", **bounds) if bounds else check(value, "value")
    except CellsynthError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def seed(text: str) -> int:
    """A flag type for random seeds (:func:`cellsynth.checks.check_seed`)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    return _checked(check_seed, value)


positive_int = integer(low=1)
nonnegative_int = integer(low=0)
positive = number(low=0, low_open=True)
nonnegative = number(low=0)
finite = number()
fraction = number(0, 1)
percentile = number(0, 100)
