"""Adaptive discriminator augmentation (ADA, Eq. 2 of Eschweiler et al. 2021; Karras et al. 2020).

One module, :class:`AdaptiveAugment`, holds the augmentation probability ``p`` as a buffer
(as ``training/augment.py`` of stylegan2-ada-pytorch). Every image the discriminator sees,
real or generated, passes through it. Each of the paper's five augmentations (section 4)
is applied to each sample independently with probability ``p``:

1. linear intensity scaling by a factor drawn from U[0.6, 1.2];
2. additive Gaussian noise N(0, 0.1) (standard deviation 0.1);
3. voxel shuffling: the voxels inside a randomly placed 25^3 region are randomly permuted;
4. inpainting: a randomly placed 15^3 region is filled with the patch's mean intensity;
5. linear intensity decline along a random axis (z, y or x, in a random direction), from
   1 at one face to a factor drawn from U[0.5, 1] at the opposite face.

Real and generated images use the same module, so both get the same distribution of
augmentations. Every operation is a differentiable function of the image (products,
sums, gathers), so the generator learns through the augmentation. Regions are clipped to
the patch. Randomness comes from torch's global generator (seeded and checkpointed by the
training loop).

``p`` is steered from the discriminator's raw outputs on real images, which the training
step has already computed: ``r = E[sign(D(real))]`` is accumulated with
:meth:`AdaptiveAugment.accumulate` and, at each :meth:`AdaptiveAugment.update` (every few
steps), ``p`` moves towards keeping ``r`` at ``target`` (0.6): up when the discriminator is
too confident on reals (overfitting), down otherwise. As in stylegan2-ada
(``training/training_loop.py``) the step is proportional to the real images seen since the
last update: ``p`` moves by ``images / speed_images``, so it needs at least
``speed_images`` images to cross from 0 to 1 however often it is updated (the paper's fixed
step of 0.05 per epoch let ``p`` swing from 0 to 1 within a few hundred patches on our
small volumes).
"""

from __future__ import annotations

import torch
from torch import nn


