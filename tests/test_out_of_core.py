"""Bounded-memory synthesis: the slab-wise distance transform and the tiling within a budget give
what the whole-volume computation gives."""

import numpy as np
import pytest
import torch
import zarr
from scipy import ndimage

from cellsynth.conditioning import (
    out_of_core_blocks,
    parabolic_minimum,
    signed_distance_out_of_core,
    signed_distance_um,
)
from cellsynth.errors import CellsynthError
from cellsynth.render.physics import PhysicsRenderer
from cellsynth.synthesis import synthesize_image
from cellsynth.tiling import make_grid, synthesize_tiled, tiling_memory


def test_parabolic_minimum_is_the_brute_force_minimum(rng):
    for _ in range(100):
        n, columns = rng.integers(1, 14), rng.integers(1, 12)
        f = rng.random((n, columns)) * 30
        f[rng.random((n, columns)) < 0.4] = np.inf
        spacing = rng.uniform(0.1, 3.0)
        k = np.arange(n)
        brute = np.min(f[None] + (spacing * (k[:, None] - k[None, :]))[:, :, None] ** 2, axis=1)
        got = parabolic_minimum(f, spacing)
        assert np.array_equal(np.isinf(got), np.isinf(brute))
        np.testing.assert_allclose(got[np.isfinite(got)], brute[np.isfinite(brute)], rtol=1e-12)


@pytest.mark.parametrize("voxel", [(1.0, 1.0, 1.0), (2.0, 0.5, 0.7), (0.3, 1.0, 2.0)])
def test_slab_wise_distances_are_the_whole_volume_ones(rng, voxel):
    """Tiny budgets (one plane, one row at a time) and on-disk arrays: the same distances as one
    transform of the whole volume (to float32 rounding)."""
    foreground = ndimage.binary_opening(rng.random((11, 23, 19)) < 0.6).astype(np.uint8)
    reference = signed_distance_um(foreground, voxel)
    for budget in (1, 10**4, 10**9):
        out, scratch = np.zeros(foreground.shape, np.float32), np.zeros(foreground.shape, np.float32)
        signed_distance_out_of_core(foreground, voxel, out, memory_budget=budget, scratch=scratch)
        np.testing.assert_allclose(out, reference, rtol=2e-6, atol=1e-6)
    whole = np.ones((4, 5, 6), np.uint8)
    out = np.zeros(whole.shape, np.float32)
    signed_distance_out_of_core(whole, voxel, out, memory_budget=100, scratch=np.zeros(whole.shape, np.float32))
    assert np.isinf(out).all() and (out > 0).all()  # as signed_distance_um: no surface inside the volume
    with pytest.raises(CellsynthError, match="empty"):
        signed_distance_out_of_core(np.zeros((3, 4, 5), np.uint8), voxel, np.zeros((3, 4, 5), np.float32),
                                    memory_budget=100, scratch=np.zeros((3, 4, 5), np.float32))
    assert out_of_core_blocks((256, 1024, 1024), 2**30) == (64, 51) and out_of_core_blocks((8, 8, 8), 1) == (1, 1)


def test_the_tiling_plan_fits_the_budget():
    grid = make_grid((64, 256, 256), (32, 64, 64), 0, 2)
    model = PhysicsRenderer((1.0, 0.5, 0.5))
    free = tiling_memory(grid, 4, model)
    assert free.batch_size == 4 and free.lookahead and free.flush_planes == 32
    for budget in (28 * 2**20, 32 * 2**20, 40 * 2**20, 96 * 2**20):
        plan = tiling_memory(grid, 4, model, budget)
        assert plan.nbytes <= budget and plan.batch_size >= 1
    tight, roomy = tiling_memory(grid, 4, model, 32 * 2**20), tiling_memory(grid, 4, model, 96 * 2**20)
    assert tight.batch_size == 1 and not tight.lookahead and 1 < tight.flush_planes < 32
    assert roomy.batch_size == 4 and roomy.lookahead and roomy.flush_planes == 32
    with pytest.raises(CellsynthError, match="memory budget of 4 MiB; raise the budget or use a smaller --patch"):
        tiling_memory(grid, 4, model, 4 * 2**20)


def test_a_budget_changes_the_work_not_the_image(tmp_path, rng, torch_one_thread):
    """On-disk mask and output, with and without a tight budget, and in memory: the physics
    renderer's image is the same bit for bit (zarr chunk rows written whole, planes flushed a
    few at a time, batch 1 without lookahead)."""
    shape = (40, 96, 80)  # 1.5 MB for one distance transform: more than the budget below
    foreground = np.zeros(shape, np.uint8)
    foreground[3:37, 6:90, 5:75] = 1
    mask = foreground & (rng.random(shape) < 0.3).astype(np.uint8)
    disk = {name: zarr.create_array(str(tmp_path / f"{name}.zarr"), shape=shape, dtype=dtype, chunks=(8, 16, 16))
            for name, dtype in (("mask", np.uint8), ("fg", np.uint8), ("a", np.uint16), ("b", np.uint16))}
    disk["mask"][...], disk["fg"][...] = mask, foreground
    settings = dict(model="physics", patch=(8, 24, 24), progress=False)
    in_memory = synthesize_image(mask, foreground, (1.0, 0.5, 0.5), **settings)
    synthesize_image(disk["mask"], disk["fg"], (1.0, 0.5, 0.5), out=disk["a"], **settings)
    synthesize_image(disk["mask"], disk["fg"], (1.0, 0.5, 0.5), out=disk["b"], memory_budget=1_200_000, **settings)
    expected = np.rint(np.clip(in_memory, 0, 1) * 65535).astype(np.uint16)
    np.testing.assert_array_equal(disk["a"][...], expected)
    np.testing.assert_array_equal(disk["b"][...], expected)
    positional = np.full(shape, 0.5, np.float32)
    out = np.zeros(shape, np.float32)
    synthesize_tiled(PhysicsRenderer((1.0, 0.5, 0.5)), mask, positional, patch=(8, 24, 24), out=out,
                     memory_budget=1_000_000, progress=False)
    with torch.inference_mode():
        whole = synthesize_tiled(PhysicsRenderer((1.0, 0.5, 0.5)), mask, positional, patch=(8, 24, 24),
                                 progress=False)
    np.testing.assert_array_equal(out, whole)
