"""Fit the physics renderer to a real volume and its labels (``cellsynth calibrate``).

The real image ``R`` and the structure mask ``M`` drawn from its labels (nuclei, or walls
``t`` µm thick between cells) are related by the renderer's forward model
(:mod:`cellsynth.render.physics`) in the image's own units (ADU):

``E[R] = offset + gain * (signal_photons * PSF * (b M exp(-mu z)) + level)``,
``Var[R] = gain * (E[R] - offset) + read_noise^2``,

with ``b`` the dye brightness of each cell (mean 1). Each parameter is estimated where the
data show it, in this order:

1. **Noise** from the mean-variance relation (Foi et al. 2008): the variance of fourth
   differences along x and y (which blurred signal barely passes) against the local mean of
   the neighbouring lines, in 16 quantile bins, fitted by a line ``gain * mean + c``
   (:func:`noise_model`). ``read_noise^2 = c`` where ``c >= 0``; otherwise the read noise is
   0 and ``offset = -c / gain`` (offset and read noise are not separable otherwise; the
   offset is 0 where ``c >= 0``).
2. **PSF and wall thickness**: the Gaussian widths (z, y, x) in µm that make the blurred
   mask best explain the image, by least squares on their cosine transforms (above 1/3
   cycles/µm, so that slow shading does not count; :func:`fit_psf`); for membranes for every
   thickness on a grid, keeping the best.
3. **Levels and per-cell brightness**: ``R ~ beta0 + beta1 * PSF * (b M)`` by least squares,
   with ``b`` per cell updated from the ratio of real to predicted signal on its voxels
   (six rounds; :func:`fit_levels`). ``signal_photons = beta1 / gain``.
4. **Depth attenuation** ``mu`` (1/µm, Beer-Lambert along z): Theil-Sen slope of
   ``log b`` against the cells' depth; kept where the cells span 5 µm in z and the slope's
   95 % interval excludes 0.
5. **Per-cell brightness spread**: the robust coefficient of variation of ``b`` (after the
   depth trend), turned into the amplitude of the renderer's smooth log-brightness field
   that gives the same spread of per-cell means; the field's lattice (1, 2 or 4 cell
   diameters) is the one that makes neighbouring cells as alike as the real ones are.
6. **Tissue**: where tissue fills the volume, background light cannot be told from tissue
   autofluorescence, so all light without dye is taken as autofluorescence; the spread of
   the log intensity of the tissue at least two PSF widths from the structure (interquartile
   range, less the noise's share) sets the amplitude of its variation from cell to cell (a
   field on a lattice of one cell diameter).
7. **Against the benchmark**: labels that miss the real boundaries add to the spreads of
   steps 5 and 6, so they are upper bounds; each is shrunk (to 75, 50 or 25 %) where that
   brings the render of the labels clearly (by more than 5 %) closer to the real image on
   the benchmark's spectrum distance plus 5 x its histogram W1 plus the log ratio of the
   CNRs (:func:`benchmark_loss`); then the texture amplitude (0, 0.25, 0.5, 1) and scale
   (0.4, 0.8, 1.6 µm) of the dye, and the texture amplitude of the tissue, are chosen the
   same way.
8. **Against simulated tissue** (where simulated labels are given, e.g. from the preset the
   renderer is for): the real labels leave the spreads, textures and the signal level
   (against the white level, i.e. how much clips) only bounded, and masks that never came
   from a microscope show it: a render of simulated walls with the label-fitted spreads
   clipped about 3 % of its voxels where the real ovule image clips 0.11 %. The PSF width
   along z is bound loosely too: the wall thickness and the PSF trade off in step 2, most
   along z, where a wall is fewest voxels thick (the lateral-root labels gave 0.77 µm, and
   its simulated walls rendered with it stood out at 1.5 times the real contrast). So each of
   :data:`REFINED` takes the candidate value that brings renders of the simulated masks
   clearly (by more than 5 %) closer to the real fitted part on the whole unpaired
   benchmark (:func:`simulated_score`: spectrum + 5 x W1 + CNR log ratio + 0.2 x log10(1 + KID);
   :func:`refine_on_simulated`). Only the fitted part of the real image is read.

Parameters the data cannot identify keep their defaults, and :attr:`Calibration.notes`
says which and why. The result renders the real labels and is scored with the unpaired
benchmark (:mod:`cellsynth.evaluate.realism`) on the fitted part and on a held-out part
(the last ``holdout`` fraction along y), against the uncalibrated defaults.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage, optimize, stats

from cellsynth.errors import CellsynthError
from cellsynth.io import VoxelSize, check_voxel_size

THICKNESS_GRID_UM: tuple[float, ...] = (0.25, 0.375, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
"""Wall thicknesses (µm) tried for membranes (those below one xy voxel are skipped)."""

TEXTURE_SCALES_UM: tuple[float, ...] = (0.4, 0.8, 1.6)
"""Texture scales (µm) tried."""

TEXTURE_AMPLITUDES: tuple[float, ...] = (0.25, 0.5, 1.0)
"""Texture amplitudes tried (besides none)."""

SHRINK: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25)
"""Fractions of the measured brightness and autofluorescence spreads tried."""

W1_WEIGHT = 5.0
"""Weight of the histogram W1 beside the spectrum distance in the loss of the last step: a W1
of 0.02 (2 % of the normalized range) counts like a spectrum distance of 0.1."""

BRIGHTNESS_SCALES: tuple[float, ...] = (1.0, 2.0, 4.0)
"""Brightness field lattices tried, in cell diameters."""

HIGHPASS_UM = 3.0
"""The PSF fit ignores spatial frequencies below 1 / HIGHPASS_UM cycles/µm (slow shading)."""

MIN_CELL_VOXELS = 30
"""Cells with fewer structure voxels in the fitted part do not count for brightness statistics."""

MIN_DEPTH_RANGE_UM = 5.0
"""The depth attenuation is fitted only where the cells span at least this much in z."""

REFINED: dict[str, tuple[tuple[float, ...], str]] = {
    "psf_sigma_um": ((1.0, 0.75, 1.25, 1.5, 2.0), "axial"),
    "brightness_variation": ((1.0, 0.75, 0.5, 0.25, 0.0), "relative"),
    "autofluorescence_variation": ((1.0, 0.75, 0.5, 0.25, 0.0), "relative"),
    "autofluorescence_scale_um": ((1.0, 2.0, 4.0), "relative"),
    "texture": ((0.0, 0.25, 0.5, 1.0), "absolute"),
    "tissue_texture": ((0.0, 0.25, 0.5, 1.0), "absolute"),
    "signal_photons": ((1.0, 0.9, 0.8, 0.7), "relative"),
}
"""Parameters refined against simulated masks (step 8), in the order they are visited:
candidate values, and how they apply: ``relative``, multiples of the value fitted on the
real labels; ``absolute``, the values themselves; ``axial``, multiples of the PSF width
along z only (the widths along y and x stay). The optics come first, then the spreads, and
the signal level last, so that the level does not make up for a spread that is too wide."""

KID_WEIGHT = 0.2
"""Weight of ``log10(1 + KID)`` in :func:`simulated_score`: a KID ten times larger (from 1) counts
like a spectrum distance of about 0.2."""

REFINE_MARGIN = 0.05
"""Step 8 moves a parameter only where that lowers the score by more than this fraction."""


@dataclass
class Calibration:
    """The result of :func:`calibrate_renderer`.

    Attributes
    ----------
    parameters
        Physics parameters (:class:`cellsynth.render.physics.PhysicsParameters` names).
    membrane_thickness_um
        The apparent wall thickness (membranes; None for nuclei): a simulation parameter.
    notes
        One line per parameter the data could not identify (it keeps its default), and
        warnings.
    fit
        The intermediate estimates (noise line, levels, per-cell spread, ...).
    scores
        Benchmark rows of the rendered real labels against the real image, calibrated and
        with the defaults, on the fitted and the held-out part.
    """

    parameters: dict[str, Any]
    membrane_thickness_um: float | None
    notes: list[str] = field(default_factory=list)
    fit: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- the steps


def noise_model(image: np.ndarray, valid: np.ndarray, bins: int = 16, *, integer: bool = False) -> dict[str, Any]:
    """The mean-variance line of an image's noise (step 1 of the module notes).

    The noise is measured with the fourth difference along x and y,
    ``(R_{i-2} - 4 R_{i-1} + 6 R_i - 4 R_{i+1} + R_{i+2}) / sqrt 70`` (unit variance for white
    noise; blurred signal barely passes it), whose variance in each bin of the local mean is
    estimated robustly, ``median(r^2) / 0.4549`` (the median of chi-squared with one degree
    of freedom), so that the few voxels at sharp edges do not count.

    Parameters
    ----------
    image
        The real image (float64, its own units).
    valid
        Voxels that may be used (e.g. not saturated).
    bins
        Number of quantile bins of the local mean.
    integer
        The image holds integers: no variance below the rounding's 1/12 is reported.

    Returns
    -------
    dict
        ``gain`` (variance per unit of mean), ``intercept``, and the binned ``means`` and
        ``variances`` the line was fitted to.
    """
    taps = np.array([1.0, -4.0, 6.0, -4.0, 1.0]) / math.sqrt(70.0)
    means, residuals = [], []
    for axis, other in ((1, 2), (2, 1)):
        values = np.moveaxis(image, (other, axis), (-2, -1))
        ok = np.moveaxis(valid, (other, axis), (-2, -1))
        n, m = values.shape[-1], values.shape[-2]
        if n < 5 or m < 3:
            continue
        shifted = [values[..., i:n - 4 + i] for i in range(5)]
        usable = np.logical_and.reduce([ok[..., i:n - 4 + i] for i in range(5)])
        residual = sum(t * v for t, v in zip(taps, shifted))[..., 1:-1, :]
        window = sum(shifted)  # the local mean comes from the two neighbouring lines, whose noise is
        local = (window[..., :-2, :] + window[..., 2:, :]) / 10.0  # independent of the residual's
        keep = usable[..., 1:-1, :] & usable[..., :-2, :] & usable[..., 2:, :]
        residuals.append(residual[keep])
        means.append(local[keep])
    if not means or sum(m.size for m in means) < 100 * bins:
        raise CellsynthError("the image is too small to measure its noise; give at least a few thousand voxels")
    mean, residual = np.concatenate(means), np.concatenate(residuals)
    edges = np.unique(np.quantile(mean, np.linspace(0, 1, bins + 1)))
    index = np.clip(np.searchsorted(edges, mean, side="right") - 1, 0, len(edges) - 2)
    level, variance, weight = [], [], []
    for k in range(len(edges) - 1):
        r = residual[index == k]
        if r.size < 50:
            continue
        level.append(float(mean[index == k].mean()))
        lo, hi = np.quantile(r, [_TRIM, 1.0 - _TRIM])
        trimmed = r[(r >= lo) & (r <= hi)]
        variance.append(max(float(trimmed.var()) / _TRIMMED_VARIANCE, 1.0 / 12.0 if integer else 0.0))
        weight.append(r.size)
    level_a, variance_a = np.asarray(level), np.asarray(variance)
    # a variance estimated from n values has a standard error of about variance * sqrt(2 / n)
    weight_a = np.sqrt(np.asarray(weight, float)) / np.maximum(variance_a, 1e-12)
    if len(level_a) >= 2 and np.ptp(level_a) > 0:
        design = np.stack([level_a, np.ones_like(level_a)], axis=1)
        (gain, intercept), *_ = np.linalg.lstsq(design * weight_a[:, None], variance_a * weight_a, rcond=None)
    else:
        gain, intercept = 0.0, float(np.average(variance_a, weights=weight_a))
    return {"gain": float(gain), "intercept": float(intercept), "means": level_a.tolist(),
            "variances": variance_a.tolist()}


_TRIM = 0.01
_TRIMMED_VARIANCE = float(stats.truncnorm.var(stats.norm.ppf(_TRIM), stats.norm.ppf(1 - _TRIM)))
"""Variance of a standard normal without its lowest and highest 1 %."""


def fit_psf(image: np.ndarray, mask: np.ndarray, voxel_size: VoxelSize,
            start_um: Sequence[float] = (0.6, 0.2, 0.2)) -> tuple[np.ndarray, float]:
    """Gaussian PSF widths (z, y, x) in µm that best turn ``mask`` into ``image``.

    Minimises ``sum |R(k) - beta G_sigma(k) M(k)|^2`` over sigma (and the scale beta, in
    closed form) over the cosine-transform coefficients (DCT-II) of both volumes with
    ``|k| >= 1 / HIGHPASS_UM`` cycles/µm. The cosine transform is the Fourier transform of
    the volume mirrored at its faces, where a Gaussian blur stays a product: the crop's
    faces, which cut cells in the image and in the mask alike, add no false sharp edges,
    and no window has to taper (and so blur) the volumes.

    Returns
    -------
    sigma, loss
        The widths in µm and the residual energy relative to the image's (0 is a perfect fit).
    """
    from scipy import fft

    voxel = np.asarray(check_voxel_size(voxel_size))
    spectra = [fft.dctn(np.asarray(v, dtype=np.float64), type=2, norm="ortho") for v in (image, mask)]
    freqs = [np.arange(n) / (2.0 * n * d) for n, d in zip(image.shape, voxel)]
    k2 = [freqs[0][:, None, None] ** 2, freqs[1][None, :, None] ** 2, freqs[2][None, None, :] ** 2]
    keep = (k2[0] + k2[1] + k2[2]) >= HIGHPASS_UM**-2
    cross = (spectra[0] * spectra[1])[keep]
    power = (spectra[1] ** 2)[keep]
    energy = float((spectra[0] ** 2)[keep].sum())
    kz, ky, kx = (np.broadcast_to(k, keep.shape)[keep] for k in k2)
    if energy <= 0 or power.sum() <= 0:
        raise CellsynthError("the image or the structure has no detail above 1/3 cycles/µm; nothing to fit a PSF to")

    def loss(x: np.ndarray) -> float:
        s = np.abs(x)
        g = np.exp(-2 * np.pi**2 * (s[0] ** 2 * kz + s[1] ** 2 * ky + s[2] ** 2 * kx))
        cg = float(cross @ g)
        return (energy - cg * cg / max(float(power @ (g * g)), 1e-300)) / energy

    result = optimize.minimize(loss, np.asarray(start_um, float), method="Nelder-Mead",
                               options={"xatol": 1e-3, "fatol": 1e-7, "maxiter": 600})
    if not result.success or not np.all(np.isfinite(result.x)):
        raise CellsynthError(f"the PSF fit did not converge ({result.message}); check that the labels belong to "
                             "this image")
    return np.abs(result.x), float(result.fun)


def _blur(volume: np.ndarray, sigma_um: Sequence[float], voxel: np.ndarray) -> np.ndarray:
    return ndimage.gaussian_filter(volume, np.asarray(sigma_um) / voxel, mode="nearest", truncate=3.0)


def fit_levels(image: np.ndarray, valid: np.ndarray, mask: np.ndarray, labels: np.ndarray, sigma_um: np.ndarray,
               voxel: np.ndarray, rounds: int = 6) -> dict[str, Any]:
    """Background, signal scale and per-cell brightness (step 3 of the module notes).

    Returns
    -------
    dict
        ``beta0`` (level without dye), ``beta1`` (signal of dye brightness 1), ``ids``,
        ``brightness`` (per cell, mean 1 over the structure), ``counts`` (structure voxels
        per cell in ``valid``), ``residual`` (image minus the fitted model).
    """
    structure = mask != 0
    owner = np.where(structure, labels, 0)
    ids = np.unique(owner)
    ids = ids[ids > 0]
    if ids.size == 0:
        raise CellsynthError("the labels mark no structure; check the labels and --kind")
    lookup = np.zeros(int(labels.max()) + 1)
    lookup[ids] = 1.0
    selected = valid & structure
    counts = ndimage.sum_labels(np.ones(int(selected.sum())), owner[selected], ids)
    weights = ndimage.sum_labels(np.ones(int(structure.sum())), owner[structure], ids)
    beta0 = beta1 = 0.0
    for _ in range(rounds):
        predicted = _blur(lookup[owner] * structure, sigma_um, voxel)
        design = np.stack([np.ones(int(valid.sum())), predicted[valid]], axis=1)
        (beta0, beta1), *_ = np.linalg.lstsq(design, image[valid], rcond=None)
        if not beta1 > 0:
            raise CellsynthError("the structure is not brighter than its surroundings (fitted signal "
                                 f"{beta1:.3g}); check that the labels belong to this image and --kind")
        real = ndimage.sum_labels(image[selected] - beta0, owner[selected], ids)
        model = ndimage.sum_labels(beta1 * predicted[selected], owner[selected], ids)
        ratio = np.where((counts >= MIN_CELL_VOXELS) & (model > 0), real / np.maximum(model, 1e-12), 1.0)
        lookup[ids] *= np.clip(ratio, 0.05, 20.0)
        lookup[ids] /= float(np.sum(lookup[ids] * weights) / weights.sum())
    residual = image - (beta0 + beta1 * _blur(lookup[owner] * structure, sigma_um, voxel))
    return {"beta0": float(beta0), "beta1": float(beta1), "ids": ids, "brightness": lookup[ids], "counts": counts,
            "residual": residual}


def robust_cv(values: np.ndarray) -> float:
    """Coefficient of variation from the median and the MAD (1.4826 MAD / median)."""
    values = np.asarray(values, float)
    median = float(np.median(values))
    return float(1.4826 * np.median(np.abs(values - median)) / median) if median > 0 else 0.0


def unit_field(shape: Sequence[int], cells: Sequence[int], stream: int) -> np.ndarray:
    """The renderer's smooth value noise ``v`` in [-1, 1] (amplitude 1) on a volume."""
    import torch

    from cellsynth.render.randomness import value_noise

    with torch.no_grad():
        return value_noise(0, stream, [0, 0, 0], tuple(shape), tuple(cells), 1.0, smooth=True).numpy().astype(
            np.float64)


