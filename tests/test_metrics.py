"""Realism metrics against independent references (scikit-image, numpy, scipy)."""

import numpy as np
import pytest
from scipy import ndimage, stats
from skimage.metrics import normalized_root_mse, structural_similarity

from cellsynth.errors import CellsynthError
from cellsynth.evaluate import metrics as M
from cellsynth.intensity import normalize_percentiles


def _pair(rng, shape, structured=False):
    if structured:
        zz, yy, xx = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
        real = np.exp(-4 * (zz**2 + yy**2 + xx**2)) + 0.3 * np.sin(6 * xx) * np.cos(4 * yy)
        real = ndimage.gaussian_filter(real + 0.1 * rng.standard_normal(shape), 1.0)
    else:
        real = rng.random(shape)
    synthetic = 0.7 * real + 0.3 * ndimage.gaussian_filter(rng.random(shape), 1.0)
    return real, synthetic


def _skimage_ssim(a, b, data_range=1.0):
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=data_range)


SHAPES = [(11, 11, 11), (13, 40, 27), (24, 33, 64)]  # odd, anisotropic, non-multiple-of-block sides


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("structured", [False, True])
def test_ssim_equals_skimage(rng, shape, structured):
    real, synthetic = _pair(rng, shape, structured)
    ref = _skimage_ssim(normalize_percentiles(real).astype(np.float64),
                        normalize_percentiles(synthetic).astype(np.float64))
    assert M.ssim(real, synthetic) == pytest.approx(ref, abs=1e-5)
    assert M.ssim(real, synthetic, slab=3, workers=2) == pytest.approx(ref, abs=1e-5)


def test_ssim_raw_values_and_data_range(rng):
    real, synthetic = _pair(rng, (16, 20, 24))
    real, synthetic = 5 * real, 5 * synthetic
    ref = _skimage_ssim(real, synthetic, data_range=5.0)
    assert M.ssim(real, synthetic, percentiles=None, data_range=5.0) == pytest.approx(ref, abs=1e-5)
    assert M.ssim(real, real, percentiles=None) == pytest.approx(1.0, abs=1e-6)


def test_ssim_mask_is_mean_of_skimage_map_inside(rng):
    real, synthetic = _pair(rng, (20, 24, 30), structured=True)
    mask = np.zeros(real.shape, bool)
    mask[3:15, 2:20, 10:28] = True
    a, b = normalize_percentiles(real).astype(np.float64), normalize_percentiles(synthetic).astype(np.float64)
    _, smap = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                    data_range=1.0, full=True)
    inner = np.zeros_like(mask)
    inner[5:-5, 5:-5, 5:-5] = True
    assert M.ssim(real, synthetic, mask) == pytest.approx(smap[mask & inner].mean(), abs=1e-5)


@pytest.mark.parametrize("structured", [False, True])
def test_nrmse_and_zncc_equal_references(rng, structured):
    real, synthetic = _pair(rng, (9, 31, 17), structured)
    a, b = normalize_percentiles(real).astype(np.float64), normalize_percentiles(synthetic).astype(np.float64)
    assert M.nrmse(real, synthetic) == pytest.approx(normalized_root_mse(a, b, normalization="min-max"), rel=1e-6)
    assert M.nrmse(real, synthetic, normalization="euclidean") == pytest.approx(
        normalized_root_mse(a, b, normalization="euclidean"), rel=1e-6)
    assert M.zncc(real, synthetic) == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1], abs=1e-6)
    mask = rng.random(real.shape) > 0.5
    assert M.zncc(real, synthetic, mask) == pytest.approx(np.corrcoef(a[mask], b[mask])[0, 1], abs=1e-6)
    assert M.nrmse(real, synthetic, mask) == pytest.approx(
        np.sqrt(np.mean((a[mask] - b[mask]) ** 2)) / np.ptp(a[mask]), rel=1e-5)


