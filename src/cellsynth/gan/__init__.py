"""The conditional GAN: networks, augmentation, losses, training data, checkpoints and the loop.

- :mod:`~cellsynth.gan.networks`: the 3D U-Net generator and the PatchGAN discriminator;
- :mod:`~cellsynth.gan.augment`: adaptive discriminator augmentation (ADA, Eq. 2);
- :mod:`~cellsynth.gan.losses`: adversarial and L1 losses;
- :mod:`~cellsynth.gan.data`: real training volumes and their patches;
- :mod:`~cellsynth.gan.config`: :class:`TrainConfig`, the options of a run (no torch);
- :mod:`~cellsynth.gan.checkpoints`: checkpoint and generator files;
- :mod:`~cellsynth.gan.train`: the training loop (:func:`cellsynth.gan.train.train`).
"""

from cellsynth._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    ".config": ["TrainConfig"],
    ".networks": ["PatchGAN3D", "UNetGenerator"],
    ".augment": ["AdaptiveAugment"],
    ".data": ["load_volumes", "split_regions"],
    ".checkpoints": ["build_generator", "load_checkpoint", "read_generator"],
    ".train": ["Trainer"],
})
