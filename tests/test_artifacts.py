"""Artifact check: spectral peaks and border bands on volumes with known artifacts."""

import numpy as np
import pytest

from cellsynth.errors import CellsynthError
from cellsynth.evaluate.artifacts import (
    artifact_check,
    axis_power_spectrum,
    border_band,
    spectral_peaks,
)


def test_axis_power_spectrum_matches_a_direct_dft(rng):
    image = rng.random((6, 10, 12))
    x = image - image.mean(axis=1, keepdims=True)
    n = np.arange(10)
    direct = [np.mean(np.abs((x * np.exp(-2j * np.pi * k * n / 10)[None, :, None]).sum(axis=1)) ** 2) for k in range(6)]
    np.testing.assert_allclose(axis_power_spectrum(image, 1), direct, rtol=1e-10, atol=1e-12)


def test_checkerboard_and_tiling_grid_are_peaks_noise_is_not(rng):
    noise = rng.random((16, 96, 96))
    assert spectral_peaks(noise, (1, 1, 1)) == []
    checker = noise + 0.3 * (np.indices(noise.shape).sum(axis=0) % 2)
    assert {(p.axis, p.period_voxels) for p in spectral_peaks(checker, (1, 1, 1))} == {(0, 2.0), (1, 2.0), (2, 2.0)}
    grid = noise + (np.arange(96) % 12 == 0)[None, None, :]  # a seam every 12 voxels along x
    periods = [p.period_voxels for p in spectral_peaks(grid, (1, 0.5, 0.25)) if p.axis == 2]
    assert 12.0 in periods
    peak = next(p for p in spectral_peaks(grid, (1, 0.5, 0.25)) if p.period_voxels == 12.0)
    assert peak.frequency_per_um == pytest.approx(1 / (12 * 0.25))


def test_border_band_sees_a_step_at_a_face_but_not_a_trend(rng):
    base = rng.random((24, 40, 40)) * 0.2
    ramp = base + np.linspace(0, 0.5, 40)[None, None, :]  # content that brightens along x
    assert border_band(ramp, normalize=False).max() < 0.01
    band = ramp.copy()
    band[:2] += 0.3  # the first two z planes are too bright
    strengths = border_band(band, normalize=False)
    assert strengths[0, 0] == pytest.approx(0.3, abs=0.01) and np.delete(strengths.ravel(), 0).max() < 0.01


def test_artifact_check_flags_only_what_the_real_volume_lacks(rng):
    real = rng.random((24, 64, 64)) + 0.4 * (np.arange(64) % 2)[None, None, :]  # real x stripes
    clean = rng.random((24, 64, 64)) + 0.4 * (np.arange(64) % 2)[None, None, :]
    assert not artifact_check(clean, real, (1, 1, 1))["flagged"]
    checker_z = clean + 0.4 * (np.arange(24) % 2)[:, None, None]
    result = artifact_check(checker_z, real, (1, 1, 1))
    assert result["flagged"] and {p["axis"] for p in result["peaks"]} == {0}
    banded = clean.copy()
    banded[:, :, -2:] += 2.0
    result = artifact_check(banded, real, (1, 1, 1))
    assert result["flagged"] and result["border_band"] > 0.2 and "border band" in result["reasons"][-1]
    with pytest.raises(CellsynthError, match="3D"):
        artifact_check(clean[0], real, (1, 1, 1))
