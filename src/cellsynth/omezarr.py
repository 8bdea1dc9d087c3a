"""OME-Zarr images with multiscale pyramids and label layers (OME-NGFF 0.4 or 0.5).

One image is one Zarr group::

    NAME.ome.zarr/
      .zattrs or zarr.json    "multiscales": axes z, y, x (micrometer), one scale per level
      0/ 1/ ...               resolution levels; level k + 1 halves the finest axes of level k
      labels/                 "labels": ["labels", "mask", "foreground"]   (optional)
        labels/ mask/ ...     image-labels: multiscale images with "image-label" metadata

NGFF 0.4 stores it in Zarr format 2 with the metadata at the top of ``.zattrs`` and a
``version`` in every object; NGFF 0.5 stores it in Zarr format 3 with the metadata under
the ``"ome"`` key of ``zarr.json``, the version there once, and dimension names on the
arrays. Viewers that read the spec (napari with napari-ome-zarr, ome-zarr-py, Fiji's MoBIE,
vizarr) show the image and each label image as a label layer at the right scale.

Pyramid: while the largest side of a level exceeds :data:`PYRAMID_MAX_SIDE` voxels, the
next level halves the axes whose voxel size is within 1.5 times the finest one (so
anisotropic volumes become more isotropic first). Image levels are means of 2-voxel blocks,
label levels take every second voxel (label values stay labels). Levels are computed slab
by slab from the level before, on disk, so memory stays bounded whatever the volume size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cellsynth.errors import CellsynthError

NGFF_VERSIONS = ("0.4", "0.5")
"""Supported OME-NGFF versions: 0.4 (Zarr format 2) and 0.5 (Zarr format 3)."""

DEFAULT_NGFF = "0.4"
"""NGFF 0.4 by default: the version most viewers read today."""

PYRAMID_MAX_SIDE = 256
"""Levels are added until no side of the coarsest one exceeds this many voxels."""

DEFAULT_CHUNKS = (64, 256, 256)
"""Chunk shape (z, y, x), cut to the volume."""

LABELS_GROUP = "labels"
AXES = ("z", "y", "x")
_SLAB_BYTES = 64 * 2**20


def check_ngff(version: Any) -> str:
    """Validate an NGFF version (``"0.4"`` or ``"0.5"``) and return it as a string."""
    text = str(version)
    if text not in NGFF_VERSIONS:
        raise CellsynthError(f"unknown OME-NGFF version {version!r}; use {' or '.join(NGFF_VERSIONS)}")
    return text


def pyramid_shapes(shape: tuple[int, ...], voxel_size: tuple[float, ...],
                   max_side: int = PYRAMID_MAX_SIDE) -> list[tuple[tuple[int, int, int], tuple[float, float, float]]]:
    """The shape and voxel size (µm) of every level of an image's pyramid.

    Examples
    --------
    >>> [s for s, _ in pyramid_shapes((64, 1024, 600), (1.0, 0.25, 0.25))]
    [(64, 1024, 600), (64, 512, 300), (64, 256, 150)]
    >>> [v for _, v in pyramid_shapes((300, 300, 300), (1.0, 1.0, 1.0))]
    [(1.0, 1.0, 1.0), (2.0, 2.0, 2.0)]
    """
    levels = [(tuple(int(s) for s in shape), tuple(float(v) for v in voxel_size))]
    while max(levels[-1][0]) > max_side:
        size, voxel = levels[-1]
        finest = min(v for v, s in zip(voxel, size) if s > 1)
        halve = [s > 1 and v <= 1.5 * finest for s, v in zip(size, voxel)]
        levels.append((tuple(-(-s // 2) if h else s for s, h in zip(size, halve)),  # type: ignore[misc]
                       tuple(v * 2 if h else v for v, h in zip(voxel, halve))))
    return levels  # type: ignore[return-value]


# --------------------------------------------------------------------------- metadata


def ome_attributes(group: Any) -> dict[str, Any]:
    """The OME metadata of a group: the ``"ome"`` object (NGFF 0.5) or the top-level attributes (0.4)."""
    attrs = group.attrs.asdict()
    return dict(attrs["ome"]) if isinstance(attrs.get("ome"), Mapping) else dict(attrs)


def set_ome_attributes(group: Any, values: Mapping[str, Any], version: str) -> None:
    """Add OME metadata to a group: at the top of its attributes (0.4) or in its ``"ome"`` object (0.5)."""
    if version == "0.4":
        group.attrs.update(values)
    else:
        group.attrs["ome"] = {"version": version, **ome_attributes(group), **values}


def _multiscales(name: str, levels: list, version: str) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {
        "name": name,
        "axes": [{"name": a, "type": "space", "unit": "micrometer"} for a in AXES],
        "datasets": [{"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": list(voxel)}]}
                     for i, (_, voxel) in enumerate(levels)],
    }
    return [{"version": version, **entry} if version == "0.4" else entry]


def _chunks(shape: tuple[int, ...], chunks: tuple[int, ...] | None) -> tuple[int, ...]:
    return tuple(min(s, c) for s, c in zip(shape, chunks or DEFAULT_CHUNKS))


# --------------------------------------------------------------------------- writing


def create_image(path: str | os.PathLike, shape: tuple[int, ...], dtype: Any, voxel_size: tuple[float, ...], *,
                 ngff: str = DEFAULT_NGFF, name: str | None = None, chunks: tuple[int, int, int] | None = None,
                 label: bool = False) -> Any:
    """Create an empty OME-Zarr image (every level, no chunk written yet) and return its group.

    Write level 0 (``group["0"]``), then call :func:`fill_pyramid`. Unwritten chunks read as
    0. Use within :func:`cellsynth.io.atomic_path` (``directory=True``) so that a half-written
    store never appears under its final name.

    Parameters
    ----------
    path
        The group to create (replaced if it exists).
    shape, dtype
        Shape (Z, Y, X) and type of level 0.
    voxel_size
        Voxel size of level 0 in µm (z, y, x).
    ngff
        ``"0.4"`` (Zarr format 2) or ``"0.5"`` (Zarr format 3).
    name
        The image's name in its metadata (default: the folder name without ``.ome.zarr``).
    chunks
        Chunk shape (z, y, x) of every level (default :data:`DEFAULT_CHUNKS`).
    label
        Make it an image-label (``labels/NAME`` of an image): adds the ``image-label``
        metadata that points at the image two folders up.
    """
    import zarr

    version = check_ngff(ngff)
    shape = tuple(int(s) for s in shape)
    levels = pyramid_shapes(shape, voxel_size)
    name = name or Path(path).name.removesuffix(".zarr").removesuffix(".ome")
    group = zarr.open_group(str(path), mode="w", zarr_format=2 if version == "0.4" else 3)
    extra = {"dimension_names": list(AXES)} if version == "0.5" else {}
    for i, (size, _) in enumerate(levels):
        group.create_array(str(i), shape=size, dtype=dtype, chunks=_chunks(size, chunks), fill_value=0, **extra)
    values: dict[str, Any] = {"multiscales": _multiscales(name, levels, version)}
    if label:
        values["image-label"] = {**({"version": version} if version == "0.4" else {}), "source": {"image": "../../"}}
    set_ome_attributes(group, values, version)
    return group


def level_paths(group: Any) -> list[str]:
    """The array paths of an image's resolution levels, finest first."""
    return [d["path"] for d in ome_attributes(group)["multiscales"][0]["datasets"]]


