"""The consistency term: the weighted cross-entropy against a formula, and a segmenter that learns."""

import numpy as np
import pytest
import torch

from cellsynth.gan.consistency import consistency_loss, train_structure_segmenter
from cellsynth.gan.data import TrainingVolume

pytestmark = pytest.mark.usefixtures("torch_one_thread")


class Affine(torch.nn.Module):
    """A stand-in segmenter whose logits are ``3 * image - 1``."""

    def forward(self, x, noise=None, logits=False):
        z = 3 * x - 1
        return z if logits else torch.sigmoid(z)


def test_consistency_loss_is_the_class_balanced_cross_entropy(rng):
    image = torch.from_numpy(rng.random((2, 1, 4, 8, 8)).astype(np.float32))
    mask = torch.from_numpy((rng.random((2, 1, 4, 8, 8)) < 0.2).astype(np.float32))
    z = (3 * image - 1).double().numpy()
    m = mask.double().numpy()
    p = 1 / (1 + np.exp(-z))
    share = m.mean()
    per_voxel = -(m * np.log(p) + (1 - m) * np.log(1 - p))
    expected = np.mean(np.where(m > 0.5, 0.5 / share, 0.5 / (1 - share)) * per_voxel)
    assert float(consistency_loss(Affine(), image, mask)) == pytest.approx(expected, rel=1e-5)


def test_the_segmenter_learns_the_structure_of_real_images_and_is_frozen(rng):
    shape = (16, 32, 32)
    zz, yy, xx = np.indices(shape)
    mask = np.zeros(shape, np.uint8)
    for c in rng.uniform(4, 28, (10, 3)) * [0.5, 1, 1]:
        mask[(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < 12] = 1
    image = np.clip(0.2 + 0.5 * mask + rng.normal(0, 0.08, shape), 0, 1).astype(np.float32)
    volume = TrainingVolume("v", image, mask, np.ones(shape, np.float32), (1.0, 1.0, 1.0))
    net = train_structure_segmenter([volume], (8, 16, 16), steps=60, seed=0)
    assert not any(p.requires_grad for p in net.parameters())
    with torch.no_grad():
        predicted = net(torch.from_numpy(image)[None, None])[0, 0].numpy() > 0.5
    dice = 2 * (predicted & (mask > 0)).sum() / (predicted.sum() + mask.sum())
    assert dice > 0.8
