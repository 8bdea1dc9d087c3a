"""napari reader: sample folders, data sets and OME-Zarr images open as layers.

napari calls :func:`get_reader` with what the user opens (File > Open, drag and drop,
``viewer.open(path, plugin="cellsynth")``); it returns a function that reads the layers,
or None when the path is not cellsynth data, so that napari asks another reader.

- a sample folder (``sample.json``): labels, mask, foreground and image layers;
- a data set folder (``dataset.json``): every finished sample stacked along a first axis,
  read from disk as you move the slider (one sample: open its folder in ``samples/``);
- an OME-Zarr image (``*.ome.zarr``): an image layer; the OME-Zarr image of a zarr sample
  folder opens the whole sample.

Every layer is at the recorded voxel size in µm and carries the sample's parameters in
``layer.metadata["cellsynth"]`` (:mod:`cellsynth.napari.layers`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from cellsynth import io
from cellsynth.errors import CellsynthError
from cellsynth.napari.layers import LayerData, dataset_layers, sample_layers, zarr_layers

ReaderFunction = Callable[[str | Sequence[str]], list[LayerData]]


def cellsynth_layers(path: str | os.PathLike) -> list[LayerData]:
    """The layers of one sample folder, data set folder or OME-Zarr image.

    Raises
    ------
    CellsynthError
        If ``path`` is none of these.
    """
    path = Path(path)
    what = _what(path)
    if what == "sample":
        return sample_layers(path)
    if what == "zarr sample":
        return sample_layers(path.parent)
    if what == "dataset":
        return dataset_layers(path)
    if what == "zarr":
        return zarr_layers(path)
    raise CellsynthError(f"{path} is no sample folder, data set folder or OME-Zarr image")


def get_reader(path: str | Sequence[str]) -> ReaderFunction | None:
    """napari's reader hook: a function that reads ``path`` (one path or several), or None."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths or not all(_what(Path(p)) for p in paths):
        return None
    return read_layers


def read_layers(path: str | Sequence[str]) -> list[LayerData]:
    """Every layer of ``path`` (one path or several), in order."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    return [layer for p in paths for layer in cellsynth_layers(p)]


def _what(path: Path) -> str | None:
    """What cellsynth data ``path`` is, or None."""
    if (path / "sample.json").is_file():
        return "sample"
    if (path / "dataset.json").is_file():
        return "dataset"
    if path.is_dir() and io.is_zarr(path):
        return "zarr sample" if (path.parent / "sample.json").is_file() else "zarr"
    return None
