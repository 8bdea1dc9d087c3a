"""The interface between the tiler and anything that turns masks into images.

A synthesis model takes a batch of input patches, shape ``(N, 2, Z, Y, X)``: channel 0 is
the structure mask (0/1), channel 1 the positional map (Eq. 1). It returns image patches
``(N, 1, Z, Y, X)`` in [0, 1]. ``origins`` (``(N, 3)``, int64) holds each patch's corner
in the whole volume, in voxels, so that models with randomness (camera noise) can draw it
per global voxel and give the same result however the volume is tiled; models without
randomness ignore it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class SynthesisModel(Protocol):
    """What :func:`cellsynth.tiling.synthesize_tiled` needs from a model.

    Attributes
    ----------
    size_multiple
        Each patch side must be a multiple of this, per axis (e.g. 8 for a 3-level U-Net).
    halo
        Receptive-field radius in voxels per axis: output voxels closer than this to a patch
        edge depend on padding. The tiler's crop must be at least this for exact stitching.
    """

    size_multiple: tuple[int, int, int]
    halo: tuple[int, int, int]

    def __call__(self, inputs: torch.Tensor, origins: torch.Tensor) -> torch.Tensor:
        """Map ``(N, 2, Z, Y, X)`` inputs to ``(N, 1, Z, Y, X)`` images in [0, 1]."""
        ...
