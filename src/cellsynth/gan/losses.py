"""Losses of the conditional GAN: adversarial (LSGAN or BCE) and L1 (identity, paired).

The discriminator's outputs are raw scores whose sign means real (> 0) or fake (< 0), as
the ADA statistic r = E[sign(D(real))] needs. The LSGAN variant therefore uses the
symmetric targets +1 (real) and -1 (fake) (Mao et al. 2017, the a = -1, b = 1 coding),
with the generator aiming at +1; BCE uses the scores as logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ADVERSARIAL_LOSSES = ("lsgan", "bce")


def _check(kind: str) -> None:
    if kind not in ADVERSARIAL_LOSSES:
        raise ValueError(f"adversarial loss must be one of {ADVERSARIAL_LOSSES}, got {kind!r}")


def discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor, kind: str = "lsgan") -> torch.Tensor:
    """Loss of the discriminator: real patches towards "real", generated ones towards "fake"."""
    _check(kind)
    real_scores, fake_scores = real_scores.float(), fake_scores.float()
    if kind == "lsgan":
        return 0.5 * (((real_scores - 1) ** 2).mean() + ((fake_scores + 1) ** 2).mean())
    return 0.5 * (F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean())


def generator_adversarial_loss(fake_scores: torch.Tensor, kind: str = "lsgan") -> torch.Tensor:
    """Adversarial loss of the generator: its images should be scored "real"."""
    _check(kind)
    fake_scores = fake_scores.float()
    if kind == "lsgan":
        return ((fake_scores - 1) ** 2).mean()
    return F.softplus(-fake_scores).mean()


def l1_loss(real: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
    """Mean absolute error between a real image and a generated one.

    Serves both of the generator's reconstruction terms: the paper's identity loss
    ``||i_real - G(i_real)||_1`` (the generator applied to the real image in place of the
    mask, with the image's positional map as the second channel) and, for aligned pairs
    (masks made from the images), the paired loss ``||i_real - G(m)||_1``.
    """
    return F.l1_loss(generated.float(), real.float())
