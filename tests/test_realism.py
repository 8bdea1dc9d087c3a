"""The unpaired realism benchmark against independent formulas and cases with a known answer."""

import itertools

import numpy as np
import pytest
from scipy import ndimage, stats

from cellsynth.errors import CellsynthError
from cellsynth.evaluate import filterbank, realism
from cellsynth.intensity import normalize_percentiles
from cellsynth.evaluate.realism import FLOOR, RealismVolume, realism_benchmark, realism_volume

VOXEL = (0.5, 0.25, 0.25)


def _blobs(rng, shape=(16, 48, 48), sigma=2.0):
    return ndimage.gaussian_filter(rng.random(shape), sigma).astype(np.float32)


def test_eigenvalues_equal_numpy(rng):
    h = rng.normal(size=(500, 3, 3))
    h = h + h.transpose(0, 2, 1)
    h[:5] = np.diag([1.0, 1.0, 1.0])  # repeated eigenvalues
    h[5:10] = np.diag([2.0, -1.0, -1.0])
    h[10] = 0.0
    np.testing.assert_allclose(filterbank.symmetric_eigenvalues(h), np.linalg.eigvalsh(h), atol=1e-7)


def test_kid_equals_brute_force_mmd(rng):
    a, b = rng.normal(size=(7, 5)), rng.normal(1.0, 2.0, size=(9, 5))
    scale = filterbank.standardizer(a)
    x, y = (a - scale[0]) / scale[1], (b - scale[0]) / scale[1]

    def k(u, v):
        return (u @ v / 5 + 1.0) ** 3

    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(7), 2)) / (7 * 6)
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(9), 2)) / (9 * 8)
    xy = sum(k(u, v) for u in x for v in y) / (7 * 9)
    assert filterbank.kid(a, b, scale) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_filter_bank_features_equal_full_patch_references(rng):
    """Sampling every voxel of a patch gives the mean/sd of scipy's Gaussian and its derivatives."""
    image = rng.random((12, 20, 20)).astype(np.float32)
    voxel = (1.0, 0.5, 0.5)
    corner, patch = np.array([[3, 4, 5]]), (4, 6, 6)
    features = filterbank.filter_bank_features(image, voxel, corner, patch, scales_um=(1.0,), points=10_000)
    smooth = ndimage.gaussian_filter(image.astype(np.float64), np.array([1.0, 2.0, 2.0]), mode="reflect",
                                     truncate=3.0)
    box = tuple(slice(c - 1, c + p + 1) for c, p in zip(corner[0], patch))
    inner = (slice(1, -1),) * 3
    g = smooth[box]
    grad = np.sqrt(sum(d[inner] ** 2 for d in np.gradient(g, *voxel)))
    lap = sum(np.diff(g, 2, axis=a)[tuple(slice(None) if b == a else slice(1, -1) for b in range(3))] / v**2
              for a, v in enumerate(voxel))
    expect = {"gauss": g[inner], "gradient": grad, "log": lap}
    for response, values in expect.items():
        i = 2 * filterbank.RESPONSES.index(response)
        assert features[0, i] == pytest.approx(values.mean(), rel=1e-6, abs=1e-9)
        assert features[0, i + 1] == pytest.approx(values.std(), rel=1e-6, abs=1e-9)
    assert features.shape == (1, 12)


def test_radial_psd_of_white_noise_and_a_sinusoid(rng):
    noise = rng.normal(0.0, 0.3, size=(64, 64, 64)).astype(np.float32)
    edges = np.linspace(0.2, 1.9, 12)
    psd = realism.radial_psd(noise, (1.0, 0.25, 0.25), edges)
    np.testing.assert_allclose(psd, 0.09 * 0.25 * 0.25, rtol=0.08)
    for dx in (0.2, 0.25):  # the peak stays at 1 cycle/µm whatever the voxel size
        x = np.arange(80) * dx
        wave = np.broadcast_to(np.sin(2 * np.pi * 1.0 * x), (4, 80, 80))
        edges = np.linspace(0.1, 2.4, 24)
        psd = realism.radial_psd(wave, (1.0, dx, dx), edges)
        peak = int(np.argmax(psd))
        assert edges[peak] <= 1.0 < edges[peak + 1]


def test_spectrum_grid_is_resolved_in_the_smallest_crop():
    volumes = [RealismVolume(np.zeros((4, 40, 60)), (1.0, 0.25, 0.25)), RealismVolume(np.zeros((4, 100, 100)),
                                                                                       (1.0, 0.2, 0.2))]
    edges = realism.spectrum_grid(volumes)
    assert edges[1] - edges[0] == pytest.approx(0.1)  # 1 / 10 µm, the smallest side
    assert edges[0] == pytest.approx(0.2) and edges[-1] <= 2.0 + 1e-9  # lowest Nyquist: 0.5 / 0.25
    with pytest.raises(CellsynthError, match="too small for a spectrum"):
        realism.spectrum_grid([RealismVolume(np.zeros((4, 6, 60)), VOXEL)])


