"""Counter-based randomness: hash against a numpy reference, statistics, tiling invariance."""

import numpy as np
import pytest
import torch
from scipy import stats

from cellsynth.render import randomness


def test_hash_matches_numpy_uint32_reference():
    x = np.random.default_rng(0).integers(0, 2**32, 10000, dtype=np.uint64).astype(np.uint32)
    ref = x.copy()
    for shift, mult in ((16, 0x7FEB352D), (15, 0x846CA68B), (16, None)):
        ref ^= ref >> np.uint32(shift)
        if mult:
            ref *= np.uint32(mult)
    got = randomness.mix32(torch.from_numpy(x.view(np.int32).copy())).numpy().view(np.uint32)
    np.testing.assert_array_equal(got, ref)


def test_noise_is_standard_normal_and_a_function_of_the_global_voxel():
    whole = randomness.voxel_normal(7, [0, 0, 0], (16, 40, 64), "cpu")
    assert stats.kstest(whole.numpy().ravel(), "norm").pvalue > 1e-3
    part = randomness.voxel_normal(7, [3, 5, 11], (9, 20, 31), "cpu")
    assert torch.equal(whole[3:12, 5:25, 11:42], part)
    assert not torch.equal(randomness.voxel_normal(8, [0, 0, 0], (4, 8, 8), "cpu"), whole[:4, :8, :8])
    # neighbouring voxels are uncorrelated
    a = whole.numpy()
    for axis in range(3):
        assert abs(np.corrcoef(np.take(a, range(1, a.shape[axis]), axis).ravel(),
                               np.take(a, range(a.shape[axis] - 1), axis).ravel())[0, 1]) < 0.03


@pytest.mark.parametrize("smooth", [True, False])
def test_value_noise_is_tiling_invariant_and_bounded(smooth):
    cells = (3, 7, 5)
    whole = randomness.value_noise(1, 2, [0, 0, 0], (20, 40, 50), cells, 0.3, smooth=smooth, device="cpu")
    part = randomness.value_noise(1, 2, [5, 9, 11], (10, 20, 30), cells, 0.3, smooth=smooth, device="cpu")
    assert torch.equal(whole[5:15, 9:29, 11:41], part)
    assert whole.abs().max() <= 0.3 and whole.std() > 0.05
    # lattice nodes carry the hashed values; between them the field interpolates
    assert float((whole[:, :, 1:] - whole[:, :, :-1]).abs().max()) < 0.3
