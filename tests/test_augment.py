"""Adaptive discriminator augmentation: each augmentation's statistics, p, and the ADA update."""

import numpy as np
import pytest
import torch

from cellsynth.gan.augment import AdaptiveAugment


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def test_scale_is_uniform_in_paper_range():
    factors = AdaptiveAugment().scale(torch.ones(4000, 1, 1, 1, 1)).ravel().numpy()
    assert factors.min() >= 0.6 and factors.max() <= 1.2
    assert abs(factors.mean() - 0.9) < 0.01
    assert abs(factors.std() - 0.6 / np.sqrt(12)) < 0.01
    # each sample gets one factor for all its voxels
    out = AdaptiveAugment().scale(torch.ones(3, 1, 4, 4, 4))
    assert torch.equal(out, out[:, :, :1, :1, :1].expand_as(out))


def test_noise_is_gaussian_with_std_0_1():
    values = AdaptiveAugment().noise(torch.zeros(2, 1, 32, 32, 32)).ravel().numpy()
    assert abs(values.mean()) < 0.002 and abs(values.std() - 0.1) < 0.002
    assert abs(np.mean(np.abs(values) > 0.196) - 0.05) < 0.005


def test_shuffle_permutes_a_25_cube():
    x = torch.rand(2, 1, 32, 40, 36)
    out = AdaptiveAugment().shuffle(x)
    for i in range(2):
        changed = np.argwhere((out[i, 0] != x[i, 0]).numpy())
        extent = changed.max(0) - changed.min(0) + 1
        assert (extent <= 25).all() and (extent >= 23).all()  # a few border voxels may stay in place
        box = tuple(slice(a, a + 25) for a in changed.min(0))
        inside = np.sort(x[i, 0].numpy()[box].ravel())
        assert len(inside) == 25**3 and np.array_equal(inside, np.sort(out[i, 0].numpy()[box].ravel()))
    assert torch.equal(torch.sort(out.ravel()).values, torch.sort(x.ravel()).values)


def test_shuffle_region_is_clipped_to_small_patches():
    x = torch.rand(1, 1, 8, 16, 16)
    out = AdaptiveAugment().shuffle(x)
    assert torch.equal(torch.sort(out.ravel()).values, torch.sort(x.ravel()).values)
    assert not torch.equal(out, x)


def test_inpaint_fills_a_15_cube_with_the_mean():
    x = torch.rand(3, 1, 32, 32, 32)
    out = AdaptiveAugment().inpaint(x)
    for i in range(3):
        changed = np.argwhere((out[i, 0] != x[i, 0]).numpy())
        assert len(changed) == 15**3
        assert (changed.max(0) - changed.min(0) + 1 == 15).all()
        filled = out[i, 0].numpy()[tuple(slice(a, a + 15) for a in changed.min(0))]
        assert np.allclose(filled, float(x[i].mean()))


def test_decline_is_a_linear_ramp_along_one_axis():
    ada = AdaptiveAugment()
    axes_seen, directions = set(), set()
    for _ in range(40):
        out = ada.decline(torch.ones(1, 1, 6, 7, 8))[0, 0].numpy()
        varying = [a for a in range(3) if np.ptp(out, axis=a).max() > 0]
        assert len(varying) == 1
        axis = varying[0]
        profile = out.mean(axis=tuple(a for a in range(3) if a != axis))
        assert np.allclose(np.diff(profile, 2), 0, atol=1e-5)  # linear
        assert np.isclose(profile.max(), 1) and 0.5 - 1e-6 <= profile.min() <= 1
        axes_seen.add(axis)
        directions.add(bool(profile[0] > profile[-1]))
    assert axes_seen == {0, 1, 2} and directions == {True, False}


def test_each_augmentation_applies_with_probability_p():
    x = torch.rand(400, 1, 16, 16, 16)
    assert torch.equal(AdaptiveAugment(p=0.0)(x), x)
    changed = (AdaptiveAugment(p=1.0)(x) != x).flatten(1).any(1)
    assert bool(changed.all())
    # with p = 0.5, a sample escapes all five augmentations with probability 0.5**5
    changed = (AdaptiveAugment(p=0.5)(x) != x).flatten(1).any(1).float().mean()
    assert abs(float(changed) - (1 - 0.5**5)) < 0.04


def test_augmentations_are_differentiable():
    ada = AdaptiveAugment(p=1.0)
    fake = torch.rand(2, 1, 16, 16, 16, requires_grad=True)
    for op in (ada.scale, ada.noise, ada.shuffle, ada.inpaint, ada.decline, ada):
        (grad,) = torch.autograd.grad((op(fake) * torch.arange(16.0)).sum(), fake)
        assert grad.abs().sum() > 0 and torch.isfinite(grad).all()


class StubDiscriminator:
    """Raw scores with a chosen share of positive answers on real images."""

    def __init__(self, share_positive: float):
        self.share = share_positive

    def __call__(self, real: torch.Tensor) -> torch.Tensor:
        n = real.numel()
        return torch.where(torch.arange(n) < self.share * n, 1.5, -0.5).view_as(real)


@pytest.mark.parametrize("share,direction", [(0.95, +1), (0.85, +1), (0.75, -1), (0.1, -1)])
def test_ada_moves_p_towards_the_target(share, direction):
    ada = AdaptiveAugment(p=0.5, speed_images=200)
    d = StubDiscriminator(share)
    for _ in range(3):  # accumulate over several steps of 4 images, then one update
        ada.accumulate(d(torch.zeros(4, 25)))
    r = ada.update()
    assert r == pytest.approx(2 * share - 1, abs=1e-9)  # E[sign]
    assert float(ada.p) == pytest.approx(0.5 + direction * 12 / 200)  # 12 images seen


def test_ada_speed_is_bounded_by_the_images_seen():
    """Like stylegan2-ada: however often p is updated, it needs speed_images images from 0 to 1."""
    for images_per_update in (1, 8):
        ada = AdaptiveAugment(p=0.0, speed_images=100)
        updates = 0
        while float(ada.p) < 1.0:
            ada.accumulate(torch.ones(images_per_update, 3))  # an overfitting discriminator
            ada.update()
            updates += 1
        assert updates * images_per_update == pytest.approx(100, abs=images_per_update)
    with pytest.raises(ValueError, match="speed_images"):
        AdaptiveAugment(speed_images=0)


def test_ada_p_stays_in_unit_interval_and_needs_statistics():
    ada = AdaptiveAugment(p=0.98, speed_images=100)
    ada.accumulate(torch.ones(10))
    ada.update()
    assert float(ada.p) == 1.0
    assert np.isnan(ada.update()) and float(ada.p) == 1.0  # nothing accumulated: p unchanged
    ada = AdaptiveAugment(p=0.02, speed_images=100)
    ada.accumulate(-torch.ones(10))
    ada.update()
    assert float(ada.p) == 0.0


def test_p_is_a_buffer_saved_with_the_state():
    ada = AdaptiveAugment(p=0.35)
    assert "p" in dict(ada.named_buffers()) and not list(ada.parameters())
    other = AdaptiveAugment()
    other.load_state_dict(ada.state_dict())
    assert float(other.p) == pytest.approx(0.35)
