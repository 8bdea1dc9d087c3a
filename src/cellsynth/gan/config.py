"""The configuration of a GAN training run, with the help text of its command-line flags.

:class:`TrainConfig` is the single place where a training option, its default and its
meaning are written down: the training loop reads it, ``cellsynth train`` builds its flags
from it (``--lr-g`` for ``lr_g``, ...), ``--config`` files use its field names as keys, and
``run.json`` and checkpoints record it. This module imports no torch, so ``--help`` stays
fast.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field, fields
from typing import Any, get_args, get_origin, get_type_hints

from cellsynth.checks import check_integer, check_number, check_voxel_size
from cellsynth.errors import CellsynthError

KINDS = ("nuclei", "membranes")


def _option(default: Any, help: str, *, low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False, **cli: Any) -> Any:
    """A dataclass field with its command-line help, the range of its values (``bounds``: checked
    by :meth:`TrainConfig.check` and by the flag's type) and argparse settings such as ``choices``."""
    bounds = {"low": low, "high": high, "low_open": low_open, "high_open": high_open}
    return field(default=default, metadata={"help": help, "bounds": bounds, **cli})


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
    >>> TrainConfig.from_dict({"kind": "membranes", "patch": [24, 32, 32], "unknown": 1}).patch
    (24, 32, 32)
    """

    kind: str = _option("nuclei", "structure the labels describe", choices=KINDS,
                        required=True)
    patch: tuple[int, int, int] = _option((32, 64, 64), "training patch in voxels, multiples of 2**depth",
                                          metavar=("Z", "Y", "X"), low=1)
    width: int = _option(16, "generator base width (channels of the first level)", low=1)
    depth: int = _option(3, "generator levels (2x downsamplings)", low=1)
    noise: bool = _option(True, "noise injection in the generator")
    padding: str = _option("replicate", "padding of the generator's 3x3x3 convolutions (zeros: the generators "
                                        "before issue 17)", choices=("zeros", "reflect", "replicate"))
    upsample_blur: bool = _option(True, "fixed [1 2 1]/4 filter after each pixel shuffle (removes its checkerboard)")
    d_width: int = _option(16, "discriminator base width", low=1)
    d_layers: int = _option(3, "discriminator strided layers", low=1)
    d_norm: str = _option("instance", "discriminator normalization", choices=("instance", "none"))
    batch: int = _option(1, "patches per step per process", low=1)
    lr_g: float = _option(2e-4, "generator learning rate (RAdam)", low=0, low_open=True)
    lr_d: float = _option(2e-4, "discriminator learning rate (RAdam)", low=0, low_open=True)
    betas: tuple[float, float] = _option((0.5, 0.99), "RAdam betas of both networks (0.5 0.99: a short warm-up)",
                                         metavar=("B1", "B2"), low=0, high=1, high_open=True)
    loss: str = _option("lsgan", "adversarial loss", choices=("lsgan", "bce"))
    w_adv: float = _option(1.0, "weight of the adversarial loss", low=0)
    w_identity: float = _option(1.0, "weight of the identity loss ||i - G(i)||_1", low=0)
    w_paired: float = _option(10.0, "weight of the paired loss ||i - G(m)||_1 (with --paired)", low=0)
    paired: bool = _option(True, "aligned image/mask patches (masks made from the images); --no-paired draws "
                                 "them apart")
    ema_half_life: float = _option(0.0, "save an exponential moving average of the generator weights with this "
                                        "half-life in steps (steadier results; 0: the trained weights)",
                                   metavar="STEPS", low=0)
    ada_target: float = _option(0.6, "ADA target of r = E[sign(D(real))]", low=0, high=1)
    ada_images: float = _option(1000.0, "real images over which ADA's p can move by at most 1 (stylegan2-ada: "
                                        "ada_kimg x 1000)", low=0, low_open=True)
    ada_interval: int = _option(4, "steps between ADA updates", low=1)
    ada_p: float = _option(0.0, "initial augmentation probability", low=0, high=1)
    patches_per_image: int = _option(1, "patches per image per epoch (paper: 1)", low=1)
    foreground_bias: float = _option(0.5, "probability of centring a patch on a structure voxel", low=0, high=1)
    flips: bool = _option(True, "random y/x flips")
    rotations: bool = _option(True, "random 90-degree rotations in yx")
    alpha: float = _option(100.0, "positional map decay inside the organism in µm (Eq. 1)", metavar="UM", low=0,
                           low_open=True)
    beta: float = _option(100.0, "positional map decay outside the organism in µm (Eq. 1)", metavar="UM", low=0,
                          low_open=True)
    percentiles: tuple[float, float] = _option((1.0, 99.9), "intensity percentiles mapped to 0 and 1",
                                               metavar=("LOW", "HIGH"), low=0, high=100)
    holdout: float = _option(0.25, "fraction of each volume (at the end of --holdout-axis) kept out of training",
                             low=0, high=1, high_open=True)
    holdout_axis: str = _option("y", "axis of the hold-out cut", choices=("z", "y", "x"))
    voxel_size: tuple[float, float, float] | None = _option(
        None, "voxel size in µm for files that record none (default: each file's own)", metavar=("Z", "Y", "X"),
        low=0, low_open=True)
    membrane_thickness: float | None = _option(
        None, "membrane wall thickness in µm (membranes; default: the simulation's, 1 µm)", metavar="UM", low=0,
        low_open=True)
    simulated: str | None = _option(None, "preset (name or YAML) whose simulated masks the generator also renders, "
                                          "judged against real patches (unpaired) (default: none, real pairs only)",
                                    metavar="PRESET")
    simulated_pool: int = _option(8, "simulated samples made at the start (seeded by --seed) to draw patches from",
                                  low=1)
    w_simulated: float = _option(1.0, "weight of the adversarial loss on images of simulated masks", low=0)
    w_consistency: float = _option(0.0, "weight of the consistency loss: a frozen segmenter trained on the real "
                                        "pairs must recover the simulated mask from its image", low=0)
    segmenter_steps: int = _option(300, "training steps of that segmenter (before the GAN)", low=1)
    seed: int = _option(0, "random seed (runs reproduce bit for bit on CPU)", low=0, high=2**63 - 1)

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> TrainConfig:
        """Check every value against its field's type, range and choices, and the values
        against each other (patch sides, percentiles).

        Raises
        ------
        CellsynthError
            Naming the option (as its flag) and what it must be.
        """
        hints = get_type_hints(type(self))
        for option in fields(self):
            value, flag, hint = getattr(self, option.name), "--" + option.name.replace("_", "-"), hints[option.name]
            if isinstance(hint, types.UnionType):  # X | None
                if value is None:
                    continue
                hint = next(a for a in get_args(hint) if a is not type(None))
            if get_origin(hint) is tuple:
                length = len(get_args(hint))
                if not isinstance(value, (tuple, list)) or len(value) != length:
                    raise CellsynthError(f"{flag} must be {length} values, got {value!r}")
                items, kind = value, get_args(hint)[0]
            else:
                items, kind = (value,), hint
            for item in items:
                _check_value(item, kind, flag, option.metadata)
        if any(p % 2**self.depth for p in self.patch):
            raise CellsynthError(f"--patch sides must be multiples of {2**self.depth} (2**depth), "
                                 f"got {' '.join(map(str, self.patch))}")
        if min(self.patch) < 3 * 2**self.d_layers:
            raise CellsynthError(f"--patch sides must be at least {3 * 2**self.d_layers} for the discriminator with "
                                 f"{self.d_layers} layers; use a larger --patch or fewer --d-layers")
        if not self.percentiles[0] < self.percentiles[1]:
            raise CellsynthError(f"--percentiles LOW HIGH needs LOW < HIGH, got {self.percentiles}")
        if self.voxel_size is not None:
            check_voxel_size(self.voxel_size)
        return self

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a dict, ignoring unknown keys and turning lists into tuples."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names})


def _check_value(value: Any, kind: type, flag: str, metadata: Any) -> None:
    """One value of a :class:`TrainConfig` field: its type, range (``bounds``) and ``choices``."""
    bounds = metadata.get("bounds", {})
    if kind is bool:
        if not isinstance(value, bool):
            raise CellsynthError(f"{flag} must be true or false, got {value!r}")
    elif kind is int:
        check_integer(value, flag, low=bounds.get("low"), high=bounds.get("high"))
    elif kind is float:
        check_number(value, flag, **bounds)
    elif "choices" in metadata and value not in metadata["choices"]:
        raise CellsynthError(f"{flag} must be one of {', '.join(metadata['choices'])}, got {value!r}")
