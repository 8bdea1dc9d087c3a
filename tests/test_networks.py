"""Generator and discriminator: shapes, 3D pixel shuffle, receptive field, tiling independence."""

import numpy as np
import pytest
import torch

from cellsynth.gan.networks import PatchGAN3D, UNetGenerator, pixel_shuffle_3d
from cellsynth.render.gan import GeneratorModel, voxel_noise


def reference_pixel_shuffle(x: np.ndarray, f: int) -> np.ndarray:
    """Channel c*f**3 + (i*f + j)*f + k goes to sub-voxel (i, j, k), by explicit strided assignment."""
    n, c, z, y, x_ = x.shape
    out = np.zeros((n, c // f**3, z * f, y * f, x_ * f), x.dtype)
    for ch in range(c // f**3):
        for i in range(f):
            for j in range(f):
                for k in range(f):
                    out[:, ch, i::f, j::f, k::f] = x[:, ch * f**3 + (i * f + j) * f + k]
    return out


@pytest.mark.parametrize("f", [1, 2, 3])
def test_pixel_shuffle_matches_reference(f):
    x = torch.randn(2, 3 * f**3, 2, 3, 4)
    assert np.array_equal(pixel_shuffle_3d(x, f).numpy(), reference_pixel_shuffle(x.numpy(), f))


def test_pixel_shuffle_agrees_with_torch_2d():
    # a 3D shuffle of a volume with one z plane per channel group reduces to torch's 2D shuffle
    # when the z sub-voxels are split off: check the yx part against torch.nn.functional.pixel_shuffle
    x = torch.randn(1, 8, 1, 3, 5)
    out = pixel_shuffle_3d(x, 2)  # (1, 1, 2, 6, 10)
    for i in range(2):
        ref = torch.nn.functional.pixel_shuffle(x[:, 4 * i:4 * i + 4, 0], 2)
        assert torch.equal(out[:, :, i], ref)


def test_pixel_shuffle_rejects_bad_channels():
    with pytest.raises(ValueError):
        pixel_shuffle_3d(torch.zeros(1, 7, 2, 2, 2))


@pytest.mark.parametrize("shape", [(8, 16, 16), (16, 8, 24), (24, 32, 8)])
def test_generator_shapes_and_range(shape):
    g = UNetGenerator(width=2, depth=3, noise=True)
    with torch.no_grad():
        out = g(torch.randn(2, 2, *shape))
    assert out.shape == (2, 1, *shape)
    assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_generator_rejects_bad_patch():
    with pytest.raises(ValueError, match="multiples of 4"):
        UNetGenerator(width=2, depth=2)(torch.zeros(1, 2, 6, 8, 8))


@pytest.mark.parametrize("layers,shape,expected", [(2, (16, 16, 16), (2, 2, 2)), (3, (32, 64, 64), (2, 6, 6)),
                                                   (3, (24, 24, 48), (1, 1, 4))])
def test_patchgan_shapes(layers, shape, expected):
    d = PatchGAN3D(width=2, layers=layers)
    assert d(torch.rand(3, 1, *shape), torch.rand(3, 1, *shape)).shape == (3, 1, *expected)


@pytest.mark.parametrize(("depth", "padding", "blur"), [(1, "replicate", True), (2, "replicate", True),
                                                        (2, "zeros", False)])
def test_halo_is_the_exact_receptive_field(depth, padding, blur):
    torch.manual_seed(0)
    g = UNetGenerator(width=2, depth=depth, padding=padding, upsample_blur=blur).double()
    n = 96
    x = torch.randn(1, 2, 4, 4, n, dtype=torch.double, requires_grad=True)
    out = g(x)
    reach = 0
    for c in range(40, 40 + 2**depth):  # every sub-voxel phase
        (grad,) = torch.autograd.grad(out[0, 0, 2, 2, c], x, retain_graph=True)
        touched = (grad.abs().sum(dim=(0, 1, 2, 3)) > 0).nonzero().ravel()
        reach = max(reach, c - int(touched.min()), int(touched.max()) - c)
    assert reach == g.halo


@pytest.mark.parametrize("padding", ["replicate", "zeros"])
def test_upsampling_blur_removes_the_pixel_shuffle_checkerboard(padding):
    """Trained weights give each sub-voxel of a pixel shuffle its own value: a period-2 pattern
    even for a constant input. After the binomial filter a constant input gives a constant output."""
    torch.manual_seed(0)
    x = torch.zeros(1, 2, 24, 28, 28, dtype=torch.double)
    x[:, 1] = 0.7
    spread = {}
    for blur in (False, True):
        g = UNetGenerator(width=4, depth=1, padding=padding, upsample_blur=blur).double()
        with torch.no_grad():
            for param in g.parameters():
                param.add_(0.05 * torch.randn_like(param))  # as after training: the ICNR copies differ
            h = g.halo
            out = g(x)[0, 0, h:-h, h:-h, h:-h]  # beyond the reach of the padding
        spread[blur] = float(out.std())
    assert spread[False] > 3e-4 and spread[True] < 1e-12


def test_output_does_not_depend_on_tiling():
    """No normalization + per-global-voxel noise: a voxel further than the halo from the patch edge
    gets the same value in any patch, so tiled synthesis shows no seams."""
    torch.manual_seed(1)
    g = UNetGenerator(width=2, depth=1, noise=True)
    torch.nn.init.normal_(g.noise_weight, std=1.0)
    model = GeneratorModel(g, "nuclei", seed=3)
    h = g.halo
    volume = torch.rand(1, 2, 2 * h + 8, 2 * h + 8, 2 * h + 10)
    whole = model(volume, torch.tensor([[0, 0, 0]]))
    corner = (2, 4, 2)
    sub = volume[:, :, corner[0]:corner[0] + 2 * h + 4, corner[1]:, corner[2]:corner[2] + 2 * h + 6]
    part = model(sub, torch.tensor([corner]))
    inner_part = part[..., h:-h, h:-h, h:-h]
    inner_whole = whole[..., corner[0] + h:corner[0] + 2 * h + 4 - h, corner[1] + h:-h,
                        corner[2] + h:corner[2] + 2 * h + 6 - h]
    assert inner_part.numel() > 0
    torch.testing.assert_close(inner_part, inner_whole, rtol=1e-5, atol=1e-6)
    # the noise matters: another seed changes the output
    other = GeneratorModel(g, "nuclei", seed=4)(volume, torch.tensor([[0, 0, 0]]))
    assert not torch.allclose(other, whole)


def test_voxel_noise_is_standard_normal_and_global():
    noise = voxel_noise(torch.tensor([[0, 0, 0], [5, 0, 0]]), (10, 64, 64), seed=7)
    values = noise.numpy().ravel()
    assert abs(values.mean()) < 0.01 and abs(values.std() - 1) < 0.01
    assert abs(np.mean(values > 1.96) - 0.025) < 0.003
    # overlapping patches agree on shared voxels; neighbouring voxels are uncorrelated
    torch.testing.assert_close(noise[0, 0, 5:], noise[1, 0, :5], rtol=0, atol=0)
    flat = noise[0, 0]
    assert abs(float((flat[:, :, 1:] * flat[:, :, :-1]).mean())) < 0.02
