"""cellsynth samples as napari layer data, and napari layer data back as samples.

napari describes a layer as a tuple ``(data, attributes, layer_type)`` ("LayerData").
These functions make such tuples from sample folders, data sets and OME-Zarr images, and
turn the layers of a viewer back into a :class:`cellsynth.io.Sample`. They use numpy and
dask only (no Qt, no napari), so they work and are tested without a display.

Every layer is placed at its voxel size in µm (``scale``, ``units``) and carries, in
``metadata["cellsynth"]``, which volume of a sample it is (``volume``: labels, mask,
foreground, image or image_alpha10...), the voxel size, where it was read from and the
sample's ``sample.json`` (``sample``: kind, every parameter, the seed).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cellsynth import io
from cellsynth.errors import CellsynthError
from cellsynth.intensity import DEFAULT_PERCENTILES

LayerData = tuple[Any, dict[str, Any], str]
"""napari's ``(data, attributes, layer_type)``."""

METADATA_KEY = "cellsynth"
"""Key of a layer's ``metadata`` under which cellsynth records what the layer is."""

AXES = ("z", "y", "x")
UNITS = ("micrometer",) * 3

_LABEL_VOLUMES = ("labels", "mask", "foreground")
_LIMIT_VOXELS = 2**22
"""Contrast limits of larger images are taken from an evenly strided subset of this many voxels."""