def solve_amplitude(spread: Any, target: float, upper: float = 4.0, iterations: int = 30) -> float:
    """The amplitude ``a`` in [0, upper] at which ``spread(a)`` (increasing) equals ``target``
    (bisection; ``upper`` where even that is not enough)."""
    if target <= 0:
        return 0.0
    if spread(upper) <= target:
        return upper
    lo, hi = 0.0, upper
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if spread(mid) < target else (lo, mid)
    return 0.5 * (lo + hi)


def _lattice(scale_um: float, voxel: np.ndarray) -> tuple[int, int, int]:
    """Lattice spacing in voxels of a field of ``scale_um`` (as the renderer rounds it)."""
    return tuple(max(1, round(scale_um / v)) for v in voxel)  # type: ignore[return-value]


def _masked_mean(values: np.ndarray, region: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Box average of ``values`` over ``region`` only (``taps`` along each axis)."""
    weight, total = region.astype(np.float64), np.where(region, values, 0.0)
    for axis in range(3):
        weight = ndimage.convolve1d(weight, taps, axis=axis, mode="nearest")
        total = ndimage.convolve1d(total, taps, axis=axis, mode="nearest")
    return total / np.maximum(weight, 1e-12)


def _log_spread(values: np.ndarray) -> float:
    """Robust standard deviation of log values: interquartile range / 1.349."""
    q1, q3 = np.percentile(np.log(values), [25, 75])
    return float(q3 - q1) / 1.349


def _brightness_scale(log_brightness: np.ndarray, centres_um: np.ndarray, owner: np.ndarray, ids: np.ndarray,
                      inside: np.ndarray, diameter_um: float, voxel: np.ndarray) -> float:
    """The brightness field's lattice (µm): of 1, 2 and 4 cell diameters, the one whose field
    gives neighbouring cells (centres within 1.5 diameters) the real correlation of brightness."""
    distance = np.linalg.norm(centres_um[:, None] - centres_um[None], axis=-1)
    pairs = np.argwhere(np.triu((distance > 0) & (distance < 1.5 * diameter_um)))
    if len(pairs) < 10:
        return diameter_um

    def neighbour_correlation(values: np.ndarray) -> float:
        return float(np.corrcoef(values[pairs[:, 0]], values[pairs[:, 1]])[0, 1])

    observed = neighbour_correlation(log_brightness)
    candidates = {}
    for factor in BRIGHTNESS_SCALES:
        field_values = unit_field(inside.shape, _lattice(factor * diameter_um, voxel), stream=1)[inside]
        candidates[factor] = abs(neighbour_correlation(ndimage.mean(field_values, owner, ids)) - observed)
    return float(min(candidates, key=candidates.get) * diameter_um)


def _clearly_best(options: Sequence[Any], loss: Any, margin: float = 0.05) -> Any:
    """The first option (the measured value, or none) unless another lowers ``loss`` by more
    than ``margin`` of it; then the one that lowers it most (a single render's noise should
    not move a parameter)."""
    first = loss(options[0])
    best = min(options, key=loss)
    return best if loss(best) < (1.0 - margin) * first else options[0]


def benchmark_loss(reference: np.ndarray, voxel: np.ndarray, structure: np.ndarray, outside: np.ndarray) -> Any:
    """A function scoring an image against ``reference`` on the benchmark's terms: spectrum
    distance, plus :data:`W1_WEIGHT` times the histogram W1, plus ``|log(CNR / real CNR)|``
    (both images normalized by their 1st and 99.9th percentiles; same shape and voxel size;
    the CNR on ``structure`` against ``outside``)."""
    from cellsynth.evaluate.metrics import intensity_histogram, wasserstein_histograms
    from cellsynth.evaluate.realism import (
        HISTOGRAM_BINS,
        RealismVolume,
        contrast_to_noise,
        log_psd_distance,
        radial_psd,
        spectrum_grid,
    )
    from cellsynth.intensity import normalize_percentiles

    edges = spectrum_grid([RealismVolume(reference, tuple(voxel))])

    def summary(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        normalized = normalize_percentiles(image)
        cnr = contrast_to_noise(normalized, structure, outside)
        return (radial_psd(normalized, tuple(voxel), edges),
                intensity_histogram(normalized, bins=HISTOGRAM_BINS, percentiles=None), cnr or 0.0)

    target_psd, target_hist, target_cnr = summary(reference)

    def loss(image: np.ndarray) -> float:
        psd, hist, cnr = summary(image)
        contrast = abs(math.log(cnr / target_cnr)) if cnr > 0 and target_cnr > 0 else 1.0
        return log_psd_distance(psd, target_psd) + W1_WEIGHT * wasserstein_histograms(hist, target_hist) + contrast

    return loss


def simulated_score(row: Mapping[str, Any]) -> float:
    """One number from a benchmark row (:func:`cellsynth.evaluate.realism.realism_benchmark`),
    lower is better: spectrum distance + :data:`W1_WEIGHT` x histogram W1 + ``|log(CNR ratio)|``
    + :data:`KID_WEIGHT` x ``log10(1 + KID)``.

    Examples
    --------
    >>> simulated_score({"spectrum": 0.2, "histogram_w1": 0.02, "cnr_ratio": 1.0, "kid": 9.0})
    0.5
    """
    ratio = row.get("cnr_ratio")
    contrast = abs(math.log(ratio)) if ratio and ratio > 0 else 1.0
    return float(row["spectrum"] + W1_WEIGHT * row["histogram_w1"] + contrast
                 + KID_WEIGHT * math.log10(1.0 + max(float(row["kid"]), 0.0)))


def refine_on_simulated(parameters: Mapping[str, Any], real: Any, kind: str, masks: Sequence[np.ndarray], *,
                        seed: int = 0, rounds: int = 2) -> tuple[dict[str, Any], dict[str, float]]:
    """Step 8 of the module notes: the parameters that the real labels bound only from above,
    refined so that renders of *simulated* structure masks match the real image.

    The masks are rendered (in tissue that fills the volume, seeds ``seed + i``) and scored
    as one set against ``real`` by the unpaired benchmark
    (:func:`cellsynth.evaluate.realism.realism_benchmark`, summed by :func:`simulated_score`).
    Each parameter of :data:`REFINED` in turn takes the candidate value that lowers the
    score most, where that lowers it by more than :data:`REFINE_MARGIN` against the value
    the real labels gave (with the other parameters as they stand; so a later round takes a
    change back where the others made it unnecessary); the candidates are
    multiples of the value the real labels gave (of its z width for the PSF; absolute values
    for texture amplitudes).
    ``rounds`` passes over all of them at most.

    Parameters
    ----------
    parameters
        The renderer fitted on the real labels (steps 1-7).
    real
        The real image's fitted part, with its labels' structure and outside
        (:class:`cellsynth.evaluate.realism.RealismVolume`).
    kind
        ``"nuclei"`` or ``"membranes"``.
    masks
        Simulated structure masks at the real image's voxel size.
    seed
        Seed of the renders (the same for every candidate, so candidates differ by their
        parameters only).

    Returns
    -------
    parameters, scores
        The refined parameters, and the score of every candidate tried (by description).
    """
    from cellsynth.evaluate.realism import realism_benchmark, realism_volume

    if not masks:
        raise CellsynthError("give at least one simulated mask to refine the renderer against")
    voxel = np.asarray(real.voxel_size)
    base = {**parameters, "psf_sigma_um": tuple(parameters["psf_sigma_um"])}
    current = dict(base)
    masks = [np.asarray(m != 0, np.uint8) for m in masks]
    scores: dict[str, float] = {}

    def score(values: Mapping[str, Any]) -> float:
        key = ", ".join(f"{name} {_describe(values[name])}" for name in REFINED)
        if key not in scores:
            rendered = [realism_volume(_render(m, voxel, kind, values, seed + i), tuple(voxel), mask=m)
                        for i, m in enumerate(masks)]
            result = realism_benchmark({"candidate": rendered}, [real], floor=False, seed=seed, progress=False)
            scores[key] = simulated_score(result["rows"]["candidate"])
        return scores[key]

    for _ in range(rounds):
        changed = False
        for name, (options, how) in REFINED.items():
            values = [_candidate(base[name], o, how) for o in options]
            values = [base[name], *[v for v in dict.fromkeys(values) if v != base[name]]]
            best = _clearly_best(values, lambda v: score({**current, name: v}), margin=REFINE_MARGIN)
            changed |= best != current[name]
            current[name] = best
        if not changed:
            break
    return {**current, "psf_sigma_um": list(current["psf_sigma_um"])}, scores


def _candidate(fitted: Any, option: float, how: str) -> Any:
    """A candidate value of step 8 from the value fitted on the real labels (see :data:`REFINED`)."""
    if how == "axial":
        return (_round(option * fitted[0]), *fitted[1:])
    return _round(option * fitted) if how == "relative" else option


def _describe(value: Any) -> str:
    return " ".join(f"{v:.4g}" for v in value) if isinstance(value, (tuple, list)) else f"{value:.4g}"


def _render(mask: np.ndarray, voxel: np.ndarray, kind: str, parameters: Mapping[str, Any], seed: int) -> np.ndarray:
    """The physics render of a structure mask in tissue that fills the volume."""
    from cellsynth.render.physics import PhysicsRenderer
    from cellsynth.synthesis import synthesize_image

    model = PhysicsRenderer(tuple(voxel), seed=seed, **parameters)
    return synthesize_image(mask, np.ones(mask.shape, np.uint8), tuple(voxel), model=model, kind=kind,
                            progress=False)


def cell_diameter_um(labels: np.ndarray, voxel: np.ndarray, kind: str) -> float:
    """Typical cell (membranes) or nucleus diameter in µm, unbiased by the crop.

    Membranes (dense tissue): the stereological chord estimate ``1.5 / P_L``, ``P_L`` the
    label changes per µm of labelled line along the three axes. Nuclei: the median
    volume-equivalent diameter of the nuclei that do not touch the border (all, where every
    one does).
    """
    if kind == "membranes":
        changes = length = 0.0
        for axis, v in enumerate(voxel):
            a, b = np.moveaxis(labels, axis, 0)[1:], np.moveaxis(labels, axis, 0)[:-1]
            both = (a > 0) & (b > 0)
            changes += np.count_nonzero(both & (a != b))
            length += np.count_nonzero(both) * v
        if changes:
            return float(1.5 * length / changes)
    counts = np.bincount(labels.ravel())
    border = np.unique(np.concatenate([np.moveaxis(labels, a, 0)[e].ravel() for a in range(3) for e in (0, -1)]))
    inner = np.setdiff1d(np.flatnonzero(counts), np.append(border, 0))
    chosen = counts[inner] if inner.size else counts[1:][counts[1:] > 0]
    return float(np.median((6.0 * chosen * np.prod(voxel) / np.pi) ** (1.0 / 3.0)))


def preset_labels(preset: Mapping[str, Any], voxel_size: VoxelSize, count: int = 2, seed: int = 0) -> list[np.ndarray]:
    """Instance labels simulated with a preset's ``simulate`` values at ``voxel_size``
    (the preset's shape), for :func:`refine_on_simulated`.

    The seeds are ``SeedSequence([seed, 1], spawn_key=(i,))``, a stream that ``cellsynth
    dataset`` (``SeedSequence(seed)``) does not draw from, so a benchmark of the preset's
    samples never scores the masks the renderer was refined on.
    """
    from cellsynth.dataset import one_thread
    from cellsynth.dataset.presets import simulate_arguments
    from cellsynth.simulate.pipeline import simulate_sample

    if count < 1:
        raise CellsynthError(f"count of simulated samples must be at least 1, got {count}")
    labels = []
    with one_thread():
        for index in range(count):
            rng = np.random.default_rng(np.random.SeedSequence([seed, 1], spawn_key=(index,)))
            sample = simulate_sample(preset["kind"], tuple(preset["shape"]), tuple(voxel_size), rng, progress=False,
                                     **simulate_arguments(preset["simulate"]))
            labels.append(sample.labels)
    return labels


# --------------------------------------------------------------------------- the whole fit


def calibrate_renderer(image: Any, labels: Any, voxel_size: VoxelSize, kind: str, *, holdout: float = 0.25,
                       membrane_thickness_um: float | None = None, simulated: Sequence[Any] | None = None,
                       seed: int = 0, progress: bool | None = None) -> Calibration:
    """Fit the physics renderer to a real image and its instance labels.

    The tissue is assumed to fill the volume (a crop inside tissue, like the real volumes
    of the built-in families).

    Parameters
    ----------
    image
        The real image (Z, Y, X), in its own units.
    labels
        Its instance labels (same shape): nuclei, or whole cells for membranes.
    voxel_size
        Voxel size in µm (z, y, x).
    kind
        ``"nuclei"`` or ``"membranes"``.
    holdout
        Fraction of the volume along y (its end) kept out of the fit and only scored
        (0: fit on everything).
    membrane_thickness_um
        Wall thickness to use instead of fitting it (membranes).
    simulated
        Instance labels simulated at ``voxel_size`` (e.g. :func:`preset_labels`): where
        given, step 8 refines the renderer so that renders of their structure (walls of the
        fitted thickness, or nuclei) match the real image (:func:`refine_on_simulated`).
    seed
        Seed of the renders that score the fit.
    progress
        Progress bar: None (default) on a terminal only, True always, False never.

    Returns
    -------
    Calibration

    Raises
    ------
    CellsynthError
        For labels of another shape, labels without structure, an image in which the
        structure is not visible, or a fit that does not converge.
    """
    from cellsynth.progress import progress_bar
    from cellsynth.render.physics import PhysicsParameters
    from cellsynth.simulate.annotations import DEFAULT_MEMBRANE_THICKNESS_UM, structure_mask

    if kind not in ("nuclei", "membranes"):
        raise CellsynthError(f"unknown kind {kind!r}; use nuclei or membranes")
    voxel = np.asarray(check_voxel_size(voxel_size))
    image, labels = np.asarray(image), np.asarray(labels)
    if image.ndim != 3:
        raise CellsynthError(f"the image must be a 3D (Z, Y, X) volume, got shape {image.shape}")
    if labels.shape != image.shape:
        raise CellsynthError(f"the labels {labels.shape} and the image {image.shape} differ in shape; give the "
                             "labels of this image")
    if labels.dtype.kind not in "ui" or labels.min() < 0:
        raise CellsynthError("the labels must be non-negative integers (0 = background)")
    if not np.isfinite(image).all():
        raise CellsynthError("the image contains NaN or infinite values; replace them first")
    if not 0 <= holdout < 0.9:
        raise CellsynthError(f"holdout must be a fraction in [0, 0.9), got {holdout}")
    from cellsynth.gan.data import split_regions

    split = split_regions(image.shape, holdout, "y")[0][1].stop
    if split < 16:
        raise CellsynthError(f"the fitted part is only {split} voxels along y; give a larger volume or a smaller "
                             "holdout")
    real = image[:, :split].astype(np.float64)
    cells = labels[:, :split].astype(np.int64)
    notes: list[str] = []
    if simulated is not None:
        for s in simulated:
            if np.ndim(s) != 3 or np.asarray(s).dtype.kind not in "ui" or not np.any(s):
                raise CellsynthError("simulated labels must be 3D integer volumes with at least one cell")
    steps = progress_bar(total=8 if simulated else 7, progress=progress, desc="calibrating")

    def structure(thickness: float | None) -> np.ndarray:
        return structure_mask(cells, kind, tuple(voxel), membrane_thickness_um=thickness or 1.0) != 0

    mask = structure(membrane_thickness_um or DEFAULT_MEMBRANE_THICKNESS_UM)
    outside = ~mask if kind == "nuclei" else (cells > 0) & ~mask
    if not mask.any() or not outside.any():
        raise CellsynthError("the labels give no structure in the fitted part (no nuclei, or no walls between "
                             "cells); check the labels and --kind")
    spread = real[outside].std()
    contrast = (real[mask].mean() - real[outside].mean()) / spread if spread > 0 else 0.0
    if not contrast > 0.05:
        raise CellsynthError(f"the structure is not visible in the image (contrast-to-noise {contrast:.3f}); "
                             "check that the labels belong to this image and --kind")

    white = float(real.max())
    saturated = real >= white
    valid = ~saturated if saturated.mean() > 1e-4 else np.ones(real.shape, bool)
    if saturated.mean() > 1e-4:
        notes.append(f"{100 * saturated.mean():.2f} % of the voxels are saturated at {white:g}: left out of the fit; "
                     "the renderer clips at the same white level")

    # 1. noise
    noise = noise_model(real, valid, integer=image.dtype.kind in "ui")
    steps.update(1)
    gain, intercept = noise["gain"], noise["intercept"]
    level = float(real[valid].mean())
    if gain <= 0:
        gain = 0.01 * max(intercept, 1e-12) / max(level, 1e-12)
        notes.append("gain: the noise variance does not grow with intensity (no shot noise seen); the gain is set "
                     "so that shot noise is 1 % of the read-noise variance at the mean level")
    offset = 0.0 if intercept >= 0 else -intercept / gain
    read_noise = math.sqrt(max(intercept, 0.0))
    notes.append("offset_adu and read_noise_adu are not separable from the mean-variance line: the offset is "
                 f"{'0 (intercept >= 0)' if intercept >= 0 else 'where the variance would vanish'}")

    # 2. PSF (and wall thickness)
    fits = {}
    if kind == "membranes" and membrane_thickness_um is None:
        grid = [t for t in THICKNESS_GRID_UM if t >= min(voxel[1:])]
        for t in grid:
            fits[t] = fit_psf(real, structure(t), voxel)
        losses = np.array([fits[t][1] for t in grid])
        best = int(np.argmin(losses))
        thickness = grid[best]
        if 0 < best < len(grid) - 1 and losses.max() - losses[best] > 0.01 * losses[best]:
            sigma = fits[thickness][0]
        else:
            notes.append(f"membrane_thickness: not identifiable (the fit is best at the end of {grid[0]:g}-"
                         f"{grid[-1]:g} µm or flat); the default {DEFAULT_MEMBRANE_THICKNESS_UM:g} µm is kept")
            thickness = DEFAULT_MEMBRANE_THICKNESS_UM
            sigma = fit_psf(real, structure(thickness), voxel)[0]
    else:
        thickness = membrane_thickness_um if kind == "membranes" else None
        sigma = fit_psf(real, mask, voxel)[0]
    mask = structure(thickness)
    outside = ~mask if kind == "nuclei" else (cells > 0) & ~mask
    for axis, name in enumerate("zyx"):
        if sigma[axis] < 0.25 * voxel[axis]:
            notes.append(f"psf_sigma_um along {name}: below a quarter voxel ({sigma[axis]:.3f} µm), i.e. not "
                         "resolved at this voxel size")
    steps.update(1)

    # 3. levels and per-cell brightness
    levels = fit_levels(real, valid, mask, cells, sigma, voxel)
    steps.update(1)
    owner = np.where(mask, cells, 0)
    ids, brightness, counts = levels["ids"], levels["brightness"], levels["counts"]
    enough = counts >= MIN_CELL_VOXELS
    centres = np.asarray(ndimage.center_of_mass(mask, owner, ids)).reshape(-1, 3)
    depth_um = centres[:, 0] * voxel[0]

    # 4. depth attenuation
    attenuation = 0.0
    if enough.sum() >= 5 and np.ptp(depth_um[enough]) >= MIN_DEPTH_RANGE_UM:
        slope, _, low, high = stats.theilslopes(np.log(brightness[enough]), depth_um[enough], 0.95)
        if high < 0:
            attenuation = -float(slope)
        else:
            notes.append(f"axial_attenuation_per_um: no significant loss with depth (slope of log brightness "
                         f"{slope:.4f}/µm, 95 % interval {low:.4f} to {high:.4f}); 0")
    else:
        notes.append(f"axial_attenuation_per_um: not identifiable (the cells span less than {MIN_DEPTH_RANGE_UM:g} µm "
                     "in z, or fewer than 5 cells); 0")
    detrended = brightness * np.exp(attenuation * depth_um)

    # 5. per-cell brightness spread, over the distance at which neighbouring cells stop being alike
    diameter = cell_diameter_um(cells, voxel, kind)
    defaults = PhysicsParameters()
    variation, scale_um = defaults.brightness_variation, diameter
    if enough.sum() >= 5:
        inside = np.isin(owner, ids[enough])
        scale_um = _brightness_scale(np.log(detrended[enough]), centres[enough] * voxel, owner[inside],
                                     ids[enough], inside, diameter, voxel)
        field_values = unit_field(cells.shape, _lattice(scale_um, voxel), stream=1)[inside]

        def cell_spread(a: float) -> float:
            means = ndimage.mean(np.exp(a * field_values), owner[inside], ids[enough])
            return float(np.std(means) / np.mean(means))

        variation = solve_amplitude(cell_spread, robust_cv(detrended[enough]))
    else:
        notes.append("brightness_variation, brightness_scale_um: fewer than 5 cells with enough voxels; defaults "
                     "kept")
    steps.update(1)

    # 6. levels in photons: where tissue fills the volume, all light without dye is tissue autofluorescence;
    # its variation is how much the tissue away from the structure varies beyond the noise
    signal = levels["beta1"] / gain
    tissue_level = max(levels["beta0"] - offset, 0.0)
    autofluorescence = tissue_level / levels["beta1"]
    notes.append("background_photons: not separable from autofluorescence where tissue fills the volume; all "
                 "light without dye is taken as tissue autofluorescence (background 0)")
    around = valid & ~mask & (cells > 0 if kind == "membranes" else np.ones(cells.shape, bool))
    far = around & (ndimage.distance_transform_edt(~mask, sampling=voxel) > 2.0 * float(sigma.max()))
    autofluorescence_variation = 0.0
    if tissue_level > 0 and far.sum() > 1000:
        # the spread of log intensity (interquartile range: the tails of dark and bright cells do not dominate),
        # lightly smoothed, less what the smoothed noise adds
        kernel = np.ones(3)  # one voxel each side, per axis
        smoothed = _masked_mean(real, far, kernel)[far]
        noise_far = float(np.mean(noise["gain"] * (real[far] - offset) + noise["intercept"]))
        target = _log_spread(np.maximum(smoothed - offset, 1e-3 * tissue_level)) ** 2 - max(noise_far, 0.0) / (
            27.0 * tissue_level**2)
        unit = _log_spread(np.exp(_masked_mean(unit_field(cells.shape, _lattice(diameter, voxel), stream=3), far,
                                               kernel)[far]))
        if target > 0:
            autofluorescence_variation = min(math.sqrt(target) / unit, 4.0)
    else:
        notes.append("autofluorescence_variation: too little tissue away from the structure to measure it; 0")
    notes.append("attenuation and depth_blur_um (depth below the organism surface): tissue fills the volume, so "
                 "depth is the same everywhere and they are absorbed into the signal level and the PSF; set to 0")
    parameters = {
        "psf_sigma_um": [_round(s) for s in sigma], "depth_blur_um": 0.0, "attenuation": 0.0,
        "axial_attenuation_per_um": _round(attenuation), "brightness_variation": _round(variation),
        "brightness_scale_um": _round(scale_um), "texture": 0.0, "texture_scale_um": defaults.texture_scale_um,
        "autofluorescence": _round(autofluorescence),
        "autofluorescence_variation": _round(autofluorescence_variation),
        "autofluorescence_scale_um": _round(diameter), "signal_photons": _round(signal),
        "background_photons": 0.0, "gain": _round(gain), "read_noise_adu": _round(read_noise),
        "offset_adu": _round(offset), "white_adu": _round(white),
    }
    steps.update(1)

    # 7. the spreads above are upper bounds (labels that miss the real boundaries add to them): the render of
    # the labels should match the real image on the benchmark, so shrink them where that helps; then texture
    mask_u8 = mask.view(np.uint8)
    loss = benchmark_loss(real, voxel, mask, outside)
    losses: dict[str, float] = {}

    def trial(**changes: float) -> float:
        key = ", ".join(f"{k} {v:.4g}" for k, v in changes.items())
        if key not in losses:
            losses[key] = loss(_render(mask_u8, voxel, kind, {**parameters, **changes}, seed))
        return losses[key]

    for name, estimate in (("brightness_variation", parameters["brightness_variation"]),
                           ("autofluorescence_variation", parameters["autofluorescence_variation"])):
        if estimate > 0:
            best = _clearly_best(SHRINK, lambda f: trial(**{name: _round(f * estimate)}))
            parameters[name] = _round(best * estimate)
    options = [(0.0, defaults.texture_scale_um)] + [(t, u) for t in TEXTURE_AMPLITUDES for u in TEXTURE_SCALES_UM]
    texture, texture_scale = _clearly_best(options, lambda o: trial(texture=o[0], texture_scale_um=o[1]))
    parameters.update(texture=texture, texture_scale_um=texture_scale)
    if texture == 0:
        notes.append("texture, texture_scale_um: no texture brings the render clearly closer to the real image; 0")
    parameters["tissue_texture"] = _clearly_best((0.0, *TEXTURE_AMPLITUDES), lambda t: trial(tissue_texture=t))
    steps.update(1)

    # 8. simulated tissue: what the real labels only bound, refined so that renders of simulated masks match
    simulated_losses: dict[str, float] = {}
    if simulated:
        masks = [structure_mask(np.asarray(s), kind, tuple(voxel), membrane_thickness_um=thickness or 1.0)
                 for s in simulated]
        labels_fit = {name: parameters[name] for name in REFINED}
        from cellsynth.evaluate.realism import RealismVolume

        reference = RealismVolume(real, tuple(voxel), mask, outside, "the fitted part")
        parameters, simulated_losses = refine_on_simulated(parameters, reference, kind, masks, seed=seed)
        changed = [f"{name} {_describe(labels_fit[name])} -> {_describe(parameters[name])}" for name in REFINED
                   if parameters[name] != labels_fit[name]]
        notes.append(f"refined on {len(masks)} simulated masks: {', '.join(changed) if changed else 'no change'}")
        steps.update(1)
    PhysicsParameters.from_mapping(parameters)  # refuses anything out of range
    fit = {"noise": {k: noise[k] for k in ("gain", "intercept")}, "beta0": levels["beta0"], "beta1": levels["beta1"],
           "cells": int(enough.sum()), "brightness_cv": robust_cv(detrended[enough]) if enough.any() else None,
           "cell_diameter_um": diameter, "benchmark_losses": losses, "simulated_losses": simulated_losses,
           "fitted_region": f"y < {split} of {image.shape[1]}",
           "psf_losses": {f"{t:g}": loss for t, (_, loss) in fits.items()}}
    calibration = Calibration(parameters, thickness, notes, fit)
    calibration.scores = score_calibration(calibration, image, labels, voxel, kind, split, seed=seed)
    steps.update(1)
    steps.close()
    return calibration


def _round(value: float) -> float:
    return float(f"{value:.4g}")


def score_calibration(calibration: Calibration, image: np.ndarray, labels: np.ndarray, voxel: np.ndarray,
                      kind: str, split: int, *, seed: int = 0) -> dict[str, Any]:
    """Benchmark rows of the real labels rendered with the calibrated and the default
    parameters, against the real image, on the fitted part and the held-out part."""
    from cellsynth.evaluate.realism import realism_benchmark, realism_volume
    from cellsynth.simulate.annotations import structure_mask

    thickness = calibration.membrane_thickness_um
    parts = {"fitted": (slice(None), slice(0, split)), "held_out": (slice(None), slice(split, None))}
    scores = {}
    for part, box in parts.items():
        real, cells = image[box], labels[box]
        if min(real.shape[1:]) < 16 or not cells.any():
            continue
        mask = structure_mask(cells, kind, tuple(voxel), membrane_thickness_um=thickness or 1.0)
        rendered = {name: [realism_volume(_render(mask, voxel, kind, params, seed), tuple(voxel), mask=mask)]
                    for name, params in (("calibrated", calibration.parameters), ("defaults", {}))}
        reference = realism_volume(real, tuple(voxel), kind=kind, labels=cells, membrane_thickness_um=thickness)
        result = realism_benchmark(rendered, [reference], floor=False, progress=False)
        scores[part] = {"region": f"y {box[1].start or 0}:{box[1].stop or image.shape[1]}", "real_cnr":
                        result["real_cnr"], **result["rows"]}
    return scores