def test_normalize_percentiles_matches_numpy(rng):
    image = rng.gamma(2.0, size=(5, 20, 20))
    lo, hi = np.percentile(image, [1, 99.9])
    expected = np.clip((image - lo) / (hi - lo), 0, 1)
    np.testing.assert_allclose(normalize_percentiles(image), expected, atol=1e-6)
    lo, hi = np.percentile(image, [5, 95])
    np.testing.assert_allclose(normalize_percentiles(image, 5, 95), np.clip((image - lo) / (hi - lo), 0, 1),
                               atol=1e-6)


def test_metrics_invariant_under_gain_and_offset(rng):
    real, synthetic = _pair(rng, (14, 22, 26), structured=True)
    base = M.paired_metrics(real, synthetic, voxel_size=(2, 0.5, 0.5))
    moved = M.paired_metrics(3.5 * real + 100, 0.2 * synthetic - 7, voxel_size=(2, 0.5, 0.5))
    for key, value in base.items():
        assert moved[key] == pytest.approx(value, abs=1e-4), key


def test_histogram_distance_equals_scipy_wasserstein(rng):
    real, synthetic = rng.random((6, 30, 30)), rng.random((8, 20, 25)) ** 2  # different shapes are fine
    bins = 64
    hr = M.intensity_histogram(real, bins=bins)
    hs = M.intensity_histogram(synthetic, bins=bins)
    centres = (np.arange(bins) + 0.5) / bins
    ref = stats.wasserstein_distance(centres, centres, hr, hs)
    assert M.histogram_distance(real, synthetic, bins=bins) == pytest.approx(ref, rel=1e-9)
    # and close to the distance of the raw normalized values (binning error < one bin)
    raw = stats.wasserstein_distance(normalize_percentiles(real).ravel(), normalize_percentiles(synthetic).ravel())
    assert abs(M.histogram_distance(real, synthetic, bins=bins) - raw) < 1.0 / bins
    assert M.histogram_distance(real, real) == 0.0


def test_radial_power_spectrum_equals_brute_force(rng):
    plane = rng.random((12, 16))
    spacing = (0.5, 0.25)
    freqs, power = M.radial_power_spectrum(plane, spacing, bins=5)
    centred = plane - plane.mean()
    full = np.abs(np.fft.fft2(centred)) ** 2 / plane.size
    fmax = min(0.5 / 0.5, 0.5 / 0.25)
    edges = np.linspace(0, fmax, 6)
    sums, counts = np.zeros(5), np.zeros(5)
    for i in range(12):
        for j in range(16):
            if j > 8:  # rfft keeps the non-negative x frequencies only
                continue
            f = np.hypot(np.fft.fftfreq(12, 0.5)[i], np.fft.rfftfreq(16, 0.25)[j])
            k = np.searchsorted(edges, f, side="right") - 1
            if 0 <= k < 5 and f > 0:
                sums[k] += full[i, j]
                counts[k] += 1
    np.testing.assert_allclose(power, sums / counts, rtol=1e-5)
    np.testing.assert_allclose(freqs, 0.5 * (edges[1:] + edges[:-1]))


def test_spectrum_distance_detects_blur_and_is_zero_for_same(rng):
    image = rng.random((8, 64, 64))
    assert M.spectrum_distance(image, image.copy(), (1, 0.2, 0.2)) == 0.0
    blurred = ndimage.gaussian_filter(image, (0, 2, 2))
    assert M.spectrum_distance(image, blurred, (1, 0.2, 0.2)) > 0.5
    # a different crop of the same texture stays close
    other = rng.random((8, 48, 80))
    assert M.spectrum_distance(image, other, (1, 0.2, 0.2)) < 0.15