class AdaptiveAugment(nn.Module):
    """The paper's augmentation list, each applied with a shared, adaptive probability ``p``.

    Parameters
    ----------
    p
        Initial augmentation probability.
    target
        Target of the overfitting heuristic r = E[sign(D(real))].
    speed_images
        Real images over which ``p`` can move by at most 1 (stylegan2-ada's ``ada_kimg``
        times 1000).
    scale_range, noise_std, shuffle_size, inpaint_size, inpaint_count, decline_range
        Augmentation parameters (defaults: the paper's values; the decline's end factor
        range is not stated in the paper and is our choice).
    """

    def __init__(self, p: float = 0.0, target: float = 0.6, speed_images: float = 1000.0,
                 scale_range: tuple[float, float] = (0.6, 1.2), noise_std: float = 0.1, shuffle_size: int = 25,
                 inpaint_size: int = 15, inpaint_count: int = 1,
                 decline_range: tuple[float, float] = (0.5, 1.0)) -> None:
        super().__init__()
        self.register_buffer("p", torch.tensor(float(p)))
        self.register_buffer("sign_sum", torch.zeros((), dtype=torch.float64))
        self.register_buffer("sign_count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("image_count", torch.zeros((), dtype=torch.float64))
        if not speed_images > 0:
            raise ValueError(f"speed_images must be positive, got {speed_images}")
        self.target, self.speed_images = float(target), float(speed_images)
        self.scale_range, self.noise_std = scale_range, float(noise_std)
        self.shuffle_size, self.inpaint_size, self.inpaint_count = int(shuffle_size), int(inpaint_size), int(inpaint_count)
        self.decline_range = decline_range

    # ------------------------------------------------------------------ the augmentations

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Augment a batch of images ``(N, C, Z, Y, X)``; each operation with probability ``p``."""
        p = float(self.p)
        if p <= 0:
            return x
        for op in (self.scale, self.noise, self.shuffle, self.inpaint, self.decline):
            chosen = torch.rand(x.shape[0], device=x.device) < p
            if chosen.any():
                augmented = op(x)
                x = torch.where(chosen.view(-1, 1, 1, 1, 1), augmented, x)
        return x

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """Multiply each sample by a factor from U[scale_range]."""
        lo, hi = self.scale_range
        factor = lo + (hi - lo) * torch.rand(x.shape[0], 1, 1, 1, 1, device=x.device, dtype=x.dtype)
        return x * factor

    def noise(self, x: torch.Tensor) -> torch.Tensor:
        """Add Gaussian noise of standard deviation ``noise_std``."""
        return x + self.noise_std * torch.randn_like(x)

    def _region(self, shape: torch.Size, size: int) -> tuple[slice, ...]:
        starts = [int(torch.randint(0, max(s - size, 0) + 1, ())) for s in shape]
        return tuple(slice(a, a + min(size, s)) for a, s in zip(starts, shape))

    def shuffle(self, x: torch.Tensor) -> torch.Tensor:
        """Randomly permute the voxels inside a random ``shuffle_size``^3 region of each sample."""
        out = x.clone()
        for i in range(x.shape[0]):
            region = self._region(x.shape[2:], self.shuffle_size)
            block = x[i][(slice(None), *region)]
            flat = block.reshape(block.shape[0], -1)
            perm = torch.randperm(flat.shape[1], device=x.device)
            out[i][(slice(None), *region)] = flat[:, perm].reshape(block.shape)
        return out

    def inpaint(self, x: torch.Tensor) -> torch.Tensor:
        """Fill ``inpaint_count`` random ``inpaint_size``^3 regions with the sample's mean."""
        mask = torch.zeros_like(x[:, :1])
        for i in range(x.shape[0]):
            for _ in range(self.inpaint_count):
                mask[i][(slice(None), *self._region(x.shape[2:], self.inpaint_size))] = 1
        mean = x.mean(dim=(2, 3, 4), keepdim=True)
        return x * (1 - mask) + mean * mask

    def decline(self, x: torch.Tensor) -> torch.Tensor:
        """Multiply by a linear ramp from 1 to U[decline_range] along a random axis and direction."""
        out = []
        lo, hi = self.decline_range
        for i in range(x.shape[0]):
            axis = int(torch.randint(0, 3, ()))
            n = x.shape[2 + axis]
            end = lo + (hi - lo) * float(torch.rand(()))
            ramp = torch.linspace(1.0, end, n, device=x.device, dtype=x.dtype)
            if bool(torch.rand(()) < 0.5):
                ramp = ramp.flip(0)
            view = [1, 1, 1, 1]
            view[1 + axis] = n
            out.append(x[i] * ramp.view(view))
        return torch.stack(out)

    # ------------------------------------------------------------------ adapting p

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Add the signs of the discriminator's raw outputs on a batch of real images (no extra forward)."""
        logits = real_logits.detach()
        self.sign_sum += torch.sign(logits).sum().to(torch.float64)
        self.sign_count += logits.numel()
        self.image_count += logits.shape[0]

    def update(self) -> float:
        """Move ``p`` towards ``r = target`` by ``images / speed_images``, reset the statistic; return r.

        Under ``torch.distributed`` the statistic and the image count are summed over all
        processes first, so every process keeps the same ``p``. Returns NaN (and leaves
        ``p``) when nothing was accumulated.
        """
        stats = torch.stack([self.sign_sum, self.sign_count, self.image_count])
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(stats)
        for buffer in (self.sign_sum, self.sign_count, self.image_count):
            buffer.zero_()
        if stats[1] == 0:
            return float("nan")
        r = float(stats[0] / stats[1])
        step = float(stats[2]) / self.speed_images * (1.0 if r > self.target else -1.0)
        self.p.copy_(torch.clamp(self.p + step, 0.0, 1.0))
        return r
