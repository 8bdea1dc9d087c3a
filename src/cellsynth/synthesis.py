"""Turn an annotation (structure mask + organism foreground) into a microscopy image.

:func:`synthesize_image` computes the positional map (Eq. 1) of the foreground, loads the
model and runs it patch by patch (:mod:`cellsynth.tiling`). Inputs and output may be
on-disk zarr arrays: the image is then written slab by slab and the positional map goes to
a temporary on-disk array, so the memory footprint stays bounded (the distance transform of
the foreground needs about 5 bytes per voxel while it runs). :func:`synthesize_to_file`
writes the image straight into a TIFF or an OME-Zarr store.

For annotations that are not sample folders (instance labels from elsewhere, or a 0/1
membrane mask), :func:`annotation_from_labels` derives the structure mask and the organism
foreground the way simulated samples define them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cellsynth import io, omezarr
from cellsynth.conditioning import (
    DEFAULT_DECAY_UM,
    organism_from_labels,
    out_of_core_blocks,
    positional_map,
    positional_map_from_distance,
    signed_distance_out_of_core,
    signed_distance_um,
)
from cellsynth.errors import CellsynthError
from cellsynth.io import VoxelSize, check_volume, check_voxel_size
from cellsynth.memory import release_free_memory

SLAB_BYTES = 64 * 2**20
"""Size of the slabs in which large inputs are checked and converted."""


def synthesize_image(
    mask: Any, foreground: Any, voxel_size: VoxelSize, *,
    model: Any = "default", kind: str = "nuclei", alpha: float | None = None, beta: float | None = None, seed: int = 0,
    patch: Any = None, overlap: Any = None, crop: Any = None, blend: str = "linear",
    batch_size: int = 4, device: Any = "cpu", autocast: bool = False, out: Any = None,
    memory_budget: int | None = None, progress: bool | None = None, renderer: Any = None, family: str | None = None,
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
        ``"default"`` (the best built-in model for ``kind``), ``"physics"``, a shipped name, a
        checkpoint path (:func:`cellsynth.render.registry.load_model`) or a model object.
    kind
        ``"nuclei"`` or ``"membranes"``.
    alpha, beta
        Positional map decay lengths in µm inside and outside the organism (Eq. 1). Small
        alpha renders a deeper-looking, poorer image. None: the values the model was trained
        with (:func:`conditioning_of`).
    seed
        Seed of the model's randomness; the same seed gives the same image bit for bit.
    patch, overlap, crop, blend, batch_size, device, autocast
        Tiled inference settings (:func:`cellsynth.tiling.synthesize_tiled`); None takes
        the model's defaults.
    out
        Optional numpy or zarr array (float, uint8 or uint16) to write into.
    memory_budget
        Bytes the synthesis may hold at a time when it streams (an on-disk mask or output):
        the slabs of the distance transform and the tiling are sized from it (default
        :data:`DEFAULT_MEMORY_BUDGET`). In memory the whole volume is held anyway.
    progress
        Progress bar: None (default) on a terminal only, True always, False never.
    renderer
        Physics parameters (a renderer file from ``cellsynth calibrate`` or a mapping) used
        where the model named is, or ``"default"`` resolves to, the physics renderer.
    family
        The family of real volumes mimicked (a preset's ``family``): what ``"default"``
        means (:func:`cellsynth.render.registry.default_model_name`).

    Returns
    -------
    The image, float32 in [0, 1] (or ``out``).

    Examples
    --------
    >>> fg = np.zeros((8, 32, 32), np.uint8); fg[1:7, 4:28, 4:28] = 1
    >>> image = synthesize_image(fg, fg, (1.0, 0.5, 0.5), model="physics", progress=False)
    >>> image.dtype, image.shape
    (dtype('float32'), (8, 32, 32))
    """
    from cellsynth.tiling import synthesize_tiled

    voxel = check_voxel_size(voxel_size)
    streaming = not isinstance(mask, np.ndarray) or not (out is None or isinstance(out, np.ndarray))
    budget = (memory_budget or DEFAULT_MEMORY_BUDGET) if streaming else None
    check_inputs(mask, foreground, budget or SLAB_BYTES)
    release_free_memory()
    if out is not None and tuple(out.shape) != tuple(mask.shape):
        raise CellsynthError(f"output shape {tuple(out.shape)} does not match the mask {tuple(mask.shape)}")
    if renderer is not None and not isinstance(model, (str, Path)):
        raise CellsynthError("a renderer applies to a model given by name (physics or default), not to a model object")
    plan = check_synthesis(tuple(mask.shape), voxel, model=model, kind=kind, alpha=alpha, beta=beta, seed=seed,
                           patch=patch, overlap=overlap, crop=crop, blend=blend, batch_size=batch_size,
                           device=device, autocast=autocast, memory_budget=budget, renderer=renderer, family=family)
    model, alpha, beta = plan.model, plan.alpha, plan.beta
    scratch = tempfile.mkdtemp(prefix="cellsynth-") if streaming else None
    try:
        pos = _positional_map(foreground, voxel, alpha, beta, scratch, budget)
        return synthesize_tiled(model, mask, pos, patch=patch, overlap=overlap, crop=crop, blend=blend,
                                batch_size=batch_size, device=device, autocast=autocast, out=out,
                                memory_budget=budget, progress=progress)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def conditioning_of(model: Any, alpha: float | None = None, beta: float | None = None) -> tuple[float, float]:
    """The alpha and beta (µm, Eq. 1) to render with: the given ones, else those ``model`` was
    trained with (a generator records them), else the paper's 100 µm.

    Raises
    ------
    CellsynthError
        For a value that is not a positive length.

    Examples
    --------
    >>> conditioning_of("physics", beta=50.0)
    (100.0, 50.0)
    """
    from cellsynth.checks import check_number

    alpha, beta = (getattr(model, name, DEFAULT_DECAY_UM) if value is None else value
                   for name, value in (("alpha", alpha), ("beta", beta)))
    return check_number(alpha, "alpha", low=0, low_open=True), check_number(beta, "beta", low=0, low_open=True)


