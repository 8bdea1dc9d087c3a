"""The consistency term: images of simulated masks must show the structure where the mask says.

The discriminator judges images of simulated masks against real patches without pairing, so
nothing in the adversarial loss ties an image to its mask: a generator could draw a
realistic texture and ignore the mask (the shipped nuclei generator of issue 17 did, with a
contrast-to-noise ratio of 0.02-0.04 against the real 1.2). Two ways to tie them were
considered:

- a **structure-contrast loss** (mean inside the mask against mean outside, per patch):
  cheap, but it only constrains two numbers per patch, so the structure may be misplaced,
  thinned or doubled as long as the means come out right;
- a **segmenter** that must recover the mask from the generated image, voxel by voxel
  (chosen): it penalises every missing, extra or misplaced structure, as a cycle
  consistency (CycleGAN) does with a learned inverse.

The segmenter is a small U-Net trained on the real training pairs before the GAN
(:func:`train_structure_segmenter`) and then frozen: trained jointly on generated images it
could learn to read whatever code the generator writes into them. It sees each real patch
with a random gain, offset, gamma and noise, so that it recognises structures, not one
exact intensity scale. :func:`consistency_loss` is its binary cross-entropy on a generated
image against the simulated mask, computed from logits (a cross-entropy on clamped
probabilities has no gradient where the segmenter is sure and wrong, and a first segmenter
trained that way on the ovule walls predicted no wall at all) and weighted so that the
structure counts as much as the rest; gradients flow through the frozen segmenter into the
generator.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from cellsynth.gan.data import PatchSampler, TrainingVolume
from cellsynth.gan.networks import UNetGenerator

SEGMENTER_WIDTH = 8
SEGMENTER_DEPTH = 2
SEGMENTER_LR = 3e-3


def _jitter(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random gain, offset, gamma and Gaussian noise per patch (values stay in [0, 1])."""
    n = image.shape[0]
    shape = (n, 1, 1, 1, 1)

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(shape, generator=generator)

    gamma, gain, offset, noise = uniform(0.7, 1.4), uniform(0.7, 1.3), uniform(-0.1, 0.1), uniform(0.0, 0.08)
    out = image.clamp(0, 1) ** gamma * gain + offset
    out = out + noise * torch.randn(image.shape, generator=generator)
    return out.clamp(0, 1)


def consistency_loss(segmenter: torch.nn.Module, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy between ``segmenter(image)`` and ``mask`` (both ``(N, 1, Z, Y, X)``), in float32.

    Structure and background voxels are weighted so that each class counts half, whatever
    the share of structure (thin walls are a fifth of the voxels or less).
    """
    mask = mask.float()
    share = mask.mean().clamp(0.01, 0.99)
    weight = torch.where(mask > 0.5, 0.5 / share, 0.5 / (1 - share))
    return F.binary_cross_entropy_with_logits(segmenter(image, logits=True).float(), mask, weight=weight)


def train_structure_segmenter(volumes: Sequence[TrainingVolume], patch: Sequence[int], steps: int, seed: int, *,
                              batch: int = 2, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Train a small U-Net to predict the structure mask from a real image, then freeze it.

    Parameters
    ----------
    volumes
        Real training volumes (their training parts only).
    patch
        Patch size (z, y, x); sides multiples of ``2 ** SEGMENTER_DEPTH``.
    steps
        Adam steps, each on ``batch`` random patches (flips, rotations, intensity jitter).
    seed
        Seed of the weights, the patches and the jitter.
    batch
        Patches per step.
    device
        Torch device.

    Returns
    -------
    torch.nn.Module
        The segmenter (a :class:`~cellsynth.gan.networks.UNetGenerator` with one input and one
        sigmoid output), in eval mode with gradients off for its weights.
    """
    torch.manual_seed(seed)
    net = UNetGenerator(in_channels=1, width=SEGMENTER_WIDTH, depth=SEGMENTER_DEPTH, noise=False).to(device)
    sampler = PatchSampler(volumes, patch, np.random.default_rng([seed, 17]), paired=True)
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(net.parameters(), lr=SEGMENTER_LR)
    for _ in range(steps):
        drawn = sampler.sample(batch)
        image = _jitter(torch.from_numpy(drawn["image"]), generator).to(device)
        loss = consistency_loss(net, image, torch.from_numpy(drawn["mask"]).to(device))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    return net.eval().requires_grad_(False)
