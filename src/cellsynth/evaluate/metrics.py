"""Realism metrics for synthetic 3D microscopy (section 4 of Eschweiler et al. 2021).

Two families:

*Paired* metrics compare a synthetic image with the real image it was generated for
(same shape, same structures): :func:`nrmse`, :func:`ssim` and :func:`zncc`, as in the
paper's Table 1.

*Distribution* metrics need no voxel correspondence and work for simulated masks, where
no paired real image exists: :func:`histogram_distance` (Wasserstein-1 between intensity
histograms), :func:`spectrum_distance` (log radially averaged power spectra of xy slices)
and :func:`kid_score` (a KID-style score on hand-crafted filter-bank features).

Normalization: unless told otherwise (``percentiles=None``), each image is first mapped
by its own 1st and 99.9th percentiles to [0, 1] and clipped
(:func:`cellsynth.intensity.normalize_percentiles`).
Every metric is therefore invariant to a positive gain and an offset of either image.

Every function may be restricted to a mask. User errors (different shapes, constant
images, empty masks, images smaller than the SSIM window) raise
:class:`~cellsynth.errors.CellsynthError`; no metric ever returns NaN.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided
from threadpoolctl import threadpool_limits

from cellsynth.errors import CellsynthError
from cellsynth.intensity import DEFAULT_PERCENTILES, normalize
from cellsynth.io import VoxelSize, check_voxel_size
from cellsynth.tiling import PatchGrid, make_grid

SSIM_SIGMA = 1.5
"""Standard deviation (voxels) of the Gaussian SSIM window (Wang et al. 2004)."""

SSIM_TRUNCATE = 3.5
"""Window radius in sigmas, as scikit-image: ``int(3.5 * 1.5 + 0.5) = 5``, an 11-tap window."""



# --------------------------------------------------------------------------- input checks


def _check_pair(real: Any, synthetic: Any) -> tuple[np.ndarray, np.ndarray]:
    real, synthetic = np.asarray(real), np.asarray(synthetic)
    if real.shape != synthetic.shape:
        raise CellsynthError(
            f"the real image {real.shape} and the synthetic image {synthetic.shape} differ in shape; "
            "paired metrics need images of the same (Z, Y, X) shape (crop or resample one of them)")
    return real, synthetic


def _check_mask(mask: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise CellsynthError(f"the mask {mask.shape} and the image {tuple(shape)} differ in shape")
    mask = mask != 0
    if not mask.any():
        raise CellsynthError("the mask has no voxels; give a mask with at least one nonzero voxel")
    return mask


def _prepare(real: Any, synthetic: Any, mask: Any, percentiles: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Check a pair, then normalize both images (or cast them to float32)."""
    real, synthetic = _check_pair(real, synthetic)
    mask = _check_mask(mask, real.shape)
    with ThreadPoolExecutor(2) as pool:  # the percentile selections release the GIL
        real_n, synthetic_n = pool.map(lambda image: normalize(image, percentiles), (real, synthetic))
    return real_n, synthetic_n, mask


