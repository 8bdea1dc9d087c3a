"""Seeds and splits of a data set's samples.

Every sample is one task with its own seed, spawned from the data set seed with
:class:`numpy.random.SeedSequence` (``SeedSequence(seed, spawn_key=(index,))``), so a
sample's files do not depend on how many workers made it, in which order, or whether the
run was interrupted and resumed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from cellsynth.errors import CellsynthError

SPLIT_NAMES = ("train", "val", "test")

DEFAULT_SPLITS = (0.8, 0.1, 0.1)

_SAMPLE_PREFIX = "sample_"


def sample_name(index: int) -> str:
    """Folder name of sample ``index`` (``sample_0000``, ..., wider beyond 9999)."""
    return f"{_SAMPLE_PREFIX}{index:04d}"


def sample_seeds(seed: int, index: int) -> tuple[np.random.SeedSequence, int]:
    """The simulation seed sequence and the synthesis seed of sample ``index``.

    The sample's sequence is ``SeedSequence(seed, spawn_key=(index,))``, i.e. child
    ``index`` of ``SeedSequence(seed).spawn(...)``; its children 0 and 1 seed simulation
    and synthesis. All quality levels of a sample share the synthesis seed, so they differ
    by alpha only.
    """
    simulation = np.random.SeedSequence(seed, spawn_key=(index, 0))
    synthesis = np.random.SeedSequence(seed, spawn_key=(index, 1))
    return simulation, int(synthesis.generate_state(1, np.uint32)[0])


def assign_splits(count: int, fractions: Sequence[float] = DEFAULT_SPLITS) -> list[str]:
    """Assign ``count`` samples to train / val / test with the given fractions.

    Samples are independent draws, so the assignment need not be random. Sample ``i``
    goes to the split furthest below its quota ``(i + 1) * fraction``, which keeps every
    prefix within one sample of the fractions: growing a data set never moves a sample to
    another split.

    Examples
    --------
    >>> assign_splits(10, (0.8, 0.1, 0.1)).count("train")
    8
    """
    fractions = check_split_fractions(fractions)
    taken = [0, 0, 0]
    result = []
    for i in range(count):
        deficits = [(i + 1) * f - t for f, t in zip(fractions, taken)]
        best = int(np.argmax(deficits))
        taken[best] += 1
        result.append(SPLIT_NAMES[best])
    return result


def check_split_fractions(fractions: Any) -> tuple[float, float, float]:
    """Validate train/val/test fractions: three non-negative numbers summing to 1."""
    if isinstance(fractions, str):
        fractions = fractions.split(",")
    try:
        values = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        raise CellsynthError(f"split fractions must be three numbers such as 0.8,0.1,0.1, got {fractions!r}") from None
    if len(values) != 3 or not all(math.isfinite(v) and v >= 0 for v in values) or abs(sum(values) - 1) > 1e-6:
        raise CellsynthError(f"split fractions must be three non-negative numbers summing to 1 "
                             f"(train,val,test such as 0.8,0.1,0.1), got {fractions!r}")
    return values  # type: ignore[return-value]