def contrast_limits(image: Any, percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> list[float]:
    """Display range of an image: its 1st and 99.9th percentiles (the package's normalization).

    Large or on-disk images are sampled on an even grid of about 4 million voxels. A
    constant image gets ``[value, value + 1]`` so that napari can still show it.

    Examples
    --------
    >>> np.allclose(contrast_limits(np.arange(1001.0)), [10.0, 999.0])
    True
    """
    shape = np.asarray(np.shape(image))
    step = max(1, int(np.ceil((np.prod(shape, dtype=np.float64) / _LIMIT_VOXELS) ** (1 / len(shape)))))
    values = np.asarray(image[(slice(None, None, step),) * len(shape)], dtype=np.float64)
    lo, hi = (float(v) for v in np.percentile(values, percentiles))
    if hi <= lo:
        lo, hi = float(values.min()), float(values.max())
    return [lo, hi if hi > lo else lo + 1.0]


def _metadata(volume: str, voxel: io.VoxelSize, source: str | None, sample: Mapping[str, Any],
              **extra: Any) -> dict[str, Any]:
    return {METADATA_KEY: {"volume": volume, "voxel_size_um": list(voxel), "source": source, "sample": dict(sample),
                           **extra}}


def _placement(voxel: Sequence[float], leading: int = 0) -> dict[str, Any]:
    """``scale``, ``units`` and ``axis_labels`` of a (Z, Y, X) layer, after ``leading`` unit axes."""
    return {"scale": (1.0,) * leading + tuple(float(v) for v in voxel),
            "units": ("pixel",) * leading + UNITS,
            "axis_labels": tuple(f"axis {i}" for i in range(leading)) + AXES}


def volume_layer(name: str, data: Any, volume: str, voxel: io.VoxelSize, *, source: str | None = None,
                 sample: Mapping[str, Any] | None = None, leading: int = 0, **extra: Any) -> LayerData:
    """One volume of a sample as layer data.

    ``labels`` becomes a labels layer; ``mask`` and ``foreground`` (0/1) become labels
    layers too, half transparent and hidden at first; images become image layers with
    :func:`contrast_limits`.

    Parameters
    ----------
    name
        Layer name.
    data
        The array (numpy, zarr or dask), (Z, Y, X) after ``leading`` stacking axes.
    volume
        The sample volume it holds: labels, mask, foreground, image or image_alpha{A}.
    voxel
        Voxel size in µm (z, y, x).
    source
        Where it was read from (recorded in the metadata).
    sample
        The sample's ``sample.json`` (or the data set's parameters).
    leading
        Number of stacking axes in front of (Z, Y, X) (a data set's sample axis).
    **extra
        More entries for ``metadata["cellsynth"]``.
    """
    attributes = {"name": name, **_placement(voxel, leading),
                  "metadata": _metadata(volume, voxel, source, sample or {}, **extra)}
    if volume in _LABEL_VOLUMES:
        if volume != "labels":  # mask and foreground: shown on demand
            attributes.update(opacity=0.5, visible=False)
        return data, attributes, "labels"
    attributes.update(colormap="gray", blending="additive", contrast_limits=contrast_limits(data))
    return data, attributes, "image"


def _image_volumes(files: Mapping[str, str]) -> list[str]:
    """The image volumes of a sample (``image`` first, then the quality levels)."""
    return sorted((n for n in files if n == "image" or n.startswith("image_")), key=lambda n: (n != "image", n))


def layers_from_sample(sample: io.Sample, name: str, *, source: str | None = None,
                       images: Mapping[str, Any] | None = None) -> list[LayerData]:
    """The layers of a sample: labels, mask, foreground, then ``sample.image`` and ``images``.

    Layers are named ``"<name> <volume>"``; the labels layer also records the positions
    table (``metadata["cellsynth"]["positions"]``) so that the writer can keep it.
    """
    volumes = {volume: getattr(sample, volume) for volume in (*_LABEL_VOLUMES, "image")}
    volumes.update(images or {})
    layers = []
    for volume, data in volumes.items():
        if data is None:
            continue
        extra = {"positions": {k: np.asarray(v).tolist() for k, v in sample.positions.items()}} \
            if volume == "labels" else {}
        layers.append(volume_layer(f"{name} {volume}", data, volume, sample.voxel_size, source=source,
                                   sample=sample.metadata, **extra))
    return layers


def sample_layers(path: str | os.PathLike) -> list[LayerData]:
    """The layers of a sample folder: labels, mask, foreground and every image.

    TIFF volumes are read into memory (the image as float32 in [0, 1]); OME-Zarr volumes
    stay on disk. Layers are named ``"<folder> <volume>"``.

    Raises
    ------
    CellsynthError
        If ``path`` is not a sample folder.
    """
    path = Path(path)
    lazy = _is_zarr_sample(path)
    sample = io.read_sample(path, lazy=lazy)
    files = sample.metadata.get("files", {})
    images = {volume: _read_image(path / files[volume], lazy) for volume in _image_volumes(files) if volume != "image"}
    return layers_from_sample(sample, path.name, source=str(path), images=images)


def _is_zarr_sample(path: Path) -> bool:
    return io.read_json(path / "sample.json").get("format") == "zarr"


def _read_image(path: Path, lazy: bool) -> Any:
    array, _ = io.read_volume(path, lazy=lazy)
    return array if lazy else array.astype(np.float32) / 65535.0


def dataset_layers(root: str | os.PathLike, sample: int | None = None) -> list[LayerData]:
    """The layers of a data set made by ``cellsynth dataset``.

    Parameters
    ----------
    root
        The data set folder (with ``dataset.json``).
    sample
        None: every finished sample, stacked along a first axis (one slider step per
        sample; read from disk as napari shows it). An index: that sample's layers only.

    Returns
    -------
    list
        Layer data; a stacked layer's metadata lists the sample names in order
        (``metadata["cellsynth"]["samples"]``) beside the data set's parameters.
    """
    from cellsynth.dataset import load_dataset

    dataset = load_dataset(root)
    if len(dataset) == 0:
        raise CellsynthError(f"{root} has no finished samples yet; run `cellsynth dataset` to make them")
    if sample is not None:
        if not 0 <= sample < len(dataset):
            raise CellsynthError(f"{root} has {len(dataset)} finished samples; choose an index from 0 to "
                                 f"{len(dataset) - 1}")
        return sample_layers(dataset.root / "samples" / dataset.names[sample])
    import dask
    import dask.array as da

    folders = [dataset.root / "samples" / name for name in dataset.names]
    first = io.read_json(folders[0] / "sample.json")
    shape = tuple(dataset.parameters["shape"])
    layers = []
    volumes = [*_LABEL_VOLUMES, *_image_volumes(first.get("files", {}))]
    for volume in volumes:
        dtype = _read_stacked(folders[0], volume).dtype
        read = dask.delayed(_read_stacked, pure=True)
        stack = da.stack([da.from_delayed(read(folder, volume), shape, dtype) for folder in folders])
        layers.append(volume_layer(f"{dataset.root.name} {volume}", stack, volume, dataset.voxel_size,
                                   source=str(dataset.root), sample=dataset.parameters, leading=1,
                                   samples=list(dataset.names)))
    return layers


def _read_stacked(folder: Path, volume: str) -> np.ndarray:
    """One volume of one sample of a stacked data set layer (images as float32 in [0, 1])."""
    meta = io.read_json(folder / "sample.json")
    array, _ = io.read_volume(folder / meta["files"][volume])
    return array.astype(np.float32) / 65535.0 if volume.startswith("image") else array


def zarr_layers(path: str | os.PathLike) -> list[LayerData]:
    """An OME-Zarr image (e.g. from ``cellsynth synthesize --out image.ome.zarr``) as an
    image layer at its recorded voxel size, read from disk as napari shows it.

    Raises
    ------
    CellsynthError
        If the store records no voxel size (it was not written as OME-Zarr).
    """
    path = Path(path)
    array, voxel = io.read_volume(path, lazy=True)
    if voxel is None:
        raise CellsynthError(f"{path} records no voxel size (no NGFF scale); it is not an OME-Zarr image")
    return [volume_layer(path.name.removesuffix(".zarr").removesuffix(".ome"), array, "image", voxel,
                         source=str(path))]


# --------------------------------------------------------------------------- layers -> sample


def layer_role(data: Any, attributes: Mapping[str, Any], layer_type: str) -> str | None:
    """Which sample volume a layer holds: the one recorded in its metadata, else ``labels``
    for a labels layer and ``image`` for an image layer (None for other layer types)."""
    recorded = attributes.get("metadata", {}).get(METADATA_KEY, {}).get("volume")
    if recorded:
        return recorded
    return {"labels": "labels", "image": "image"}.get(layer_type)


def sample_from_layers(layer_data: Sequence[LayerData]) -> tuple[io.Sample, dict[str, np.ndarray]]:
    """A :class:`cellsynth.io.Sample` and its extra images from napari layers (what the writer saves).

    Exactly one layer must hold the labels. The mask and the foreground come from their
    layers where given, else from the labels with the sample's kind
    (:func:`cellsynth.synthesis.annotation_from_labels`). Images (one, or one per quality
    level) may be uint8, uint16 or float in [0, 1]. The voxel size is the layers' scale;
    positions are kept where the labels are those recorded, else recomputed from the labels.

    Returns
    -------
    sample, images
        The sample (``image`` from the layer of volume ``image``) and the other images by
        volume name (``image_alpha10``...), as :func:`cellsynth.io.write_sample` takes them.

    Raises
    ------
    CellsynthError
        For no or several labels layers, layers of different shapes or scales, 4D layers,
        or labels whose kind (nuclei or membranes) is recorded nowhere while the mask or
        the foreground is missing.
    """
    from cellsynth.synthesis import annotation_from_labels

    volumes: dict[str, tuple[Any, dict[str, Any]]] = {}
    for data, attributes, layer_type in layer_data:
        role = layer_role(data, attributes, layer_type)
        if role is None:
            continue
        if role in volumes:
            raise CellsynthError(f"two layers hold the {role} ({volumes[role][1].get('name')!r} and "
                                 f"{attributes.get('name')!r}); select only one of them to save")
        volumes[role] = (data, dict(attributes))
    if "labels" not in volumes:
        raise CellsynthError("a sample folder needs a labels layer; select one to save")
    labels, label_attrs = volumes["labels"]
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise CellsynthError(f"the labels layer must be a 3D (Z, Y, X) volume, got shape {labels.shape}; "
                             "save one sample of a stack at a time")
    voxel = _common_scale(volumes)
    recorded = label_attrs.get("metadata", {}).get(METADATA_KEY, {})
    meta = dict(recorded.get("sample", {}))
    arrays = {}
    for role, (data, attributes) in volumes.items():
        array = np.asarray(data)
        if array.shape != labels.shape:
            raise CellsynthError(f"layer {attributes.get('name')!r} has shape {array.shape}, the labels "
                                 f"{labels.shape}; all layers of a sample must have one shape")
        arrays[role] = _as_image(array, attributes.get("name")) if role.startswith("image") else array
    labels = _as_labels(labels)
    if "mask" not in arrays or "foreground" not in arrays:
        kind = meta.get("kind")
        if kind not in ("nuclei", "membranes"):
            raise CellsynthError("the labels layer records no kind (nuclei or membranes) to derive the mask "
                                 "and foreground from; select mask and foreground layers too")
        mask, foreground = annotation_from_labels(labels, kind, voxel)
        arrays.setdefault("mask", mask)
        arrays.setdefault("foreground", foreground)
    positions = _positions(labels, voxel, recorded.get("positions"))
    images = {k: v for k, v in arrays.items() if k.startswith("image") and k != "image"}
    sample = io.Sample(labels=labels, mask=(arrays["mask"] != 0).astype(np.uint8),
                       foreground=(arrays["foreground"] != 0).astype(np.uint8), voxel_size=voxel,
                       positions=positions, image=arrays.get("image"),
                       metadata={k: v for k, v in meta.items()
                                 if k not in ("files", "format", "shape", "voxel_size_um", "cellsynth_version")})
    return sample, images


def _common_scale(volumes: Mapping[str, tuple[Any, Mapping[str, Any]]]) -> io.VoxelSize:
    scales = {}
    for role, (_, attributes) in volumes.items():
        scale = attributes.get("scale")
        scales[role] = io.check_voxel_size(scale[-3:] if scale is not None else (1.0, 1.0, 1.0))
    voxel = scales["labels"]
    for role, scale in scales.items():
        if not np.allclose(scale, voxel, rtol=1e-6):
            raise CellsynthError(f"the {role} layer has scale {scale}, the labels {voxel}; a sample has one voxel size")
    return voxel


def _as_labels(labels: np.ndarray) -> np.ndarray:
    if labels.dtype.kind not in "ui" and labels.dtype != bool:
        raise CellsynthError(f"labels must hold integers, got {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise CellsynthError("labels must not be negative; 0 is background and cells are 1, 2, ...")
    return labels.astype(io.label_dtype(int(labels.max()) if labels.size else 0))


def _as_image(image: np.ndarray, name: Any) -> np.ndarray:
    """An image as float32 in [0, 1] (uint8 and uint16 scaled by their range)."""
    if image.dtype in (np.uint8, np.uint16):
        return image.astype(np.float32) / np.float32(np.iinfo(image.dtype).max)
    if image.dtype.kind == "f" and np.isfinite(image).all() and image.min() >= 0 and image.max() <= 1:
        return image.astype(np.float32)
    raise CellsynthError(f"image layer {name!r} must be uint8, uint16 or float in [0, 1] to be saved in a sample "
                         f"folder (it is {image.dtype}, range {image.min():g}-{image.max():g}); rescale it first")


def _positions(labels: np.ndarray, voxel: io.VoxelSize, recorded: Mapping[str, Sequence[Any]] | None
               ) -> dict[str, np.ndarray]:
    """The recorded positions table if its labels are exactly those present, else the table
    of the labels' centroids and equivalent radii (:func:`cellsynth.annotate.positions_table`)."""
    from cellsynth.annotate import positions_table

    present = np.unique(labels)
    present = present[present > 0]
    if recorded and np.array_equal(np.sort(np.asarray(recorded.get("label", []))), present):
        return {k: np.asarray(v) for k, v in recorded.items()}
    return positions_table(labels, voxel)
