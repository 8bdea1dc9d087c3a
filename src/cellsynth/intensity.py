"""Intensity normalization: the package's one convention for comparing and feeding images.

Microscope images come in any range (8 or 16 bit, arbitrary gain and offset). Before a
metric compares two images, before training sees a real image, and before automatic
annotation or a segmenter works on one, each image is mapped by its own low and high
percentiles (1st and 99.9th by default) to [0, 1] and clipped. This makes every use
invariant to a positive gain and an offset of the image, and keeps a few hot pixels from
setting the scale.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cellsynth.errors import CellsynthError

DEFAULT_PERCENTILES: tuple[float, float] = (1.0, 99.9)
"""Percentiles mapped to 0 and 1."""


def normalize_percentiles(image: Any, low: float = 1.0, high: float = 99.9, mask: Any = None) -> np.ndarray:
    """Map the ``low`` and ``high`` percentiles of ``image`` to 0 and 1 and clip to [0, 1].

    Where the two percentiles coincide (an image that is mostly one value) the minimum and
    maximum are used instead.

    Parameters
    ----------
    image
        Any real-valued array.
    low, high
        Percentiles in [0, 100] with ``low < high``.
    mask
        Optional boolean array of the image's shape: the percentiles are taken over these
        voxels only (the whole image is still mapped).

    Returns
    -------
    numpy.ndarray
        float32 array of the image's shape with values in [0, 1].

    Raises
    ------
    CellsynthError
        If the image (or its masked part) is constant or holds NaN or infinity, or the
        percentiles are invalid.

    Examples
    --------
    >>> normalize_percentiles(np.array([0.0, 5.0, 10.0]), 0, 100)
    array([0. , 0.5, 1. ], dtype=float32)
    """
    if not 0.0 <= low < high <= 100.0:
        raise CellsynthError(f"percentiles must satisfy 0 <= low < high <= 100, got {low} and {high}")
    image = np.asarray(image)
    values = image[mask] if mask is not None else image
    if not np.isfinite(values).all():
        raise CellsynthError("the image contains NaN or infinite values; replace them (e.g. with 0) first")
    lo, hi = (float(v) for v in np.percentile(values, [low, high]))
    if hi <= lo:
        lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        raise CellsynthError(f"the image is constant ({lo:g}); there is no intensity range to normalize "
                             "(check that the right image or channel was given)")
    out = image.astype(np.float32)  # a copy
    out -= np.float32(lo)
    out *= np.float32(1.0 / (hi - lo))
    return np.clip(out, 0.0, 1.0, out=out)


def normalize(image: Any, percentiles: tuple[float, float] | None = DEFAULT_PERCENTILES) -> np.ndarray:
    """:func:`normalize_percentiles` with ``(low, high)``, or the raw values as float32 for None.

    Parameters
    ----------
    image
        Any real-valued array.
    percentiles
        ``(low, high)`` percentiles mapped to 0 and 1, or None to keep the raw values
        (for images that are normalized already, or to compare raw intensities).

    Returns
    -------
    numpy.ndarray
        float32 array of the image's shape.

    Raises
    ------
    CellsynthError
        If the image holds NaN or infinity, or (with percentiles) is constant.

    Examples
    --------
    >>> normalize(np.array([0, 50, 100], np.uint8), (0, 100)).tolist()
    [0.0, 0.5, 1.0]
    >>> normalize(np.array([0, 50, 100], np.uint8), None).tolist()
    [0.0, 50.0, 100.0]
    """
    if percentiles is None:
        image = np.asarray(image, dtype=np.float32)
        if not np.isfinite(image).all():
            raise CellsynthError("the image contains NaN or infinite values; replace them (e.g. with 0) first")
        return image
    low, high = percentiles
    return normalize_percentiles(image, low, high)
