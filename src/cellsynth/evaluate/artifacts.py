"""Artifact check: what a renderer draws that no microscope does.

Two kinds of artifact are typical of patch-wise generators, and neither shows in the
distribution distances:

- **Periodic patterns**: a checkerboard from the upsampling (a pixel shuffle repeats every
  2, 4 or 8 voxels) or a grid from the tiling (every patch step). They are sharp peaks in
  the power spectrum along an axis. :func:`spectral_peaks` finds them: the power of a
  frequency bin divided by the median power of its neighbouring bins.
- **A border band**: the first planes at a face of the volume differ from what follows
  (zero padding or an uncropped patch border). :func:`border_band` measures it: the
  mean of the first :data:`BAND_PLANES` planes against the straight line fitted to the
  plane means of the next :data:`BAND_REFERENCE_PLANES` and extended to the face, so that
  a smooth trend of the content (fewer cells near a face) is not a band.

:func:`artifact_check` compares a synthetic volume with a real one of the family: it flags
peaks that the real volume lacks at the same physical frequency (cycles/µm), and a border
band stronger than the real volume's own. Every volume is normalised by its own 1st and
99.9th percentiles first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cellsynth.errors import CellsynthError
from cellsynth.intensity import normalize_percentiles
from cellsynth.io import VoxelSize, check_voxel_size

PEAK_RATIO = 4.0
"""A spectral bin this many times above the median of its neighbours is a peak."""

PEAK_NEIGHBOURS = 4
"""Bins on each side of a frequency that give its reference level."""

PEAK_MIN_BIN = 4
"""Lowest frequency bin tested: periods of a quarter of the axis or more are image content."""

BAND_PLANES = 2
BAND_REFERENCE_PLANES = 6
BAND_LIMIT = 0.05
"""A border band is flagged above this (in normalised intensity) and above twice the real volume's."""


@dataclass(frozen=True)
class SpectralPeak:
    """A sharp peak in the power spectrum along one axis.

    Attributes
    ----------
    axis
        0, 1 or 2 (z, y, x).
    period_voxels
        Period of the pattern in voxels.
    frequency_per_um
        Its frequency in cycles/µm.
    ratio
        Power of the bin over the median power of its neighbouring bins.
    """

    axis: int
    period_voxels: float
    frequency_per_um: float
    ratio: float


