"""Apply a trained generator as a synthesis model (:class:`cellsynth.render.model.SynthesisModel`).

A generator file is written by ``cellsynth train`` (``RUN/generator.pt``) and the package
ships one per family in ``cellsynth/models/<family>.pt``. :func:`load_generator` also accepts
a full training checkpoint (``RUN/checkpoint.pt``).

The generator has no normalization layers, so each output voxel depends only on the inputs
within :attr:`GeneratorModel.halo` voxels of it. Its injected noise is drawn per *global*
voxel from a counter-based hash of the voxel's coordinates and a seed
(:mod:`cellsynth.render.randomness`), so the synthesised volume does not depend on how it is tiled.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from cellsynth.errors import CellsynthError
from cellsynth.gan.checkpoints import build_generator, read_generator
from cellsynth.render.randomness import voxel_normal

POSITIONAL_SLACK = 0.05
"""How far the positional map may leave a generator's trained range before it warns."""


def voxel_noise(origins: torch.Tensor, shape: tuple[int, int, int], seed: int = 0,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """Standard normal noise ``(N, 1, Z, Y, X)`` that is a fixed function of each global voxel.

    Parameters
    ----------
    origins
        ``(N, 3)`` corner of each patch in the whole volume, in voxels.
    shape
        Patch shape (Z, Y, X).
    seed
        Different seeds give independent noise.
    device
        Torch device of the result.

    Examples
    --------
    >>> a = voxel_noise(torch.tensor([[0, 0, 0]]), (2, 4, 4))
    >>> b = voxel_noise(torch.tensor([[1, 2, 2]]), (1, 2, 2))
    >>> bool((a[0, 0, 1:, 2:, 2:] == b[0, 0]).all())
    True
    """
    origins = torch.as_tensor(origins, dtype=torch.int64).reshape(-1, 3).tolist()
    return torch.stack([voxel_normal(seed, origin, shape, device) for origin in origins]).unsqueeze(1)


class GeneratorModel:
    """A trained :class:`cellsynth.gan.networks.UNetGenerator` as a synthesis model.

    Parameters
    ----------
    generator
        The network (put in eval mode and on ``device``).
    kind
        ``"nuclei"`` or ``"membranes"``: what it was trained on.
    device
        Torch device.
    seed
        Seed of the injected noise.
    amp
        bf16 autocast (faster on GPUs and recent CPUs; slightly less precise).
    info
        Training information from the file (steps, alpha, beta, data, ...).

    Attributes
    ----------
    alpha, beta
        The positional map decay lengths (µm) the generator was trained with; synthesis
        uses them unless given others (:func:`cellsynth.synthesis.conditioning_of`).
    positional_range
        The lowest and highest positional map values of its training data (None for files
        that do not record them). A positional map beyond it (an organism surface in view
        of a generator trained on tissue crops, or an alpha far from the trained one) is
        extrapolation: the model warns once.
    mirror_border
        True: the tiler mirrors the input at the volume border
        (:func:`cellsynth.tiling.tile_grid`), as the generators of issue 17 drew a band there
        with zero padding.
    """

    def __init__(self, generator: torch.nn.Module, kind: str | None = None, device: str | torch.device = "cpu",
                 seed: int = 0, amp: bool = False, info: dict[str, Any] | None = None) -> None:
        self.device = torch.device(device)
        self.generator = generator.to(self.device).eval()
        self.kind, self.seed, self.amp = kind, int(seed), amp
        self.info = dict(info or {})
        # what Eq. 1 meant in training: synthesis uses the same unless told otherwise
        self.alpha = float(self.info.get("alpha", 100.0))
        self.beta = float(self.info.get("beta", 100.0))
        self.positional_range = self.info.get("positional_range")
        self._warned = False
        # zero or edge padding is not tissue: the tiler mirrors the volume at its border instead
        self.mirror_border = True
        m, h = generator.size_multiple, generator.halo
        self.size_multiple: tuple[int, int, int] = (m, m, m)
        self.halo: tuple[int, int, int] = (h, h, h)
        # inference keeps about eight float32 feature maps of the first level per voxel
        self.working_bytes_per_voxel = 32 * int(generator.config.get("width", 16)) + 16
        patch = self.info.get("training", {}).get("patch")
        if patch:
            # Tile with the training patch size: in training almost every voxel lies within the
            # receptive field of a patch border, so that is the regime the network knows; and on a
            # CPU small patches are also the fastest (benchmarks/bench_synthesis_speed.py: the 24 x
            # 48 x 48 recipe patch rendered 64 x 192 x 192 in 21 s, patches of 32 x 96 x 96, 64 x
            # 128 x 128 and 64 x 240 x 240 in 43, 99 and 56 s: large tensors cost more per voxel),
            # with about the same realism from a simulated preset mask (W1 0.036, spectrum 0.201, KID 32
            # against 0.038, 0.208, 26 for one patch over the whole volume).
            self.default_patch: tuple[int, int, int] = tuple(int(p) for p in patch)  # type: ignore[assignment]

    def __call__(self, inputs: torch.Tensor, origins: torch.Tensor) -> torch.Tensor:
        """Map ``(N, 2, Z, Y, X)`` mask + positional map patches to ``(N, 1, Z, Y, X)`` images in [0, 1]."""
        inputs = inputs.to(self.device, torch.float32)
        if self.positional_range is not None and not self._warned:
            low, high = self.positional_range
            seen = float(inputs[:, 1].min()), float(inputs[:, 1].max())
            if seen[0] < low - POSITIONAL_SLACK or seen[1] > high + POSITIONAL_SLACK:
                self._warned = True
                warnings.warn(f"the positional map reaches {seen[0]:.2f} .. {seen[1]:.2f}, beyond the {low:.2f} .. "
                              f"{high:.2f} this generator was trained on: its depth and quality levels are "
                              "extrapolated there (physics renders depth from first principles)", UserWarning,
                              stacklevel=2)
        noise = None
        if getattr(self.generator, "noise_weight", None) is not None:
            noise = voxel_noise(origins, tuple(inputs.shape[2:]), self.seed, self.device)
        with torch.inference_mode(), torch.autocast(self.device.type, torch.bfloat16, enabled=self.amp):
            return self.generator(inputs, noise).float()


def load_generator(path: str | Path, device: str | torch.device = "cpu", kind: str | None = None,
                   seed: int = 0) -> GeneratorModel:
    """Load a generator file (or a training checkpoint) as a :class:`GeneratorModel`.

    Parameters
    ----------
    path
        ``generator.pt`` / ``checkpoint.pt`` written by ``cellsynth train``, or a shipped model.
    device
        Torch device to run on.
    kind
        If given, the model must have been trained for this kind.
    seed
        Seed of the injected noise.

    Raises
    ------
    CellsynthError
        For a missing file, a file that is not a cellsynth generator or checkpoint, or a
        model of another kind.
    """
    record = read_generator(path)
    if kind is not None and record.get("kind") != kind:
        raise CellsynthError(f"{path} is a {record.get('kind')} model; use it for {record.get('kind')} "
                             f"or give a {kind} model")
    generator = build_generator(record, path)
    info = {k: v for k, v in record.items() if k not in ("state_dict", "format")}
    return GeneratorModel(generator, record.get("kind"), device, seed=seed, info=info)
