"""The GAN losses against independent references: least squares to the targets +1 / -1
(Mao et al. 2017, a = -1, b = c = 1), binary cross-entropy on logits, mean absolute error."""

import numpy as np
import pytest
import torch
from scipy.special import expit

from cellsynth.gan.losses import discriminator_loss, generator_adversarial_loss, l1_loss


def _least_squares(scores, target):
    """Mean squared distance of each score to ``target``, one element at a time in float64."""
    values = [float(s) for s in scores.flatten()]
    return sum((v - target) ** 2 for v in values) / len(values)


@pytest.fixture
def scores(rng):
    return (torch.from_numpy(rng.normal(0.5, 1.2, (3, 1, 4, 5, 6)).astype(np.float32)),
            torch.from_numpy(rng.normal(-0.3, 0.8, (3, 1, 4, 5, 6)).astype(np.float32)))


def test_lsgan_discriminator_loss_is_half_the_squared_distance_to_the_targets(scores):
    real, fake = scores
    expected = 0.5 * (_least_squares(real, 1.0) + _least_squares(fake, -1.0))
    assert float(discriminator_loss(real, fake, "lsgan")) == pytest.approx(expected, rel=1e-5)


def test_lsgan_generator_loss_is_the_squared_distance_to_real(scores):
    _, fake = scores
    assert float(generator_adversarial_loss(fake, "lsgan")) == pytest.approx(_least_squares(fake, 1.0), rel=1e-5)


def test_lsgan_losses_vanish_exactly_at_the_targets_and_pull_towards_them():
    real, fake = torch.ones(2, 1, 3, 3, 3), -torch.ones(2, 1, 3, 3, 3)
    assert float(discriminator_loss(real, fake, "lsgan")) == 0.0
    assert float(generator_adversarial_loss(real, "lsgan")) == 0.0
    fake = torch.zeros(2, 1, 3, 3, 3, requires_grad=True)
    generator_adversarial_loss(fake, "lsgan").backward()
    assert (fake.grad < 0).all()  # descent raises the fakes' scores towards +1


def test_bce_losses_are_cross_entropies_of_the_logits(scores):
    real, fake = (s.double().numpy() for s in scores)
    expected_d = 0.5 * (-np.log(expit(real)).mean() - np.log(1 - expit(fake)).mean())
    assert float(discriminator_loss(*scores, "bce")) == pytest.approx(expected_d, rel=1e-5)
    assert float(generator_adversarial_loss(scores[1], "bce")) == pytest.approx(-np.log(expit(fake)).mean(), rel=1e-5)


def test_l1_loss_is_the_mean_absolute_error(rng):
    real, generated = rng.random((2, 1, 4, 6, 5)), rng.random((2, 1, 4, 6, 5))
    expected = np.abs(real - generated).mean()
    assert float(l1_loss(torch.from_numpy(real), torch.from_numpy(generated))) == pytest.approx(expected, rel=1e-6)


def test_unknown_adversarial_loss_is_refused():
    with pytest.raises(ValueError, match="lsgan"):
        generator_adversarial_loss(torch.zeros(1), "wgan")
    with pytest.raises(ValueError, match="lsgan"):
        discriminator_loss(torch.zeros(1), torch.zeros(1), "wgan")