def fill_pyramid(group: Any, *, label: bool = False, slab_bytes: int | None = None) -> None:
    """Compute levels 1, 2, ... of an image from its level 0, slab by slab.

    Parameters
    ----------
    group
        An image group made by :func:`create_image` whose level 0 is written.
    label
        Labels (take every second voxel) rather than intensities (means of 2-voxel blocks).
    slab_bytes
        About how much memory a slab and its reduction may take (default :data:`_SLAB_BYTES`).
    """
    paths = level_paths(group)
    for fine, coarse in zip(paths, paths[1:]):
        _downsample(group[fine], group[coarse], label, slab_bytes or _SLAB_BYTES)


def _downsample(source: Any, target: Any, label: bool, slab_bytes: int) -> None:
    """One level from the level before, in blocks of whole target chunks (one chunk high, as
    many chunk rows in y as keep the float32 source block near ``slab_bytes``)."""
    factor = [2 if t < s else 1 for s, t in zip(source.shape, target.shape)]
    cz, cy = target.chunks[0], target.chunks[1]
    row_bytes = int(source.shape[2]) * 4 * factor[0] * factor[1]  # float32 source behind one target (z, y) row
    step_y = max(cy, slab_bytes // max(row_bytes * cz, 1) // cy * cy)
    for z0 in range(0, target.shape[0], cz):
        z1 = min(z0 + cz, target.shape[0])
        for y0 in range(0, target.shape[1], step_y):
            y1 = min(y0 + step_y, target.shape[1])
            block = np.asarray(source[z0 * factor[0]:z1 * factor[0], y0 * factor[1]:y1 * factor[1]])
            target[z0:z1, y0:y1] = _reduce(block, factor, label, target.dtype)


def _reduce(block: np.ndarray, factor: list[int], label: bool, dtype: Any) -> np.ndarray:
    """2-voxel blocks along the axes with factor 2: every second voxel, or the mean (odd ends repeat)."""
    if label:
        return block[tuple(slice(None, None, f) for f in factor)]
    out = block.astype(np.float32)
    for axis, f in enumerate(factor):
        if f == 2:
            if out.shape[axis] % 2:
                out = np.concatenate([out, out.take([-1], axis=axis)], axis=axis)
            out = out.reshape(out.shape[:axis] + (out.shape[axis] // 2, 2) + out.shape[axis + 1:]).mean(axis=axis + 1)
    if np.dtype(dtype).kind in "ui":
        info = np.iinfo(dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(dtype)


def _slabs(array: Any) -> Iterator[slice]:
    """Whole-chunk z-slabs of an on-disk array, each about :data:`_SLAB_BYTES`."""
    plane_bytes = int(np.prod(array.shape[1:])) * np.dtype(array.dtype).itemsize
    chunk = array.chunks[0]
    step = max(1, _SLAB_BYTES // max(plane_bytes, 1) // chunk) * chunk
    for z0 in range(0, array.shape[0], step):
        yield slice(z0, min(z0 + step, array.shape[0]))


def write_image(path: str | os.PathLike, array: Any, voxel_size: tuple[float, ...], *, ngff: str = DEFAULT_NGFF,
                name: str | None = None, label: bool = False) -> Any:
    """Write a volume (numpy or on-disk array) as an OME-Zarr image with its pyramid; return the group.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     group = write_image(f"{folder}/cells.ome.zarr", np.ones((4, 300, 300), np.uint16), (1.0, 0.5, 0.5))
    ...     [group[level].shape for level in ("0", "1")]
    [(4, 300, 300), (4, 150, 150)]
    """
    group = create_image(path, tuple(array.shape), array.dtype, voxel_size, ngff=ngff, name=name, label=label)
    level0 = group["0"]
    for z in _slabs(level0):
        level0[z] = np.asarray(array[z])
    fill_pyramid(group, label=label)
    return group


def add_labels(image_path: str | os.PathLike, labels: Mapping[str, Any], voxel_size: tuple[float, ...]) -> None:
    """Add label images to an OME-Zarr image, under its ``labels/`` group.

    Parameters
    ----------
    image_path
        The image (made by :func:`create_image` or :func:`write_image`).
    labels
        Name -> integer volume (numpy or on-disk) of the image's shape: instance labels or
        0/1 masks. Each becomes a multiscale image-label ``labels/NAME``.
    voxel_size
        Voxel size of level 0 in µm.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     image = f"{folder}/cells.ome.zarr"
    ...     _ = write_image(image, np.zeros((2, 8, 8), np.uint16), (1.0, 1.0, 1.0))
    ...     add_labels(image, {"cells": np.ones((2, 8, 8), np.uint16)}, (1.0, 1.0, 1.0))
    ...     label_names(image)
    ['cells']
    """
    import zarr

    image_path = Path(image_path)
    image = open_group(image_path)
    version, shape = ngff_version(image), tuple(image[level_paths(image)[0]].shape)
    group = zarr.open_group(str(image_path / LABELS_GROUP), mode="a", zarr_format=image.metadata.zarr_format)
    names = list(ome_attributes(group).get("labels", []))
    for name, volume in labels.items():
        if tuple(volume.shape) != shape:
            raise CellsynthError(f"label image {name} {tuple(volume.shape)} does not match the image {shape}")
        write_image(image_path / LABELS_GROUP / name, volume, voxel_size, ngff=version, name=name, label=True)
        names += [] if name in names else [name]
    set_ome_attributes(group, {"labels": names}, version)


# --------------------------------------------------------------------------- reading


def open_group(path: str | os.PathLike, mode: str = "r") -> Any:
    """Open an OME-Zarr group (Zarr format 2 or 3), with a one-line error for anything else."""
    import zarr

    try:
        return zarr.open_group(str(path), mode=mode)
    except Exception as err:  # zarr raises many types for a missing or damaged store
        raise CellsynthError(f"cannot open OME-Zarr {path}: {err}") from None


def ngff_version(group: Any) -> str:
    """The NGFF version of an image group: from its metadata, else from its Zarr format."""
    attrs = ome_attributes(group)
    version = attrs.get("version") or next(iter(attrs.get("multiscales") or [{}])).get("version")
    if version is None and "image-label" in attrs:
        version = attrs["image-label"].get("version")
    return str(version) if version else ("0.4" if group.metadata.zarr_format == 2 else "0.5")


def open_image(path: str | os.PathLike) -> tuple[Any, tuple[float, float, float] | None]:
    """Level 0 of an OME-Zarr image (lazily, on disk) and its voxel size in µm (None if unrecorded).

    Reads NGFF 0.4 and 0.5 images and label images, and plain Zarr arrays.
    """
    path = Path(path)
    if not path.exists():
        raise CellsynthError(f"file not found: {path}")
    group = open_group(path)
    try:
        multiscales = ome_attributes(group).get("multiscales")
        dataset = multiscales[0]["datasets"][0] if multiscales else {"path": "0"}
        array = group[dataset["path"]]
    except Exception as err:  # a group without the named array, or metadata of another shape
        raise CellsynthError(f"cannot open OME-Zarr {path}: {err}") from None
    voxel = None
    for transform in dataset.get("coordinateTransformations", []):
        if transform.get("type") == "scale":
            voxel = tuple(float(v) for v in transform["scale"][-3:])
    return array, voxel  # type: ignore[return-value]


def label_names(image_path: str | os.PathLike) -> list[str]:
    """The label images of an OME-Zarr image (``labels/`` group), in order; [] without any."""
    group = open_group(image_path)
    if LABELS_GROUP not in group:
        return []
    return list(ome_attributes(group[LABELS_GROUP]).get("labels", []))