@dataclass(frozen=True)
class SynthesisPlan:
    """What :func:`check_synthesis` found: the loaded model, its patch grid over the volume,
    the memory the synthesis needs (bytes, about), and the alpha and beta it renders with
    (:func:`conditioning_of`)."""

    model: Any
    grid: Any
    memory_bytes: int
    alpha: float
    beta: float


SYNTHESIS_BYTES_PER_VOXEL = 14
"""Memory of an in-memory synthesis per voxel besides the inputs: the positional map and the
float32 image, then the uint16 image and its float32 temporary while it is written."""

IN_MEMORY_DISTANCE_BYTES = 5
"""Memory of :func:`cellsynth.conditioning.signed_distance_um` of a whole volume, per voxel."""

DEFAULT_MEMORY_BUDGET = 2**30
"""Bytes a streaming synthesis holds at a time by default (1 GiB): with the interpreter and
its libraries (about 0.5 GiB), a 256x1024x1024 OME-Zarr volume is made in under 2 GiB."""


def check_synthesis(
    shape: tuple[int, int, int], voxel_size: VoxelSize, *, model: Any = "default", kind: str = "nuclei",
    alpha: float | None = None, beta: float | None = None, seed: int = 0, patch: Any = None, overlap: Any = None,
    crop: Any = None, blend: str = "linear", batch_size: int = 4, device: Any = "cpu", autocast: bool = False,
    memory_budget: int | None = None, check_memory: bool = True, renderer: Any = None, family: str | None = None,
) -> SynthesisPlan:
    """Check the settings of :func:`synthesize_image` for a volume of ``shape`` without rendering.

    Loads the model (a name or path; a model object is taken as it is), lays out the patch
    grid and estimates the memory (in memory, or ``streaming`` from and to on-disk arrays).
    :func:`synthesize_image` calls it first; ``cellsynth synthesize`` and ``cellsynth
    dataset`` call it before they write anything.

    Parameters
    ----------
    shape
        Volume shape (Z, Y, X).
    voxel_size, model, kind, alpha, beta, seed, patch, overlap, crop, blend, batch_size, device, autocast
    renderer, family
        As for :func:`synthesize_image`.
    memory_budget
        The budget of a streaming synthesis (from and to on-disk arrays; see
        :func:`synthesize_image`), None for one in memory.
    check_memory
        Refuse (:func:`cellsynth.memory.check_memory`) when the estimate exceeds what is
        available.

    Returns
    -------
    SynthesisPlan

    Raises
    ------
    CellsynthError
        Naming the setting and what to change.
    """
    from cellsynth.checks import check_integer, check_seed
    from cellsynth.memory import check_memory as refuse_beyond_memory
    from cellsynth.render.registry import load_model
    from cellsynth.tiling import BLENDS, tile_grid, tiling_memory

    voxel = check_voxel_size(voxel_size)
    conditioning_of(None, alpha, beta)  # given values are checked before the model loads
    check_seed(seed)
    check_integer(batch_size, "batch size", low=1)
    if blend not in BLENDS:
        raise CellsynthError(f"unknown blend {blend!r}; use one of {', '.join(BLENDS)}")
    if isinstance(model, (str, Path)):
        model = load_model(model, kind, device, voxel_size=voxel, seed=seed, renderer=renderer, family=family)
    alpha, beta = conditioning_of(model, alpha, beta)
    grid = tile_grid(model, shape, patch, overlap, crop)
    voxels = int(np.prod(shape, dtype=np.float64))
    if memory_budget is None:
        memory = tiling_memory(grid, batch_size, model).nbytes + voxels * SYNTHESIS_BYTES_PER_VOXEL
    else:
        check_integer(memory_budget, "memory budget", low=1)
        tiling_memory(grid, batch_size, model, memory_budget)  # refuses a budget too small for one patch
        memory = memory_budget
    if check_memory:
        refuse_beyond_memory(memory, f"synthesising a {'x'.join(map(str, shape))} volume",
                             "choose a smaller volume or --patch, a smaller --batch-size, or write OME-Zarr "
                             "(.ome.zarr) to stream it")
    return SynthesisPlan(model, grid, memory, alpha, beta)