def test_identical_sets_score_zero_and_shuffling_destroys_the_spectrum(rng):
    real = [RealismVolume(_blobs(rng), VOXEL, name="a"), RealismVolume(_blobs(rng), VOXEL, name="b")]
    shuffled = [RealismVolume(rng.permutation(v.image.ravel()).reshape(v.image.shape), VOXEL) for v in real]
    result = realism_benchmark({"same": real, "shuffled": shuffled}, real, patch_um=(3, 4, 4), patches_per_set=32)
    same, mixed = result["rows"]["same"], result["rows"]["shuffled"]
    assert same["histogram_w1"] == 0.0 and same["spectrum"] == 0.0
    assert mixed["histogram_w1"] == pytest.approx(0.0, abs=1e-12)  # the same voxels, so the same histogram
    assert mixed["spectrum"] > 1.0 and mixed["kid"] > 20 * max(abs(same["kid"]), 1e-3)
    assert list(result["rows"]) == [FLOOR, "same", "shuffled"]


def test_a_models_scores_do_not_depend_on_the_other_models_listed(rng):
    real = [RealismVolume(_blobs(rng), VOXEL)]
    model = [RealismVolume(_blobs(rng, sigma=0.7), VOXEL)]
    other = [RealismVolume(rng.random((16, 48, 48)), VOXEL), RealismVolume(rng.random((16, 48, 48)), VOXEL)]
    # (of the same extent: the frequency grid and the KID patch are cut to the smallest volume of all)
    alone = realism_benchmark({"model": model}, real, patch_um=(3, 4, 4), patches_per_set=16)["rows"]["model"]
    for sets in ({"other": other, "model": model}, {"model": model, "other": other}):
        for floor in (True, False):
            listed = realism_benchmark(sets, real, patch_um=(3, 4, 4), patches_per_set=16, floor=floor)
            assert listed["rows"]["model"] == alone


def test_histogram_distance_equals_scipy(rng):
    real = [RealismVolume(rng.gamma(2.0, size=(8, 32, 32)), VOXEL)]
    synthetic = [RealismVolume(rng.normal(size=(8, 32, 32)), VOXEL), RealismVolume(rng.random((8, 32, 32)), VOXEL)]
    result = realism_benchmark({"s": synthetic}, real, patch_um=(2, 3, 3), patches_per_set=8, floor=False)
    pooled = np.concatenate([normalize_percentiles(v.image).ravel() for v in synthetic])
    expected = stats.wasserstein_distance(normalize_percentiles(real[0].image).ravel(), pooled)
    assert result["rows"]["s"]["histogram_w1"] == pytest.approx(expected, abs=1.5 / realism.HISTOGRAM_BINS)


def test_cnr_of_a_constructed_image(rng):
    shape = (6, 20, 20)
    labels = np.zeros(shape, np.uint16)
    labels[:, 5:10, 5:10] = 1
    outside = rng.normal(10.0, 2.0, size=shape)
    image = np.where(labels > 0, 16.0, outside)
    volume = realism_volume(image, VOXEL, kind="nuclei", labels=labels)
    values = outside[labels == 0]
    assert realism.contrast_to_noise(image, volume.structure, volume.outside) == pytest.approx(
        (16.0 - values.mean()) / values.std())
    # membranes: the walls between two cells, outside is the rest of the cells (not the background)
    cells = np.zeros(shape, np.uint16)
    cells[:, 2:18, 2:10], cells[:, 2:18, 10:18] = 1, 2
    walls = realism_volume(image, VOXEL, kind="membranes", labels=cells, membrane_thickness_um=0.5)
    assert walls.structure[:, 10, 9:11].all() and not walls.structure[:, 10, 4].any()
    assert not walls.outside[:, 0, 0].any() and walls.outside[:, 10, 4].all()
    assert realism.contrast_to_noise(image, np.zeros(shape, bool), volume.outside) is None


def test_floor_of_one_texture_is_small_and_small_crops_work(rng):
    real = [RealismVolume(_blobs(rng, (24, 40, 40)), VOXEL, name="r")]
    other = [RealismVolume(_blobs(rng, (10, 20, 20), sigma=0.5), (1.0, 0.5, 0.5))]  # another voxel size, tiny
    result = realism_benchmark({"other": other}, real, patch_um=(50, 50, 50), patches_per_set=16)
    floor = result["rows"][FLOOR]
    assert floor["spectrum"] < 0.3 * result["rows"]["other"]["spectrum"]
    assert result["definition"]["kid_patch_um"] == [6.0, 10.0, 10.0]  # cut to the half crop and the tiny volume
    assert result["rows"]["other"]["cnr"] is None and result["real_cnr"] is None


def test_benchmark_errors(rng):
    real = [RealismVolume(_blobs(rng), VOXEL)]
    with pytest.raises(CellsynthError, match="no real volumes"):
        realism_benchmark({"s": real}, [])
    with pytest.raises(CellsynthError, match="has no volumes"):
        realism_benchmark({"s": []}, real)
    with pytest.raises(CellsynthError, match="reserved"):
        realism_benchmark({FLOOR: real}, real)
    with pytest.raises(CellsynthError, match="differs from its image"):
        realism_volume(np.zeros((4, 8, 8)), VOXEL, kind="nuclei", labels=np.zeros((4, 8, 9)))
    with pytest.raises(CellsynthError, match="at least 2"):
        realism.split_halves(RealismVolume(np.zeros((1, 8, 8)), VOXEL))