def axis_power_spectrum(image: Any, axis: int) -> np.ndarray:
    """Mean 1D power spectrum along ``axis`` (each line's mean removed), bins 0 .. n // 2 in cycles/voxel ``k / n``."""
    lines = np.moveaxis(np.asarray(image, dtype=np.float64), axis, -1)
    lines = lines - lines.mean(axis=-1, keepdims=True)
    return (np.abs(np.fft.rfft(lines, axis=-1)) ** 2).reshape(-1, lines.shape[-1] // 2 + 1).mean(axis=0)


def _peak_ratios(power: np.ndarray) -> np.ndarray:
    """Each bin's power over the median of its neighbours (NaN for bins below PEAK_MIN_BIN)."""
    ratios = np.full(power.shape, np.nan)
    for k in range(PEAK_MIN_BIN, len(power)):
        neighbours = np.r_[power[max(1, k - PEAK_NEIGHBOURS):k], power[k + 1:k + 1 + PEAK_NEIGHBOURS]]
        reference = np.median(neighbours)
        ratios[k] = power[k] / reference if reference > 0 else (np.inf if power[k] > 0 else 1.0)
    return ratios


def spectral_peaks(image: Any, voxel_size: VoxelSize, *, min_ratio: float = PEAK_RATIO,
                   normalize: bool = True) -> list[SpectralPeak]:
    """Sharp peaks of the power spectra along z, y and x, strongest first.

    Parameters
    ----------
    image
        Volume (Z, Y, X); axes shorter than ``4 * PEAK_MIN_BIN`` voxels are skipped.
    voxel_size
        Voxel size in µm (z, y, x), for the frequencies in cycles/µm.
    min_ratio
        Smallest ratio of a bin to its neighbours that counts as a peak.
    normalize
        Normalise the image by its 1st and 99.9th percentiles first.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> image = rng.random((8, 64, 64)) + 0.5 * (np.arange(64) % 2)  # a period-2 pattern along x
    >>> [(p.axis, p.period_voxels) for p in spectral_peaks(image, (1.0, 0.5, 0.5))]
    [(2, 2.0)]
    """
    voxel = check_voxel_size(voxel_size)
    image = normalize_percentiles(image) if normalize else np.asarray(image, dtype=np.float32)
    peaks = []
    for axis, n in enumerate(image.shape):
        if n < 4 * PEAK_MIN_BIN:
            continue
        ratios = _peak_ratios(axis_power_spectrum(image, axis))
        for k in np.flatnonzero(ratios >= min_ratio):
            peaks.append(SpectralPeak(axis, float(n / k), float(k / n / voxel[axis]), float(ratios[k])))
    return sorted(peaks, key=lambda p: -p.ratio)


def _ratio_at(image: np.ndarray, axis: int, frequency_per_um: float, voxel: VoxelSize) -> float:
    """The largest peak ratio of ``image`` within one bin of a physical frequency (0 if out of range)."""
    n = image.shape[axis]
    k = frequency_per_um * voxel[axis] * n
    if n < 4 * PEAK_MIN_BIN or k > n // 2 + 0.5:
        return 0.0
    ratios = _peak_ratios(axis_power_spectrum(image, axis))
    near = ratios[max(0, int(np.floor(k)) - 1):int(np.ceil(k)) + 2]
    near = near[np.isfinite(near)]
    return float(near.max()) if near.size else 0.0


def border_band(image: Any, *, normalize: bool = True) -> np.ndarray:
    """Strength of a band along each face: how far the first planes leave the trend of the next ones.

    For each face, the plane means of planes ``BAND_PLANES .. BAND_PLANES +
    BAND_REFERENCE_PLANES`` are fitted by a straight line; the result is the absolute
    difference between the mean of the first ``BAND_PLANES`` plane means and that line at
    those planes.

    Returns
    -------
    numpy.ndarray
        ``(3, 2)``: axes z, y, x; the face at 0 and the face at the end. In normalised
        intensity (0-1) when ``normalize``. Axes shorter than the planes used give 0.
    """
    image = normalize_percentiles(image) if normalize else np.asarray(image, dtype=np.float32)
    out = np.zeros((3, 2))
    used = BAND_PLANES + BAND_REFERENCE_PLANES
    for axis, n in enumerate(image.shape):
        if n < 2 * used:
            continue
        means = image.mean(axis=tuple(a for a in range(3) if a != axis), dtype=np.float64)
        for side, planes in enumerate((means, means[::-1])):
            slope, intercept = np.polyfit(np.arange(BAND_PLANES, used), planes[BAND_PLANES:used], 1)
            trend = intercept + slope * np.arange(BAND_PLANES)
            out[axis, side] = abs(planes[:BAND_PLANES].mean() - trend.mean())
    return out


def artifact_check(synthetic: Any, real: Any, voxel_size: VoxelSize,
                   real_voxel_size: VoxelSize | None = None) -> dict[str, Any]:
    """Spectral peaks and border bands of a synthetic volume that the real volume lacks.

    Parameters
    ----------
    synthetic
        Synthetic volume (Z, Y, X).
    real
        A real volume of the family (any shape).
    voxel_size, real_voxel_size
        Voxel sizes in µm (the real one defaults to the synthetic one).

    Returns
    -------
    dict
        ``peaks`` (the synthetic peaks whose frequency bin in the real volume is less than
        half as strong, as dicts of :class:`SpectralPeak`), ``border_band`` and
        ``real_border_band`` (largest over the faces), ``flagged`` (any peak, or a band
        above both :data:`BAND_LIMIT` and twice the real one) and ``reasons``.

    Raises
    ------
    CellsynthError
        If either volume is not 3D.
    """
    voxel = check_voxel_size(voxel_size)
    real_voxel = check_voxel_size(real_voxel_size or voxel)
    synthetic, real = normalize_percentiles(synthetic), normalize_percentiles(real)
    if synthetic.ndim != 3 or real.ndim != 3:
        raise CellsynthError("the artifact check needs 3D volumes (Z, Y, X)")
    peaks = [p for p in spectral_peaks(synthetic, voxel, normalize=False)
             if _ratio_at(real, p.axis, p.frequency_per_um, real_voxel) < p.ratio / 2]
    band, real_band = float(border_band(synthetic, normalize=False).max()), float(border_band(real, normalize=False).max())
    reasons = [f"spectral peak along {'zyx'[p.axis]}: period {p.period_voxels:.3g} voxels, {p.ratio:.1f}x its "
               "neighbours" for p in peaks[:5]]
    if band > max(BAND_LIMIT, 2 * real_band):
        reasons.append(f"border band {band:.3f} (real {real_band:.3f}, limit {max(BAND_LIMIT, 2 * real_band):.3f})")
    return {"peaks": [asdict(p) for p in peaks], "border_band": band, "real_border_band": real_band,
            "flagged": bool(reasons), "reasons": reasons}