def check_inputs(mask: Any, foreground: Any, slab_bytes: int = SLAB_BYTES) -> None:
    """Check that mask and foreground are binary 3D volumes of one shape without NaN.

    Large (zarr) arrays are checked slab by slab (about ``slab_bytes`` at a time).

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
        for z in _slabs(array, slab_bytes):
            values = np.asarray(array[z])
            if values.dtype.kind == "f" and not np.isfinite(values).all():
                raise CellsynthError(f"the {name} contains NaN or infinite values; replace them (e.g. with 0)")
            if values.dtype != bool and ((values != 0) & (values != 1)).any():
                raise CellsynthError(f"the {name} must be binary (0/1) but has values up to {values.max()}; "
                                     f"convert it first (e.g. {name} > 0)")
    if not any(np.asarray(foreground[z]).any() for z in _slabs(foreground, slab_bytes)):
        raise CellsynthError("the foreground is empty; give the organism region (nonzero inside)")


def is_membrane_mask(labels: Any, kind: str) -> bool:
    """Whether a membranes annotation is already the 0/1 wall mask rather than cell labels.

    A labels volume that holds only 0 and 1 has at most one cell; for membranes it is far
    more likely a wall mask (from another tool, or a sample's ``mask.tif``), which is used
    as the structure mask as it is.
    """
    labels = np.asarray(labels)
    return kind == "membranes" and bool(labels.max() <= 1 and labels.min() >= 0)


def annotation_from_labels(
    labels: Any, kind: str, voxel_size: VoxelSize, *, foreground: Any = None, foreground_closing_um: float | None = None,
    membrane_thickness_um: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The structure mask and organism foreground of instance labels, as synthesis needs them.

    Parameters
    ----------
    labels
        Instance labels (Z, Y, X): nuclei, or whole cells for membranes. For membranes a
        0/1 volume is taken as the wall mask itself (:func:`is_membrane_mask`).
    kind
        ``"nuclei"`` or ``"membranes"``.
    voxel_size
        Voxel size in µm (z, y, x).
    foreground
        The organism region (0/1) of the same shape; by default the labelled cells closed
        across the gaps between them (:func:`cellsynth.conditioning.organism_from_labels`,
        the organism training gives real volumes). The cells of a 0/1 mask are its
        connected nuclei, or the spaces between its walls.
    foreground_closing_um
        Without ``foreground``: the closing radius in µm (default: twice the median
        distance between neighbouring cells).
    membrane_thickness_um
        Wall thickness for membranes labels (default: the simulation's,
        :data:`cellsynth.simulate.annotations.DEFAULT_MEMBRANE_THICKNESS_UM`).

    Returns
    -------
    mask, foreground
        uint8 structure mask (the one of :func:`cellsynth.simulate.annotations.structure_mask`)
        and the organism foreground.

    Raises
    ------
    CellsynthError
        For floating-point labels or a foreground of another shape.

    Examples
    --------
    >>> labels = np.zeros((8, 24, 24), np.uint16); labels[2:6, 4:12, 4:12] = 1; labels[2:6, 12:20, 4:12] = 2
    >>> mask, foreground = annotation_from_labels(labels, "membranes", (1.0, 1.0, 1.0))
    >>> int(mask.sum()) < int((labels > 0).sum()) <= int(foreground.sum())
    True
    """
    from scipy import ndimage

    from cellsynth.simulate.annotations import DEFAULT_MEMBRANE_THICKNESS_UM, structure_mask

    labels = np.asarray(check_volume(np.asarray(labels), "labels"))
    voxel = check_voxel_size(voxel_size)
    if labels.dtype.kind == "f":
        raise CellsynthError("the labels hold floating-point values; give integer labels or a 0/1 mask")
    walls_given = is_membrane_mask(labels, kind)
    if walls_given:
        mask = labels.astype(np.uint8)
    else:
        thickness = membrane_thickness_um or DEFAULT_MEMBRANE_THICKNESS_UM
        mask = structure_mask(labels, kind, voxel, membrane_thickness_um=thickness)
    if foreground is not None:
        if tuple(np.shape(foreground)) != labels.shape:
            raise CellsynthError(f"foreground {tuple(np.shape(foreground))} and labels {labels.shape} must have the "
                                 "same shape")
        return mask, foreground
    if labels.max() <= 1 and labels.min() >= 0:  # a 0/1 mask: cells are connected nuclei or spaces between walls
        labels = ndimage.label(labels == 0 if walls_given else labels)[0]
    return mask, organism_from_labels(labels, voxel, foreground_closing_um)


def synthesize_to_file(
    path: str | os.PathLike, mask: Any, foreground: Any, voxel_size: VoxelSize, *, dtype: Any = "uint16",
    ngff: str = omezarr.DEFAULT_NGFF, **settings: Any,
) -> Path:
    """Synthesise an image straight into a file, written atomically.

    The name chooses the container: ``.tif`` (the image is made in memory, then written as
    an ImageJ hyperstack) or ``.ome.zarr`` (written slab by slab while it is made, for
    volumes larger than memory, with its multiscale pyramid; ``mask`` and ``foreground``
    may then be zarr arrays). An existing OME-Zarr image with label images (the
    ``sample.ome.zarr`` of a sample folder) gets the new image and keeps its labels.

    Parameters
    ----------
    path
        Output file (``.tif``, ``.tiff`` or ``.ome.zarr``); an existing one is replaced.
    mask, foreground, voxel_size
        As for :func:`synthesize_image`.
    dtype
        ``"uint16"`` (0-65535 for 0-1) or ``"float32"`` (values in [0, 1]).
    ngff
        OME-NGFF version of a new OME-Zarr image, ``"0.4"`` or ``"0.5"`` (an existing one
        keeps its own).
    **settings
        Keyword arguments of :func:`synthesize_image` (``model``, ``kind``, ``alpha``, ...).

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> fg = np.zeros((8, 32, 32), np.uint8); fg[1:7, 4:28, 4:28] = 1
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = synthesize_to_file(f"{folder}/image.tif", fg, fg, (1.0, 0.5, 0.5), model="physics", progress=False)
    ...     io.read_volume(path)[0].dtype
    dtype('uint16')
    """
    path = Path(path)
    file_format = io.volume_format(path)
    if file_format is None:
        raise CellsynthError(f"cannot write {path}: use a .tif or .ome.zarr name")
    dtype = np.dtype(dtype)
    if dtype not in (np.uint16, np.float32):
        raise CellsynthError(f"image dtype must be uint16 or float32, got {dtype}")
    voxel = check_voxel_size(voxel_size)
    if file_format == "zarr" and path.is_dir() and omezarr.label_names(path):
        existing = omezarr.open_group(path)
        name = omezarr.ome_attributes(existing)["multiscales"][0].get("name")
        scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:  # beside the sample's image, so that the new levels move in by renaming
            _synthesize_zarr(scratch / path.name, mask, foreground, voxel, dtype, omezarr.ngff_version(existing), name,
                             settings)
            io.replace_zarr_image(path, scratch / path.name)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    elif file_format == "zarr":
        with io.atomic_path(path, directory=True) as tmp:
            _synthesize_zarr(tmp, mask, foreground, voxel, dtype, ngff,
                             path.name.removesuffix(".zarr").removesuffix(".ome"), settings)
    else:
        image = synthesize_image(np.asarray(mask), np.asarray(foreground), voxel, **settings)
        io.write_tiff(path, io.image_to_uint16(image) if dtype == np.uint16 else image, voxel)
    return path


def _synthesize_zarr(path: Path, mask: Any, foreground: Any, voxel: VoxelSize, dtype: np.dtype, ngff: str, name: str,
                     settings: dict[str, Any]) -> None:
    """A new OME-Zarr image at ``path``: level 0 synthesised slab by slab, then its pyramid."""
    group = omezarr.create_image(path, tuple(mask.shape), dtype, voxel, ngff=ngff, name=name)
    synthesize_image(mask, foreground, voxel, out=group["0"], **settings)
    omezarr.fill_pyramid(group, slab_bytes=settings.get("memory_budget") or DEFAULT_MEMORY_BUDGET)


def _slabs(array: Any, slab_bytes: int = SLAB_BYTES) -> list[slice]:
    plane = int(np.prod(array.shape[1:])) * np.dtype(array.dtype).itemsize * 4  # the slab and its checks
    step = max(1, slab_bytes // max(plane, 1))
    chunks = getattr(array, "chunks", None)
    if chunks:
        step = max(chunks[0], step // chunks[0] * chunks[0])
    return [slice(z, min(z + step, array.shape[0])) for z in range(0, array.shape[0], step)]


def _positional_map(foreground: Any, voxel: VoxelSize, alpha: float, beta: float, scratch: str | None,
                    memory_budget: int | None) -> Any:
    """The positional map in memory, or (``scratch`` given) in a temporary zarr array there,
    within ``memory_budget`` bytes: from one distance transform of the whole volume where it
    fits (:data:`IN_MEMORY_DISTANCE_BYTES` per voxel, the faster way), else slab by slab
    (:func:`signed_distance_out_of_core`); both give the same distances."""
    if scratch is None:
        return positional_map(np.asarray(foreground), voxel, alpha, beta)
    import zarr

    shape = tuple(int(s) for s in foreground.shape)
    planes, rows = out_of_core_blocks(shape, memory_budget)  # type: ignore[arg-type]
    pos = zarr.create_array(str(Path(scratch) / "positional"), shape=shape, dtype="float32",
                            chunks=(planes, rows, shape[2]), compressors=None)
    if IN_MEMORY_DISTANCE_BYTES * int(np.prod(shape, dtype=np.float64)) <= memory_budget:  # type: ignore[operator]
        inside = np.empty(shape, bool)
        for z in _slabs(foreground):
            inside[z] = np.asarray(foreground[z]) != 0
        pos[...] = signed_distance_um(inside, voxel, overwrite=True)
        del inside
    else:
        per_plane = zarr.create_array(str(Path(scratch) / "planes"), shape=shape, dtype="float32",
                                      chunks=(planes, rows, shape[2]), compressors=None)
        signed_distance_out_of_core(foreground, voxel, pos, memory_budget=memory_budget, scratch=per_plane)
        shutil.rmtree(Path(scratch) / "planes", ignore_errors=True)
    for z0 in range(0, shape[0], planes):  # Eq. 1 in place, chunk by chunk
        for y0 in range(0, shape[1], rows):
            block = (slice(z0, z0 + planes), slice(y0, y0 + rows))
            pos[block] = positional_map_from_distance(pos[block], alpha, beta)
    release_free_memory()
    return pos
