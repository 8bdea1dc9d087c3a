"""Apply a trained generator as a synthesis model (:class:`cellsynth.render.model.SynthesisModel`).

A generator file is written by ``cellsynth train`` (``RUN/generator.pt``) and the package
ships one per kind in ``cellsynth/models/<kind>.pt``. :func:`load_generator` also accepts
a full training checkpoint (``RUN/checkpoint.pt``).

The generator has no normalization layers, so each output voxel depends only on the inputs
within :attr:`GeneratorModel.halo` voxels of it. Its injected noise is drawn per *global*
voxel from a counter-based hash of the voxel's coordinates and a seed
(:mod:`cellsynth.render.randomness`), so the synthesised volume does not depend on how it is tiled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cellsynth.errors import CellsynthError
from cellsynth.gan.checkpoints import build_generator, read_generator
from cellsynth.render.randomness import voxel_normal


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
    """

    def __init__(self, generator: torch.nn.Module, kind: str | None = None, device: str | torch.device = "cpu",
                 seed: int = 0, amp: bool = False, info: dict[str, Any] | None = None) -> None:
        self.device = torch.device(device)
        self.generator = generator.to(self.device).eval()
        self.kind, self.seed, self.amp = kind, int(seed), amp
        self.info = dict(info or {})
        m, h = generator.size_multiple, generator.halo
        self.size_multiple: tuple[int, int, int] = (m, m, m)
        self.halo: tuple[int, int, int] = (h, h, h)
        # inference keeps about eight float32 feature maps of the first level per voxel
        self.working_bytes_per_voxel = 32 * int(generator.config.get("width", 16)) + 16
        patch = self.info.get("training", {}).get("patch")
        if patch:
            # Tile with the training patch size: in training almost every voxel lies within the
            # receptive field of a patch border (zero padding); much larger patches put voxels in
            # a regime the network never saw, which shows as a frame of different texture.
            self.default_patch: tuple[int, int, int] = tuple(int(p) for p in patch)  # type: ignore[assignment]

    def __call__(self, inputs: torch.Tensor, origins: torch.Tensor) -> torch.Tensor:
        """Map ``(N, 2, Z, Y, X)`` mask + positional map patches to ``(N, 1, Z, Y, X)`` images in [0, 1]."""
        inputs = inputs.to(self.device, torch.float32)
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
