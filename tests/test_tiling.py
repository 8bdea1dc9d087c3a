"""Patch grid, blending weights, stitching, streaming and the seam metric."""

import itertools

import numpy as np
import pytest
import torch
import zarr

from cellsynth.errors import CellsynthError
from cellsynth.evaluate.metrics import seam_metric
from cellsynth.tiling import (
    BLENDS,
    PAPER_CROP,
    PAPER_OVERLAP,
    default_tiling,
    make_grid,
    nominal_redundancy,
    synthesize_tiled,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


class ConvStack(torch.nn.Module):
    """Three 3x3x3 convolutions with zero padding: receptive-field radius 3."""

    size_multiple = (1, 1, 1)
    halo = (3, 3, 3)

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Conv3d(2, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv3d(4, 4, 3, padding=1), torch.nn.Tanh(),
            torch.nn.Conv3d(4, 1, 3, padding=1), torch.nn.Sigmoid())

    def forward(self, x, origins):
        return self.net(x)


class PatchNormalized:
    """A model whose output depends on the patch (per-patch mean removed, like InstanceNorm)."""

    size_multiple = (1, 1, 1)
    halo = (40, 40, 40)

    def __call__(self, x, origins):
        v = x[:, 1:2]
        return (0.5 + 0.5 * (v - v.mean(dim=(2, 3, 4), keepdim=True))).clamp(0, 1)


class Channel:
    """Returns the positional-map channel unchanged."""

    size_multiple = (1, 1, 1)
    halo = (0, 0, 0)

    def __call__(self, x, origins):
        return x[:, 1:2]


def _inputs(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random(shape) > 0.6).astype(np.uint8), rng.random(shape).astype(np.float32)


def _whole(model, mask, pos):
    with torch.no_grad():
        return model(torch.from_numpy(np.stack([mask, pos]).astype(np.float32))[None], None)[0, 0].numpy()


@pytest.mark.parametrize("shape", [(13, 37, 41), (5, 70, 33), (31, 9, 58), (1, 1, 1)])
def test_tiled_equals_whole_volume(shape):
    model = ConvStack()
    mask, pos = _inputs(shape)
    reference = _whole(model, mask, pos)
    for batch_size in (1, 3):
        out = synthesize_tiled(model, mask, pos, patch=(12, 20, 20), overlap=2, crop=3, batch_size=batch_size,
                               progress=False)
        np.testing.assert_allclose(out, reference, atol=2e-6)


class MirroredConvStack(ConvStack):
    """The same network, tiled with the volume mirrored at its border (as generators are)."""

    mirror_border = True


@pytest.mark.parametrize("shape", [(13, 37, 41), (3, 70, 5)])
def test_mirrored_border_equals_the_network_on_the_mirrored_volume(shape):
    """With mirror_border, every voxel is computed as the whole network sees the volume reflected at
    its border (numpy.pad reflect), so zero padding leaves no band along the volume border."""
    model = MirroredConvStack()
    mask, pos = _inputs(shape)
    m = 3
    reference = _whole(model, np.pad(mask, m, mode="reflect"), np.pad(pos, m, mode="reflect"))[m:-m, m:-m, m:-m]
    out = synthesize_tiled(model, mask, pos, patch=(12, 20, 20), overlap=2, crop=m, progress=False)
    np.testing.assert_allclose(out, reference, atol=2e-6)
    flat_mask, flat_pos = np.zeros((12, 30, 30), np.uint8), np.full((12, 30, 30), 0.4, np.float32)
    flat = synthesize_tiled(model, flat_mask, flat_pos, patch=(12, 20, 20), overlap=2, crop=m, progress=False)
    np.testing.assert_allclose(flat, flat[6, 15, 15], atol=1e-6)  # a constant input stays constant to the border
    band = _whole(model, flat_mask, flat_pos)
    assert abs(band[0, 15, 15] - band[6, 15, 15]) > 1e-3  # zero padding would have drawn a band


def test_crop_below_halo_is_not_exact():
    model = ConvStack()
    mask, pos = _inputs((13, 37, 41))
    out = synthesize_tiled(model, mask, pos, patch=(12, 20, 20), overlap=2, crop=0, progress=False)
    assert np.abs(out - _whole(model, mask, pos)).max() > 1e-4


@pytest.mark.parametrize("blend", BLENDS)
def test_weights_normalize_to_one_without_holes(blend):
    shape = (23, 50, 61)
    grid = make_grid(shape, (10, 24, 20), (2, 5, 3), (2, 3, 1))
    total = np.zeros(shape)
    for (iz, iy, ix), origin in zip(np.ndindex(*(len(s) for s in grid.starts)), grid.origins):
        w = np.einsum("i,j,k->ijk", *(grid.weights_1d(a, blend)[i] for a, i in enumerate((iz, iy, ix))))
        region = tuple(slice(o, o + p) for o, p in zip(origin, grid.patch))
        total[region] += w[tuple(slice(0, s - o) for s, o in zip(shape, origin))]
    separable = np.einsum("i,j,k->ijk", *(grid.weight_sum_1d(a, blend) for a in range(3)))
    np.testing.assert_allclose(total, separable, rtol=1e-12)
    assert total.min() > 1e-6  # every voxel, volume borders included, is covered
    ones = np.ones(shape, np.float32)
    out = synthesize_tiled(Channel(), ones.astype(np.uint8), ones, patch=(10, 24, 20), overlap=(2, 5, 3),
                           crop=(2, 3, 1), blend=blend, progress=False)
    np.testing.assert_allclose(out, 1.0, atol=1e-6)


def test_linear_weights_are_a_partition_of_unity():
    grid = make_grid((64, 64, 64), (16, 16, 16), 4, 2)  # steps divide evenly: all overlaps equal
    assert len(set(np.diff(grid.starts[0]))) == 1
    for axis in range(3):
        np.testing.assert_allclose(grid.weight_sum_1d(axis, "linear"), 1.0, atol=1e-12)


def test_grid_covers_with_required_overlap():
    shape, patch, overlap, crop = (100, 77, 300), (24, 32, 64), (3, 4, 7), (2, 5, 6)
    grid = make_grid(shape, patch, overlap, crop, size_multiple=4)
    for axis in range(3):
        starts = grid.starts[axis]
        assert starts[0] == 0 and starts[-1] == shape[axis] - patch[axis]
        assert all(s % 4 == 0 for s in starts[:-1])
        kept = [(s + lo, s + hi) for s, (lo, hi) in zip(starts, (grid.kept(axis, i) for i in range(len(starts))))]
        assert kept[0][0] == 0 and kept[-1][1] == shape[axis]
        for (_, end), (begin, _) in itertools.pairwise(kept):
            assert end - begin >= overlap[axis]


def test_small_volume_is_padded_to_the_size_multiple():
    grid = make_grid((5, 30, 200), (16, 64, 64), 4, 4, size_multiple=8)
    assert grid.patch == (8, 32, 64) and grid.pad == (3, 2, 0) and grid.starts[0] == (0,)


def test_patch_adjusted_to_size_multiple_with_warning():
    with pytest.warns(UserWarning, match="adjusted"):
        grid = make_grid((100, 100, 100), (30, 64, 64), 2, 2, size_multiple=8)
    assert grid.patch == (24, 64, 64)


def test_overlap_plus_crop_larger_than_patch_is_refused():
    with pytest.raises(CellsynthError, match="smaller than the patch"):
        make_grid((100, 100, 100), (16, 64, 64), (8, 8, 8), (4, 4, 4))
    make_grid((10, 100, 100), (16, 64, 64), (8, 8, 8), (4, 4, 4))  # z fits one patch: no interior sides
    with pytest.raises(CellsynthError):
        make_grid((100, 100, 100), (16, 64, 64), -1, 0)


def test_redundancy_of_the_paper_setting_and_defaults():
    assert nominal_redundancy((64, 128, 128), PAPER_OVERLAP, PAPER_CROP) == pytest.approx(38.2, abs=0.1)
    patch, overlap, crop = default_tiling(PatchNormalized(), (64, 128, 128))
    assert (overlap, crop) == ((4, 8, 8), (8, 16, 16))
    assert nominal_redundancy(patch, overlap, crop) < 3.2
    # a model whose halo fits the crop is stitched exactly, without overlap
    assert default_tiling(ConvStack(), (16, 32, 32)) == ((16, 32, 32), (0, 0, 0), (3, 3, 3))


def test_seam_metric_small_for_defaults_large_for_bad_blend():
    shape = (48, 96, 96)
    z, y, x = np.meshgrid(*(np.linspace(0, 1, s, dtype=np.float32) for s in shape), indexing="ij")
    pos = (np.sin(6 * z) * np.cos(5 * y) + x).astype(np.float32)
    pos += np.random.default_rng(0).normal(0, 0.02, shape).astype(np.float32)
    mask = np.zeros(shape, np.uint8)
    model, patch = PatchNormalized(), (32, 64, 64)
    _, overlap, crop = default_tiling(model, patch)
    good = synthesize_tiled(model, mask, pos, patch=patch, progress=False)
    bad = synthesize_tiled(model, mask, pos, patch=patch, overlap=0, crop=0, blend="constant", progress=False)
    good_score = seam_metric(good, make_grid(shape, patch, overlap, crop))
    bad_score = seam_metric(bad, make_grid(shape, patch, 0, 0))
    assert good_score < 1.25 and bad_score > 2.0
    assert seam_metric(pos, make_grid(shape, patch, 0, 0)) == pytest.approx(1.0, abs=0.1)  # no tiling: no seams


def test_seam_metric_checks_the_grid():
    with pytest.raises(CellsynthError, match="does not match"):
        seam_metric(np.zeros((10, 10, 10)), make_grid((12, 10, 10), (4, 4, 4), 0, 0))
    assert seam_metric(np.random.default_rng(0).random((8, 8, 8))) == 1.0  # one patch: no borders


def test_zarr_streaming_matches_numpy_and_writes_uint16(tmp_path):
    shape = (20, 40, 45)
    mask, pos = _inputs(shape, seed=3)
    model = ConvStack()
    expected = synthesize_tiled(model, mask, pos, patch=(12, 20, 20), overlap=2, crop=3, progress=False)
    on_disk = lambda name, dtype: zarr.create_array(str(tmp_path / name), shape=shape, dtype=dtype,  # noqa: E731
                                                    chunks=(8, 16, 16), fill_value=0)
    zmask, zpos, out = on_disk("m.zarr", np.uint8), on_disk("p.zarr", np.float32), on_disk("o.zarr", np.float32)
    zmask[...], zpos[...] = mask, pos
    synthesize_tiled(model, zmask, zpos, patch=(12, 20, 20), overlap=2, crop=3, out=out, progress=False)
    np.testing.assert_array_equal(out[...], expected)
    out16 = np.zeros(shape, np.uint16)
    synthesize_tiled(model, mask, pos, patch=(12, 20, 20), overlap=2, crop=3, out=out16, progress=False)
    np.testing.assert_array_equal(out16, np.round(expected * 65535).astype(np.uint16))


def test_bad_model_output_and_arguments():
    mask, pos = _inputs((8, 8, 8))

    class Wrong:
        size_multiple, halo = (1, 1, 1), (0, 0, 0)

        def __call__(self, x, origins):
            return x

    with pytest.raises(CellsynthError, match="must return"):
        synthesize_tiled(Wrong(), mask, pos, progress=False)
    with pytest.raises(CellsynthError, match="same shape"):
        synthesize_tiled(Channel(), mask, pos[:4], progress=False)
    with pytest.raises(CellsynthError, match="blend"):
        synthesize_tiled(Channel(), mask, pos, blend="cubic", progress=False)
    with pytest.raises(CellsynthError, match="batch size"):
        synthesize_tiled(Channel(), mask, pos, batch_size=0, progress=False)


def test_axis_starts_always_end_and_keep_their_promises():
    """Origins from 0 to length - patch, multiples of the model's size multiple (but the last),
    gaps of at most the step: for every combination, including those where evenly spread
    origins do not exist (the search used to loop forever, e.g. span 10, step 8, multiple 8)."""
    from cellsynth.tiling import _axis_starts

    for length in range(9, 120, 7):
        for patch in (8, 16, 24):
            for multiple in (1, 2, 4, 8):
                for step in range(multiple, patch + 1):
                    if length <= patch:
                        continue
                    starts = _axis_starts(length, patch, step, multiple)
                    assert starts[0] == 0 and starts[-1] == length - patch
                    assert all(0 < b - a <= step for a, b in zip(starts, starts[1:]))
                    assert all(s % multiple == 0 for s in starts[:-1])
    assert _axis_starts(18, 8, 8, 8) == (0, 8, 10)


def test_a_step_below_the_size_multiple_is_an_error():
    """--patch 8 8 8 with a model of size multiple 8 (patch - 2 crop - overlap = 5 < 8) looped
    forever; it is a one-line error now."""
    with pytest.raises(CellsynthError, match="patch step along z .* below the model's size multiple 8"):
        make_grid((40, 40, 40), patch=(8, 8, 8), overlap=1, crop=1, size_multiple=8)
