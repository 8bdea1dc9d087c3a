"""Turn an annotation (structure mask + organism foreground) into a microscopy image.

:func:`synthesize_image` computes the positional map (Eq. 1) of the foreground, loads the
model and runs it patch by patch (:mod:`cellsynth.tiling`). Inputs and output may be
on-disk zarr arrays: the image is then written slab by slab and the positional map goes to
a temporary on-disk array, so the memory footprint stays bounded (the distance transform of
the foreground needs about 5 bytes per voxel while it runs).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from cellsynth.conditioning import (
    positional_map,
    positional_map_from_distance,
    signed_distance_um,
)
from cellsynth.errors import CellsynthError
from cellsynth.io import VoxelSize, check_volume, check_voxel_size

SLAB_BYTES = 64 * 2**20
"""Size of the slabs in which large inputs are checked and converted."""


def synthesize_image(
    mask: Any, foreground: Any, voxel_size: VoxelSize, *,
    model: Any = "physics", kind: str = "nuclei", alpha: float = 100.0, beta: float = 100.0, seed: int = 0,
    patch: Any = None, overlap: Any = None, crop: Any = None, blend: str = "linear",
    batch_size: int = 4, device: Any = "cpu", autocast: bool = False, out: Any = None, progress: bool | None = True,
) -> Any:
    """Synthesise a fluorescence image for a structure mask.

    Parameters
    ----------
    mask
        Structure mask (Z, Y, X), 0/1: nuclei, or membranes.
    foreground
        Organism region (Z, Y, X), 0/1, the same shape.
    voxel_size
        Voxel size in µm (z, y, x).
    model
        ``"physics"``, ``"default"``, a shipped name, a checkpoint path
        (:func:`cellsynth.render.registry.load_model`) or a model object.
    kind
        ``"nuclei"`` or ``"membranes"``.
    alpha, beta
        Positional map decay lengths in µm inside and outside the organism (Eq. 1). Small
        alpha renders a deeper-looking, poorer image.
    seed
        Seed of the model's randomness; the same seed gives the same image bit for bit.
    patch, overlap, crop, blend, batch_size, device, autocast
        Tiled inference settings (:func:`cellsynth.tiling.synthesize_tiled`); None takes
        the model's defaults.
    out
        Optional numpy or zarr array (float, uint8 or uint16) to write into.
    progress
        Show a progress bar.

    Returns
    -------
    The image, float32 in [0, 1] (or ``out``).

    Examples
    --------
    >>> fg = np.zeros((8, 32, 32), np.uint8); fg[1:7, 4:28, 4:28] = 1
    >>> image = synthesize_image(fg, fg, (1.0, 0.5, 0.5), progress=False)
    >>> image.dtype, image.shape
    (dtype('float32'), (8, 32, 32))
    """
    from cellsynth.render.registry import load_model
    from cellsynth.tiling import synthesize_tiled

    voxel = check_voxel_size(voxel_size)
    for name, value in (("alpha", alpha), ("beta", beta)):
        if not (np.isfinite(value) and value > 0):
            raise CellsynthError(f"{name} must be a positive length in µm, got {value}")
    check_inputs(mask, foreground)
    if out is not None and tuple(out.shape) != tuple(mask.shape):
        raise CellsynthError(f"output shape {tuple(out.shape)} does not match the mask {tuple(mask.shape)}")
    if isinstance(model, (str, Path)):
        model = load_model(model, kind, device, voxel_size=voxel, seed=seed)
    streaming = not isinstance(mask, np.ndarray) or not (out is None or isinstance(out, np.ndarray))
    scratch = tempfile.mkdtemp(prefix="cellsynth-") if streaming else None
    try:
        pos = _positional_map(foreground, voxel, alpha, beta, scratch)
        return synthesize_tiled(model, mask, pos, patch=patch, overlap=overlap, crop=crop, blend=blend,
                                batch_size=batch_size, device=device, autocast=autocast, out=out, progress=progress)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def check_inputs(mask: Any, foreground: Any) -> None:
    """Check that mask and foreground are binary 3D volumes of one shape without NaN.

    Large (zarr) arrays are checked slab by slab.

    Raises
    ------
    CellsynthError
        Naming the array and what to change.
    """
    for name, array in (("mask", mask), ("foreground", foreground)):
        check_volume(array, name)
    if tuple(mask.shape) != tuple(foreground.shape):
        raise CellsynthError(f"mask {tuple(mask.shape)} and foreground {tuple(foreground.shape)} must have the same "
                             "shape; give the organism foreground of this mask")
    for name, array in (("mask", mask), ("foreground", foreground)):
        for z in _slabs(array):
            values = np.asarray(array[z])
            if values.dtype.kind == "f" and not np.isfinite(values).all():
                raise CellsynthError(f"the {name} contains NaN or infinite values; replace them (e.g. with 0)")
            if values.dtype != bool and ((values != 0) & (values != 1)).any():
                raise CellsynthError(f"the {name} must be binary (0/1) but has values up to {values.max()}; "
                                     f"convert it first (e.g. {name} > 0)")
    if not any(np.asarray(foreground[z]).any() for z in _slabs(foreground)):
        raise CellsynthError("the foreground is empty; give the organism region (nonzero inside)")


def _slabs(array: Any) -> list[slice]:
    plane = int(np.prod(array.shape[1:])) * np.dtype(array.dtype).itemsize
    step = max(1, SLAB_BYTES // max(plane, 1))
    chunks = getattr(array, "chunks", None)
    if chunks:
        step = max(chunks[0], step // chunks[0] * chunks[0])
    return [slice(z, min(z + step, array.shape[0])) for z in range(0, array.shape[0], step)]


def _positional_map(foreground: Any, voxel: VoxelSize, alpha: float, beta: float, scratch: str | None) -> Any:
    """The positional map in memory, or (``scratch`` given) in a temporary zarr array there."""
    if scratch is None:
        return positional_map(np.asarray(foreground), voxel, alpha, beta)
    import zarr

    inside = np.empty(foreground.shape, bool)
    for z in _slabs(foreground):
        inside[z] = np.asarray(foreground[z]) != 0
    dist = signed_distance_um(inside, voxel, overwrite=True)
    del inside
    chunks = (min(16, dist.shape[0]), *dist.shape[1:])
    pos = zarr.create_array(str(Path(scratch) / "positional.zarr"), shape=dist.shape, dtype="float32",
                            chunks=chunks, compressors=None)
    for z in _slabs(dist):
        pos[z] = positional_map_from_distance(dist[z], alpha, beta)
    return pos
