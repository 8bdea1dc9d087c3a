"""The GAN losses against independent formulas (scipy for the Wasserstein distance)."""

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance

from cellsynth.gan.losses import (
    discriminator_loss,
    generator_adversarial_loss,
    histogram_loss,
    l1_loss,
)


def test_histogram_loss_is_the_mean_wasserstein_distance_of_each_pair(rng):
    real = torch.from_numpy(rng.gamma(2.0, 0.1, (3, 1, 4, 6, 5)).astype(np.float32))
    fake = torch.from_numpy(rng.normal(0.3, 0.2, (3, 1, 4, 6, 5)).astype(np.float32))
    expected = np.mean([wasserstein_distance(r.ravel(), f.ravel()) for r, f in zip(real.numpy(), fake.numpy())])
    assert float(histogram_loss(real, fake)) == pytest.approx(expected, rel=1e-5)


def test_histogram_loss_ignores_where_intensities_are_but_l1_does_not(rng):
    real = torch.from_numpy(rng.random((2, 1, 4, 8, 8)).astype(np.float32))
    shuffled = real.flatten(1)[:, torch.randperm(real[0].numel())].view_as(real)
    assert float(histogram_loss(real, shuffled)) == 0.0
    assert float(l1_loss(real, shuffled)) > 0.1


def test_histogram_loss_gradient_moves_the_histogram_towards_the_real_one(rng):
    real = torch.from_numpy(rng.normal(0.7, 0.1, (1, 1, 4, 8, 8)).astype(np.float32))
    fake = torch.full_like(real, 0.2, requires_grad=True)
    histogram_loss(real, fake).backward()
    assert (fake.grad < 0).all()  # every voxel is too dark: descent brightens it


def test_adversarial_losses_follow_their_formulas():
    real, fake = torch.tensor([2.0, -0.5]), torch.tensor([0.5, -3.0])
    assert float(discriminator_loss(real, fake, "lsgan")) == pytest.approx(
        0.5 * (((real - 1) ** 2).mean() + ((fake + 1) ** 2).mean()))
    bce = 0.5 * (-np.log(1 / (1 + np.exp(-real.numpy()))).mean() - np.log(1 - 1 / (1 + np.exp(-fake.numpy()))).mean())
    assert float(discriminator_loss(real, fake, "bce")) == pytest.approx(bce, rel=1e-5)
    assert float(generator_adversarial_loss(fake, "lsgan")) == pytest.approx(float(((fake - 1) ** 2).mean()))
    with pytest.raises(ValueError, match="lsgan"):
        generator_adversarial_loss(fake, "wgan")