def test_kid_equals_brute_force_and_separates_textures(rng):
    a, b = rng.standard_normal((7, 4)), rng.standard_normal((5, 4)) + 0.5
    x, y = a, b
    k = lambda u, v: (u @ v / 4 + 1) ** 3  # noqa: E731
    kxx = sum(k(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
    kyy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / (5 * 4)
    kxy = sum(k(x[i], y[j]) for i in range(7) for j in range(5)) / 35
    assert M.kid_from_features(a, b) == pytest.approx(kxx + kyy - 2 * kxy, rel=1e-9)
    noise = rng.random((24, 48, 48))
    same = rng.random((24, 48, 48))
    smooth = ndimage.gaussian_filter(rng.random((24, 48, 48)), 2)
    assert abs(M.kid_score(noise, same, max_blocks=24)) < 0.1 * M.kid_score(noise, smooth, max_blocks=24)


def test_errors(rng):
    a = rng.random((12, 12, 12))
    with pytest.raises(CellsynthError, match="differ in shape"):
        M.ssim(a, a[:-1])
    with pytest.raises(CellsynthError, match="constant"):
        M.zncc(a, np.full_like(a, 3.0))
    with pytest.raises(CellsynthError, match="constant"):
        M.ssim(np.zeros_like(a), a)
    with pytest.raises(CellsynthError, match="constant"):
        M.zncc(a, a, percentiles=None, mask=np.pad(np.ones((1, 1, 1)), ((0, 11), (0, 11), (0, 11))))
    with pytest.raises(CellsynthError, match="no voxels"):
        M.nrmse(a, a, np.zeros(a.shape, bool))
    with pytest.raises(CellsynthError, match="too small"):
        M.ssim(a[:10], a[:10])
    with pytest.raises(CellsynthError, match="from the border"):
        edge = np.zeros(a.shape, bool)
        edge[0] = True
        M.ssim(a, a, edge)
    with pytest.raises(CellsynthError, match="NaN"):
        b = a.copy()
        b[0, 0, 0] = np.nan
        M.nrmse(a, b)
    with pytest.raises(CellsynthError, match="percentiles"):
        normalize_percentiles(a, 50, 10)


def test_metrics_are_finite_on_sparse_images(rng):
    """Mostly-zero images (percentiles coincide) fall back to min-max instead of NaN."""
    real = np.zeros((12, 16, 16))
    real[6, 8, 8] = 1.0
    synthetic = ndimage.gaussian_filter(real, 1.0)
    values = M.paired_metrics(real, synthetic)
    assert all(np.isfinite(v) for v in values.values())


# --------------------------------------------------------------------------- band-passed scores


def test_band_pass_equals_scikit_image_difference_of_gaussians(rng):
    from skimage.filters import difference_of_gaussians

    image = rng.random((12, 40, 36)).astype(np.float32)
    voxel = (0.5, 0.125, 0.2)
    expected = difference_of_gaussians(image.astype(np.float64), np.divide(0.5, voxel), np.divide(4.0, voxel),
                                       mode="reflect")
    np.testing.assert_allclose(M.band_pass(image, voxel), expected, atol=2e-6)
    with pytest.raises(CellsynthError, match="fine < coarse"):
        M.band_pass(image, voxel, 4.0, 0.5)


def test_band_passed_zncc_sees_the_structure_through_noise_and_shading(rng):
    shape, voxel = (16, 64, 64), (0.5, 0.25, 0.25)
    xx = np.indices(shape)[2]
    blobs = ndimage.gaussian_filter((rng.random(shape) < 0.004).astype(float), (2, 4, 4))
    structure = blobs / blobs.max()
    real = structure + 0.5 * rng.standard_normal(shape)  # independent noise
    synthetic = structure + 0.5 * rng.standard_normal(shape) + np.sin(np.pi * xx / 64)  # and shading
    raw = M.zncc(real, synthetic, percentiles=None)
    scores = M.band_passed_metrics(real, synthetic, voxel_size=voxel)
    assert scores["zncc_bandpass"] > 0.3 and scores["zncc_bandpass"] > 3 * raw
    identical = M.band_passed_metrics(real, real, voxel_size=voxel)
    assert identical["zncc_bandpass"] == pytest.approx(1.0) and identical["ssim_bandpass"] == pytest.approx(1.0)
