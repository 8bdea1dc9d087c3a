"""The configuration of a GAN training run, with the help text of its command-line flags.

:class:`TrainConfig` is the single place where a training option, its default and its
meaning are written down: the training loop reads it, ``cellsynth train`` builds its flags
from it (``--lr-g`` for ``lr_g``, ...), ``--config`` files use its field names as keys, and
``run.json`` and checkpoints record it. This module imports no torch, so ``--help`` stays
fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

KINDS = ("nuclei", "membranes")


def _option(default: Any, help: str, **cli: Any) -> Any:
    """A dataclass field with its command-line help (and argparse settings such as ``choices``)."""
    return field(default=default, metadata={"help": help, **cli})


@dataclass
class TrainConfig:
    """Everything that defines a training run (the keys of ``--config`` files and ``run.json``).

    RAdam's variance rectification keeps the step small for roughly ``2 / (1 - beta2)`` steps;
    ``betas = (0.5, 0.99)`` shortens that warm-up to about 200 steps (0.999: about 2000), which
    matters for short CPU trainings. Loss weights: ``w_adv`` (adversarial), ``w_identity`` (the
    paper's identity loss) and ``w_paired`` (paired L1, only when ``paired``). ``ema_half_life``:
    the generator that is saved (``generator.pt``) is an exponential moving average of the
    trained weights with this half-life in steps (as in StyleGAN; 0 saves the trained weights);
    it evens out the step-to-step swings of GAN training, which are large with batch 1 on small
    data. ADA: ``p`` starts at ``ada_p`` and every ``ada_interval`` steps moves towards
    r = ``ada_target`` by the real images seen divided by ``ada_images`` (stylegan2-ada's bounded
    speed); an epoch is ``patches_per_image`` patches of every training image.

    Simulated masks (``simulated``, a preset): the generator also renders masks simulated with
    the preset, and the discriminator compares those images with real patches (unpaired,
    weight ``w_simulated``), so that the generator learns to render the masks users give it,
    not only the real ones. ``w_consistency`` keeps the structure where the simulated mask
    says: a segmenter trained on the real pairs before the GAN (``segmenter_steps``), then
    frozen, must recover the mask from the generated image (:mod:`cellsynth.gan.consistency`).

    Each field's ``metadata["help"]`` is the help of its ``cellsynth train`` flag.

    Examples
    --------
    >>> TrainConfig.from_dict({"kind": "membranes", "patch": [16, 32, 32], "unknown": 1}).patch
    (16, 32, 32)
    """

    kind: str = _option("nuclei", "structure the labels describe (required on the command line)", choices=KINDS,
                        required=True)
    patch: tuple[int, int, int] = _option((32, 64, 64), "training patch in voxels, multiples of 2**depth",
                                          metavar=("Z", "Y", "X"))
    width: int = _option(16, "generator base width (channels of the first level)")
    depth: int = _option(3, "generator levels (2x downsamplings)")
    noise: bool = _option(True, "noise injection in the generator")
    padding: str = _option("replicate", "padding of the generator's 3x3x3 convolutions (zeros: the generators "
                                        "before issue 17)", choices=("zeros", "reflect", "replicate"))
    upsample_blur: bool = _option(True, "fixed [1 2 1]/4 filter after each pixel shuffle (removes its checkerboard)")
    d_width: int = _option(16, "discriminator base width")
    d_layers: int = _option(3, "discriminator strided layers")
    d_norm: str = _option("instance", "discriminator normalization", choices=("instance", "none"))
    batch: int = _option(1, "patches per step per process")
    lr_g: float = _option(2e-4, "generator learning rate (RAdam)")
    lr_d: float = _option(2e-4, "discriminator learning rate (RAdam)")
    betas: tuple[float, float] = _option((0.5, 0.99), "RAdam betas of both networks (0.5 0.99: a short warm-up)",
                                         metavar=("B1", "B2"))
    loss: str = _option("lsgan", "adversarial loss", choices=("lsgan", "bce"))
    w_adv: float = _option(1.0, "weight of the adversarial loss")
    w_identity: float = _option(1.0, "weight of the identity loss ||i - G(i)||_1")
    w_paired: float = _option(10.0, "weight of the paired loss ||i - G(m)||_1 (with --paired)")
    paired: bool = _option(True, "aligned image/mask patches (masks made from the images); --no-paired draws "
                                 "them apart")
    ema_half_life: float = _option(0.0, "save an exponential moving average of the generator weights with this "
                                        "half-life in steps (steadier results; 0: the trained weights)",
                                   metavar="STEPS")
    ada_target: float = _option(0.6, "ADA target of r = E[sign(D(real))]")
    ada_images: float = _option(1000.0, "real images over which ADA's p can move by at most 1 (stylegan2-ada: "
                                        "ada_kimg x 1000)")
    ada_interval: int = _option(4, "steps between ADA updates")
    ada_p: float = _option(0.0, "initial augmentation probability")
    patches_per_image: int = _option(1, "patches per image per epoch (paper: 1)")
    foreground_bias: float = _option(0.5, "probability of centring a patch on a structure voxel")
    flips: bool = _option(True, "random y/x flips")
    rotations: bool = _option(True, "random 90-degree rotations in yx")
    alpha: float = _option(100.0, "positional map decay inside the organism in µm (Eq. 1)", metavar="UM")
    beta: float = _option(100.0, "positional map decay outside the organism in µm (Eq. 1)", metavar="UM")
    percentiles: tuple[float, float] = _option((1.0, 99.9), "intensity percentiles mapped to 0 and 1",
                                               metavar=("LOW", "HIGH"))
    holdout: float = _option(0.25, "fraction of each volume (at the end of --holdout-axis) kept out of training")
    holdout_axis: str = _option("y", "axis of the hold-out cut", choices=("z", "y", "x"))
    voxel_size: tuple[float, float, float] | None = _option(
        None, "voxel size in µm for files that record none", metavar=("Z", "Y", "X"))
    membrane_thickness: float | None = _option(
        None, "membrane wall thickness in µm (membranes; default: the simulation's, 1 µm)", metavar="UM")
    simulated: str | None = _option(None, "preset (name or YAML) whose simulated masks the generator also renders, "
                                          "judged against real patches (unpaired)", metavar="PRESET")
    simulated_pool: int = _option(8, "simulated samples made at the start (seeded by --seed) to draw patches from")
    w_simulated: float = _option(1.0, "weight of the adversarial loss on images of simulated masks")
    w_consistency: float = _option(0.0, "weight of the consistency loss: a frozen segmenter trained on the real "
                                        "pairs must recover the simulated mask from its image")
    segmenter_steps: int = _option(300, "training steps of that segmenter (before the GAN)")
    seed: int = _option(0, "random seed (runs reproduce bit for bit on CPU)")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a dict, ignoring unknown keys and turning lists into tuples."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names})