def _slabs(real: np.ndarray, synthetic: np.ndarray, mask: np.ndarray | None, voxels: int = 1 << 20):
    """Yield the voxels of both images (float64, masked) slab by slab along z."""
    step = max(1, voxels // max(1, real[0].size))
    for z0 in range(0, real.shape[0], step):
        r = real[z0:z0 + step].astype(np.float64)
        s = synthetic[z0:z0 + step].astype(np.float64)
        if mask is not None:
            m = mask[z0:z0 + step]
            r, s = r[m], s[m]
        yield r.ravel(), s.ravel()


def pair_statistics(real: np.ndarray, synthetic: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """Means, centred second moments, squared error and range of a (masked) image pair.

    Two passes over z-slabs in float64 (means first, then centred sums), so large float32
    volumes need no full float64 copy and the variances do not suffer from cancellation.
    Keys: ``n``, ``mean_real``, ``mean_synthetic``, ``var_real``, ``var_synthetic``,
    ``cov``, ``mse``, ``mean_square_real``, ``min_real``, ``max_real``.
    """
    with threadpool_limits(1, user_api="blas"):  # BLAS threads on 1M-element dot products only contend
        return _pair_statistics(real, synthetic, mask)


def _pair_statistics(real: np.ndarray, synthetic: np.ndarray, mask: np.ndarray | None) -> dict[str, float]:
    n = 0
    sum_r = sum_s = 0.0
    lo, hi = np.inf, -np.inf
    for r, s in _slabs(real, synthetic, mask):
        if r.size:
            n += r.size
            sum_r += float(r.sum())
            sum_s += float(s.sum())
            lo, hi = min(lo, float(r.min())), max(hi, float(r.max()))
    mr, ms = sum_r / n, sum_s / n
    vr = vs = cov = sq = 0.0
    for r, s in _slabs(real, synthetic, mask):
        dr, ds = r - mr, s - ms
        vr += float(dr @ dr)
        vs += float(ds @ ds)
        cov += float(dr @ ds)
        d = r - s
        sq += float(d @ d)
    return {"n": n, "mean_real": mr, "mean_synthetic": ms, "var_real": vr / n, "var_synthetic": vs / n,
            "cov": cov / n, "mse": sq / n, "mean_square_real": vr / n + mr * mr, "min_real": lo, "max_real": hi}


def _nrmse_from(stats: Mapping[str, float], normalization: str) -> float:
    if normalization == "range":
        denom = stats["max_real"] - stats["min_real"]
    elif normalization == "euclidean":
        denom = float(np.sqrt(stats["mean_square_real"]))
    else:
        raise CellsynthError(f"unknown NRMSE normalization {normalization!r}; use 'range' or 'euclidean'")
    if denom == 0.0:
        raise CellsynthError("the real image is constant (zero) inside the evaluated region; NRMSE is undefined")
    return float(np.sqrt(stats["mse"]) / denom)


def _zncc_from(stats: Mapping[str, float]) -> float:
    for side in ("real", "synthetic"):
        if stats[f"var_{side}"] <= 1e-24 * max(1.0, stats[f"mean_{side}"] ** 2):
            raise CellsynthError(f"the {side} image is constant inside the evaluated region; ZNCC is undefined for it")
    return float(stats["cov"] / np.sqrt(stats["var_real"] * stats["var_synthetic"]))


# --------------------------------------------------------------------------- paired metrics


def nrmse(real: Any, synthetic: Any, mask: Any = None, *, normalization: str = "range",
          percentiles: Any = DEFAULT_PERCENTILES) -> float:
    """Normalized root mean square error.

    Parameters
    ----------
    real, synthetic
        Volumes of the same shape.
    mask
        Optional region (nonzero voxels) to evaluate.
    normalization
        ``"range"``: RMSE divided by the real image's range (max - min inside the mask);
        ``"euclidean"``: ``||real - synthetic|| / ||real||``. Both match
        :func:`skimage.metrics.normalized_root_mse` (``"min-max"`` and ``"euclidean"``).
    percentiles
        Percentile normalization applied to both images first; None to use raw values.

    Returns
    -------
    float
        0 for identical images; lower is better.
    """
    real, synthetic, mask = _prepare(real, synthetic, mask, percentiles)
    return _nrmse_from(pair_statistics(real, synthetic, mask), normalization)


def zncc(real: Any, synthetic: Any, mask: Any = None, *, percentiles: Any = DEFAULT_PERCENTILES) -> float:
    """Zero-mean normalized cross-correlation: the mean of the product of z-scores.

    Equals Pearson's correlation coefficient (in [-1, 1]; 1 is best). Invariant to a positive
    gain and offset of either image.

    Raises
    ------
    CellsynthError
        If either image is constant inside the evaluated region.
    """
    real, synthetic, mask = _prepare(real, synthetic, mask, percentiles)
    return _zncc_from(pair_statistics(real, synthetic, mask))


def gaussian_taps(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE) -> np.ndarray:
    """The 1D Gaussian window of :func:`scipy.ndimage.gaussian_filter` (float64, sums to 1)."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * x * x / sigma**2)
    return taps / taps.sum()


def _band_matrix(taps: np.ndarray, n_out: int) -> np.ndarray:
    """(n_out, n_out + k - 1) matrix whose rows are shifted copies of ``taps``."""
    k = len(taps)
    band = np.zeros((n_out, n_out + k - 1), dtype=np.float32)
    for i in range(n_out):
        band[i, i:i + k] = taps
    return band


def _correlate_valid(volume: np.ndarray, taps: np.ndarray, axis: int, block: int = 32) -> np.ndarray:
    """Correlate a 3D float32 volume with ``taps`` along ``axis``; keep the 'valid' part only.

    Each run of ``block`` outputs is a small dense matrix product over ``block + k - 1``
    inputs (BLAS), several times faster than a scalar sliding window. Borders are never
    padded: the output is shorter by ``k - 1`` along ``axis``.
    """
    k = len(taps)
    n_out = volume.shape[axis] - k + 1
    if axis == 0:
        band = _band_matrix(taps, n_out)
        flat = np.ascontiguousarray(volume).reshape(volume.shape[0], -1)
        return (band @ flat).reshape((n_out,) + volume.shape[1:])
    b = min(block, n_out)
    band = _band_matrix(taps, b)
    shape = list(volume.shape)
    shape[axis] = n_out
    out = np.empty(shape, dtype=np.float32)
    n_blocks = n_out // b
    vs, os_ = volume.strides, out.strides
    z, y, x = volume.shape
    if axis == 1:
        windows = as_strided(volume, (z, n_blocks, b + k - 1, x), (vs[0], b * vs[1], vs[1], vs[2]), writeable=False)
        target = as_strided(out, (z, n_blocks, b, x), (os_[0], b * os_[1], os_[1], os_[2]))
        np.matmul(band, windows, out=target)
        if n_blocks * b < n_out:
            out[:, n_out - b:] = band @ volume[:, n_out - b:]
    else:
        windows = as_strided(volume, (z, y, n_blocks, b + k - 1), (vs[0], vs[1], b * vs[2], vs[2]), writeable=False)
        target = as_strided(out, (z, y, n_blocks, b), (os_[0], os_[1], b * os_[2], os_[2]))
        np.matmul(windows, band.T, out=target)
        if n_blocks * b < n_out:
            out[:, :, n_out - b:] = volume[:, :, n_out - b:] @ band.T
    return out


def _gaussian_valid(volume: np.ndarray, taps: np.ndarray) -> np.ndarray:
    for axis in range(3):
        volume = _correlate_valid(volume, taps, axis)
    return volume


def _ssim_chunk(x: np.ndarray, y: np.ndarray, mask: np.ndarray | None, taps: np.ndarray,
                c1: float, c2: float) -> tuple[float, int]:
    """Sum of the SSIM map over the valid part of one z-slab (and the voxel count).

    Four filtered volumes suffice: the SSIM denominator needs only ``vx + vy``, so
    ``G(x**2 + y**2)`` replaces the separate ``G(x**2)`` and ``G(y**2)``.
    """
    ux, uy = _gaussian_valid(x, taps), _gaussian_valid(y, taps)
    squares = x * x
    squares += y * y
    sum_sq = _gaussian_valid(squares, taps)
    del squares
    cross = _gaussian_valid(x * y, taps)
    uxuy = ux * uy
    ux *= ux
    uy *= uy
    ux += uy  # ux**2 + uy**2
    sum_sq -= ux  # vx + vy
    sum_sq += c2
    ux += c1
    sum_sq *= ux  # denominator
    cross -= uxuy  # covariance
    cross *= 2.0
    cross += c2
    uxuy *= 2.0
    uxuy += c1
    uxuy *= cross  # numerator
    uxuy /= sum_sq
    if mask is None:
        return float(uxuy.sum(dtype=np.float64)), uxuy.size
    return float(uxuy[mask].sum(dtype=np.float64)), int(mask.sum())


def check_ssim_size(shape: tuple[int, ...], sigma: float = SSIM_SIGMA) -> None:
    """Refuse volumes with a side shorter than the SSIM window (11 voxels for sigma 1.5)."""
    k = len(gaussian_taps(sigma))
    if min(shape) < k:
        raise CellsynthError(f"the images {tuple(shape)} are too small for the {k}-voxel SSIM window; every side "
                             f"needs at least {k} voxels (use larger crops)")


def ssim(real: Any, synthetic: Any, mask: Any = None, *, percentiles: Any = DEFAULT_PERCENTILES,
         data_range: float = 1.0, sigma: float = SSIM_SIGMA, workers: int | None = None,
         slab: int = 16) -> float:
    """Mean structural similarity (Wang et al. 2004) of two 3D volumes.

    Gaussian window (``sigma`` voxels, truncated at 3.5 sigma), population covariances,
    K1 = 0.01, K2 = 0.03. The mean runs over voxels at least the window radius from every
    border, like :func:`skimage.metrics.structural_similarity` with
    ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``, which it equals
    (to float32 rounding, below 1e-5). The window is in voxels, not µm, as in the paper.

    The filters are separable and evaluated in float32 as small banded matrix products
    over z-slabs, in parallel threads: several times faster than scikit-image.

    Parameters
    ----------
    real, synthetic
        Volumes of the same shape, each side at least the window size (11 voxels).
    mask
        Optional region: the mean runs over mask voxels at least the window radius from
        the border.
    percentiles
        Percentile normalization (default 1, 99.9) or None for raw values.
    data_range
        Range of the (normalized) intensities: 1.
    sigma
        Window standard deviation in voxels.
    workers
        Threads (default: the CPU count, at most 4).
    slab
        Output z-planes per work unit.

    Returns
    -------
    float
        SSIM in [-1, 1]; 1 for identical images.
    """
    real, synthetic = _check_pair(real, synthetic)
    if real.ndim != 3:
        raise CellsynthError(f"SSIM needs 3D (Z, Y, X) volumes, got shape {real.shape}")
    check_ssim_size(real.shape, sigma)
    taps = gaussian_taps(sigma).astype(np.float32)
    k = len(taps)
    r = k // 2
    mask = _check_mask(mask, real.shape)
    x, y = normalize(real, percentiles), normalize(synthetic, percentiles)
    if percentiles is None:
        x, y = np.ascontiguousarray(x), np.ascontiguousarray(y)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    zs = real.shape[0]
    bounds = [(z0, min(z0 + slab, zs - 2 * r)) for z0 in range(0, zs - 2 * r, slab)]

    def work(bound: tuple[int, int]) -> tuple[float, int]:
        z0, z1 = bound
        m = None if mask is None else mask[z0 + r:z1 + r, r:-r, r:-r]
        return _ssim_chunk(x[z0:z1 + 2 * r], y[z0:z1 + 2 * r], m, taps, c1, c2)

    workers = workers or min(os.cpu_count() or 1, 4)
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(work, bounds))
    total, count = sum(p[0] for p in parts), sum(p[1] for p in parts)
    if count == 0:
        raise CellsynthError(f"the mask has no voxels at least {r} voxels from the border, where SSIM is defined")
    return total / count


# --------------------------------------------------------------------------- distribution metrics


def intensity_histogram(image: Any, mask: Any = None, *, bins: int = 256,
                        percentiles: Any = DEFAULT_PERCENTILES) -> np.ndarray:
    """Normalized intensity histogram (sums to 1) over [0, 1] in ``bins`` equal bins.

    Values outside [0, 1] (possible with ``percentiles=None``) count in the end bins.
    """
    image = np.asarray(image)
    mask = _check_mask(mask, image.shape)
    values = normalize(image, percentiles)
    values = values[mask] if mask is not None else values.ravel()
    hist = np.zeros(bins, dtype=np.int64)
    step = 1 << 20  # cache-sized pieces: bincount wants intp indices
    for start in range(0, values.size, step):
        index = (values[start:start + step] * np.float32(bins)).astype(np.intp)
        np.clip(index, 0, bins - 1, out=index)
        hist += np.bincount(index, minlength=bins)
    return hist / hist.sum()


def wasserstein_histograms(p: np.ndarray, q: np.ndarray) -> float:
    """Wasserstein-1 distance between two histograms over equal bins spanning [0, 1].

    Equals :func:`scipy.stats.wasserstein_distance` of the bin centres weighted by ``p``
    and ``q``: the area between the two cumulative distributions.
    """
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    if p.shape != q.shape:
        raise CellsynthError("histograms must have the same number of bins")
    return float(np.abs(np.cumsum(p / p.sum()) - np.cumsum(q / q.sum()))[:-1].sum() / len(p))


def histogram_distance(real: Any, synthetic: Any, mask: Any = None, *, synthetic_mask: Any = None,
                       bins: int = 256, percentiles: Any = DEFAULT_PERCENTILES) -> float:
    """Wasserstein-1 (earth mover's) distance between the intensity histograms.

    The images need not have the same shape. After percentile normalization the value is
    in [0, 1] (the mean shift of intensity mass, in units of the normalized range).

    Parameters
    ----------
    real, synthetic
        Volumes (any shapes).
    mask
        Region of the real image (and of the synthetic one if ``synthetic_mask`` is None).
    synthetic_mask
        Region of the synthetic image.
    bins
        Histogram bins over [0, 1].
    """
    if synthetic_mask is None:
        synthetic_mask = mask
    return wasserstein_histograms(
        intensity_histogram(real, mask, bins=bins, percentiles=percentiles),
        intensity_histogram(synthetic, synthetic_mask, bins=bins, percentiles=percentiles))


def radial_power_spectrum(plane: np.ndarray, spacing: Sequence[float], bins: int = 64,
                          max_frequency: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of one 2D slice (or of a stack of slices).

    Parameters
    ----------
    plane
        (..., A, B) array; leading axes are averaged.
    spacing
        Pixel size (a, b) in µm.
    bins
        Number of frequency bins between 0 and ``max_frequency``.
    max_frequency
        Upper edge in cycles/µm (default: the lower Nyquist frequency of the two axes).

    Returns
    -------
    frequencies, power
        Bin centres in cycles/µm and the mean power per bin (``|FFT|**2 / n_pixels``,
        the slice mean, i.e. the zero frequency, removed). Bins without any frequency
        sample are interpolated from their neighbours.
    """
    plane = np.asarray(plane, dtype=np.float32)
    a, b = plane.shape[-2:]
    da, db = (float(s) for s in spacing)
    centred = plane - plane.mean(axis=(-2, -1), keepdims=True)
    power = np.abs(np.fft.rfft2(centred)) ** 2 / (a * b)
    power = power.reshape(-1, *power.shape[-2:]).mean(axis=0)
    fa = np.fft.fftfreq(a, d=da)[:, None]
    fb = np.fft.rfftfreq(b, d=db)[None, :]
    radius = np.sqrt(fa * fa + fb * fb)
    fmax = max_frequency or min(0.5 / da, 0.5 / db)
    edges = np.linspace(0.0, fmax, bins + 1)
    index = np.digitize(radius.ravel(), edges) - 1
    keep = (index >= 0) & (index < bins) & (radius.ravel() > 0)  # the mean (DC) was removed
    sums = np.bincount(index[keep], weights=power.ravel()[keep], minlength=bins)
    counts = np.bincount(index[keep], minlength=bins)
    centres = 0.5 * (edges[1:] + edges[:-1])
    filled = counts > 0
    mean = np.interp(centres, centres[filled], sums[filled] / counts[filled])
    return centres, mean


def xy_power_spectrum(image: Any, voxel_size: VoxelSize = (1.0, 1.0, 1.0), *, bins: int = 64,
                      max_frequency: float | None = None, max_slices: int = 16,
                      percentiles: Any = DEFAULT_PERCENTILES) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of xy slices, averaged over up to ``max_slices``
    evenly spaced slices (after percentile normalization). Returns (cycles/µm, power)."""
    voxel = check_voxel_size(voxel_size)
    image = np.asarray(image)
    if image.ndim != 3:
        raise CellsynthError(f"expected a 3D (Z, Y, X) volume, got shape {image.shape}")
    picks = np.unique(np.linspace(0, image.shape[0] - 1, min(max_slices, image.shape[0])).round().astype(int))
    slices = normalize(image, percentiles)[picks]
    return radial_power_spectrum(slices, voxel[1:], bins=bins, max_frequency=max_frequency)


def log_spectrum_distance(power_a: np.ndarray, power_b: np.ndarray) -> float:
    """Root mean square difference of log10 power between two spectra on the same bins."""
    floor = 1e-12
    la, lb = np.log10(np.maximum(power_a, floor)), np.log10(np.maximum(power_b, floor))
    return float(np.sqrt(np.mean((la - lb) ** 2)))


def spectrum_distance(real: Any, synthetic: Any, voxel_size: VoxelSize = (1.0, 1.0, 1.0), *,
                      synthetic_voxel_size: VoxelSize | None = None, bins: int = 64,
                      percentiles: Any = DEFAULT_PERCENTILES) -> float:
    """Distance between the log radially averaged power spectra of xy slices.

    Both spectra are sampled on the same frequency bins (cycles/µm, up to the lower of the
    two Nyquist frequencies), so images of different shapes and voxel sizes compare. The
    value is the RMS difference of log10 power (0 for identical texture; 1 means a factor
    of 10 on average).
    """
    voxel_s = synthetic_voxel_size or voxel_size
    vr, vs = check_voxel_size(voxel_size), check_voxel_size(voxel_s)
    fmax = min(0.5 / vr[1], 0.5 / vr[2], 0.5 / vs[1], 0.5 / vs[2])
    _, pr = xy_power_spectrum(real, vr, bins=bins, max_frequency=fmax, percentiles=percentiles)
    _, ps = xy_power_spectrum(synthetic, vs, bins=bins, max_frequency=fmax, percentiles=percentiles)
    return log_spectrum_distance(pr, ps)


# --------------------------------------------------------------------------- KID-style score

FEATURE_SCALES_VOXELS = (1.0, 2.0, 4.0)
"""Gaussian scales (voxels) of the hand-crafted filter bank used by :func:`texture_features`."""


def texture_features(image: Any, *, block: Sequence[int] = (16, 32, 32), max_blocks: int = 64,
                     seed: int = 0, percentiles: Any = DEFAULT_PERCENTILES, mask: Any = None) -> np.ndarray:
    """Hand-crafted texture features of randomly placed blocks of a volume.

    This is the feature extractor of :func:`kid_score`. It needs no download and no
    network: for each block (drawn with a fixed seed) it records the mean, standard
    deviation, 10th/50th/90th percentiles, and, after Gaussian smoothing at each scale in
    :data:`FEATURE_SCALES_VOXELS`, the mean gradient magnitude and mean absolute
    Laplacian (finite differences). The features are *not* Inception features: scores are
    comparable between runs of this package, not with published KID/FID values.

    Parameters
    ----------
    image
        A volume at least ``block`` in size (smaller sides shrink the block).
    block
        Block size (z, y, x) in voxels.
    max_blocks
        Number of blocks drawn (with a fixed seed, reproducibly).
    mask
        Optional region: only blocks whose centre lies inside are drawn.

    Returns
    -------
    numpy.ndarray
        (n_blocks, n_features) float64.
    """
    from scipy import ndimage

    image = normalize(np.asarray(image), percentiles)
    mask = _check_mask(mask, image.shape)
    size = np.minimum(np.asarray(block), image.shape)
    rng = np.random.default_rng(seed)
    span = np.asarray(image.shape) - size + 1
    if mask is None:
        corners = np.stack([rng.integers(0, s, max_blocks) for s in span], axis=1)
    else:
        centres = np.argwhere(mask[tuple(slice(h, h + s) for h, s in zip(size // 2, span))])
        corners = centres[rng.integers(0, len(centres), max_blocks)] if len(centres) else np.empty((0, 3), int)
        if not len(corners):
            raise CellsynthError("the mask leaves no room for feature blocks; use a larger mask or smaller blocks")
    rows = []
    for corner in corners:
        crop = image[tuple(slice(c, c + s) for c, s in zip(corner, size))].astype(np.float32)
        row = [crop.mean(), crop.std(), *np.percentile(crop, [10, 50, 90])]
        for sigma in FEATURE_SCALES_VOXELS:
            smooth = ndimage.gaussian_filter(crop, sigma, mode="reflect")
            row.append(np.sqrt(sum(g * g for g in np.gradient(smooth))).mean())
            row.append(np.abs(ndimage.laplace(smooth, mode="reflect")).mean())
        rows.append(row)
    return np.asarray(rows, dtype=np.float64)


def kid_from_features(real: np.ndarray, synthetic: np.ndarray) -> float:
    """Unbiased squared MMD with the cubic polynomial kernel of KID (Binkowski et al. 2018).

    ``k(a, b) = (a . b / d + 1) ** 3`` on the raw features. The features of
    :func:`texture_features` share one unit (normalized intensity), so they are not
    standardised: standardising by the spread between blocks would blow up tiny, constant
    offsets between two images of one texture. About 0 when both sets come from one
    distribution.
    """
    real, synthetic = np.asarray(real, np.float64), np.asarray(synthetic, np.float64)
    if len(real) < 2 or len(synthetic) < 2:
        raise CellsynthError("KID needs at least two feature vectors per set")
    a, b = real, synthetic
    d = a.shape[1]
    kaa, kbb, kab = ((u @ v.T / d + 1.0) ** 3 for u, v in ((a, a), (b, b), (a, b)))
    m, n = len(a), len(b)
    return float((kaa.sum() - np.trace(kaa)) / (m * (m - 1)) + (kbb.sum() - np.trace(kbb)) / (n * (n - 1))
                 - 2.0 * kab.mean())


def kid_score(real: Any, synthetic: Any, *, max_blocks: int = 64, seed: int = 0,
              percentiles: Any = DEFAULT_PERCENTILES) -> float:
    """KID-style distance between two volumes using :func:`texture_features`.

    The images need not share a shape. Lower is better; values near 0 (or slightly
    negative, the estimator is unbiased) mean indistinguishable texture statistics.
    """
    return kid_from_features(texture_features(real, max_blocks=max_blocks, seed=seed, percentiles=percentiles),
                             texture_features(synthetic, max_blocks=max_blocks, seed=seed + 1,
                                              percentiles=percentiles))


# --------------------------------------------------------------------------- tiling seams


def seam_metric(image: Any, grid: PatchGrid | None = None, *, neighbours: int = 3) -> float:
    """How much stronger intensity steps are on patch borders than beside them.

    Along each axis, the mean absolute difference between adjacent planes is taken across
    every plane where a patch's kept region starts or ends (a possible seam), and across
    the ``neighbours`` planes on either side of it. The result is the ratio of the two,
    pooled over axes: about 1 where tiling leaves no trace, clearly above 1 where seams
    show. Comparing with nearby planes keeps the image's own structure out of the ratio.

    Parameters
    ----------
    image
        The stitched output (Z, Y, X).
    grid
        The grid that produced it (:func:`cellsynth.tiling.tile_grid`); by default
        :func:`cellsynth.tiling.make_grid` with the default patch, overlap and crop for this shape.
    neighbours
        Planes on each side of a border used as the reference.

    Returns
    -------
    float
        The ratio; 1.0 when the grid has no interior borders.
    """
    image = np.asarray(image, dtype=np.float32)
    grid = grid or make_grid(image.shape)
    if tuple(image.shape) != grid.volume_shape:
        raise CellsynthError(f"image shape {image.shape} does not match the grid's volume shape {grid.volume_shape}")
    sums = np.zeros(2)
    counts = np.zeros(2)
    for axis in range(3):
        borders = grid.borders(axis)
        if borders.size == 0:
            continue
        step = np.abs(np.diff(image, axis=axis))
        per_plane = step.mean(axis=tuple(a for a in range(3) if a != axis), dtype=np.float64)
        seam = np.zeros(step.shape[axis], bool)
        seam[borders - 1] = True
        near = np.zeros_like(seam)
        for d in range(1, neighbours + 1):
            near[np.clip(borders - 1 - d, 0, None)] = True
            near[np.clip(borders - 1 + d, None, seam.size - 1)] = True
        near &= ~seam
        sums += per_plane[seam].sum(), per_plane[near].sum()
        counts += seam.sum(), near.sum()
    if counts.min() == 0:
        return 1.0
    on, off = sums / counts
    if off == 0:
        return 1.0 if on == 0 else math.inf
    return float(on / off)


# --------------------------------------------------------------------------- band-passed paired scores

BAND_PASS_UM: tuple[float, float] = (0.5, 4.0)
"""Standard deviations (µm) of the two Gaussians of :func:`band_pass`: fine minus coarse."""


def band_pass(image: Any, voxel_size: VoxelSize, fine_um: float = BAND_PASS_UM[0],
              coarse_um: float = BAND_PASS_UM[1]) -> np.ndarray:
    """Difference of Gaussians: ``G(fine_um) * image - G(coarse_um) * image`` (sigmas in µm).

    Keeps the structures of cell scale and removes what no mask predicts: independent
    voxel noise (finer than ``fine_um``) and large-scale shading (coarser than
    ``coarse_um``). Borders are mirrored.

    Parameters
    ----------
    image
        Volume (Z, Y, X).
    voxel_size
        Voxel size in µm (z, y, x): the sigmas are converted per axis.
    fine_um, coarse_um
        Gaussian standard deviations in µm, ``0 < fine_um < coarse_um``.

    Returns
    -------
    numpy.ndarray
        float32 band-passed volume (zero mean up to border effects).

    Examples
    --------
    >>> flat = np.full((8, 16, 16), 3.0)
    >>> float(np.abs(band_pass(flat, (1.0, 0.5, 0.5))).max())
    0.0
    """
    from scipy import ndimage

    voxel = np.asarray(check_voxel_size(voxel_size))
    if not 0 < fine_um < coarse_um:
        raise CellsynthError(f"band-pass sigmas must satisfy 0 < fine < coarse (µm), got {fine_um} and {coarse_um}")
    image = np.asarray(image, dtype=np.float32)
    fine = ndimage.gaussian_filter(image, fine_um / voxel, mode="reflect")
    return fine - ndimage.gaussian_filter(image, coarse_um / voxel, mode="reflect")


def band_passed_metrics(real: Any, synthetic: Any, mask: Any = None, *, voxel_size: VoxelSize = (1.0, 1.0, 1.0),
                        fine_um: float = BAND_PASS_UM[0], coarse_um: float = BAND_PASS_UM[1]) -> dict[str, float]:
    """ZNCC and SSIM of a paired real and synthetic image after :func:`band_pass` on both.

    Independent noise caps a raw pixel ZNCC (with real = S + N, even a perfect rendering
    of S with its own noise scores at most var(S) / var(real)), and large-scale shading
    dominates it; the band pass compares the structures. For SSIM each band-passed image is
    normalised by its own 1st and 99.9th percentiles.

    Returns
    -------
    dict
        ``zncc_bandpass`` and ``ssim_bandpass``.
    """
    voxel = check_voxel_size(voxel_size)
    real, synthetic = _check_pair(real, synthetic)
    real_bp, synthetic_bp = (band_pass(x, voxel, fine_um, coarse_um) for x in (real, synthetic))
    return {"zncc_bandpass": zncc(real_bp, synthetic_bp, mask, percentiles=None),
            "ssim_bandpass": ssim(real_bp, synthetic_bp, mask)}


# --------------------------------------------------------------------------- all at once


def paired_metrics(real: Any, synthetic: Any, mask: Any = None, *, voxel_size: VoxelSize = (1.0, 1.0, 1.0),
                   percentiles: Any = DEFAULT_PERCENTILES) -> dict[str, float]:
    """All metrics of a real image and the synthetic image generated for it.

    The images are normalized once. Returns ``nrmse``, ``nrmse_euclidean``, ``ssim``,
    ``zncc``, ``histogram_distance``, ``spectrum_distance`` and ``kid``.
    """
    return paired_metrics_details(real, synthetic, mask, voxel_size=voxel_size, percentiles=percentiles)[0]


def paired_metrics_details(real: Any, synthetic: Any, mask: Any = None, *, voxel_size: VoxelSize = (1.0, 1.0, 1.0),
                           percentiles: Any = DEFAULT_PERCENTILES) -> tuple[dict[str, float], dict[str, Any]]:
    """:func:`paired_metrics` plus what the figures need: ``{"histograms": {name: hist},
    "spectra": {name: (cycles/µm, power)}}`` for ``real`` and ``synthetic``."""
    voxel = check_voxel_size(voxel_size)
    real, synthetic, mask = _prepare(real, synthetic, mask, percentiles)
    fmax = min(0.5 / voxel[1], 0.5 / voxel[2])
    stats = pair_statistics(real, synthetic, mask)
    hists = {"real": intensity_histogram(real, mask, percentiles=None),
             "synthetic": intensity_histogram(synthetic, mask, percentiles=None)}
    spectra = {"real": xy_power_spectrum(real, voxel, max_frequency=fmax, percentiles=None),
               "synthetic": xy_power_spectrum(synthetic, voxel, max_frequency=fmax, percentiles=None)}
    ssim_value = ssim(real, synthetic, mask, percentiles=None)
    kid_value = kid_score(real, synthetic, percentiles=None)
    results = {
        "nrmse": _nrmse_from(stats, "range"),
        "nrmse_euclidean": _nrmse_from(stats, "euclidean"),
        "ssim": ssim_value,
        "zncc": _zncc_from(stats),
        "histogram_distance": wasserstein_histograms(hists["real"], hists["synthetic"]),
        "spectrum_distance": log_spectrum_distance(spectra["real"][1], spectra["synthetic"][1]),
        "kid": kid_value,
    }
    return results, {"histograms": hists, "spectra": spectra}
