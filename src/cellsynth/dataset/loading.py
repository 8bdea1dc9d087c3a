"""Reading a generated data set: samples, images, splits, and PyTorch patches."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cellsynth import io
from cellsynth.dataset.manifest import read_manifest
from cellsynth.dataset.sample import image_name
from cellsynth.dataset.seeds import SPLIT_NAMES
from cellsynth.errors import CellsynthError


class SyntheticDataset:
    """A generated data set on disk; samples are read when accessed.

    Use :func:`load_dataset` to open one. ``ds[i]`` is an :class:`cellsynth.io.Sample`
    (labels, mask, foreground, voxel size, positions, metadata; ``image`` is the image when
    the data set has one quality level). ``ds.image(i, alpha)`` gives any quality level.

    Attributes
    ----------
    root
        The data set folder.
    parameters
        The resolved generation parameters (kind, shape, voxel_size, simulate, synthesize, seed).
    names
        The finished samples in this view, e.g. ``["sample_0000", ...]``.
    """

    def __init__(self, root: Path, manifest: Mapping[str, Any], names: Sequence[str]):
        self.root = root
        self.manifest = dict(manifest)
        self.parameters = self.manifest["parameters"]
        self.names = list(names)

    @property
    def kind(self) -> str:
        """``nuclei`` or ``membranes``."""
        return self.parameters["kind"]

    @property
    def voxel_size(self) -> io.VoxelSize:
        """Voxel size in µm (z, y, x), the same for every sample."""
        return tuple(self.parameters["voxel_size"])  # type: ignore[return-value]

    @property
    def alphas(self) -> list[float]:
        """The quality levels (alpha, µm) of the images."""
        return list(self.parameters["synthesize"]["alpha"])

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> io.Sample:
        return io.read_sample(self.root / "samples" / self.names[i])

    def __iter__(self) -> Iterator[io.Sample]:
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        return f"SyntheticDataset({str(self.root)!r}, {len(self)} {self.kind} samples, voxel size {self.voxel_size} µm)"

    def path(self, i: int, volume: str = "labels") -> Path:
        """File of ``volume`` (labels, mask, foreground, image, image_alpha10, ...) of sample ``i``."""
        return self.root / "samples" / self.names[i] / io.volume_filename(volume, "tif")

    def image(self, i: int, alpha: float | None = None) -> np.ndarray:
        """The image of sample ``i`` at quality ``alpha`` (default: the first level), float32 in [0, 1]."""
        alpha = self.alphas[0] if alpha is None else float(alpha)
        if alpha not in self.alphas:
            raise CellsynthError(f"this data set has images for alpha {', '.join(f'{a:g}' for a in self.alphas)}, "
                                 f"not {alpha:g}")
        array, _ = io.read_volume(self.path(i, image_name(alpha, self.alphas)))
        return array.astype(np.float32) / 65535.0

    def split(self, name: str) -> SyntheticDataset:
        """The samples of split ``name`` (train, val or test) as in ``splits.csv``."""
        if name not in SPLIT_NAMES:
            raise CellsynthError(f"unknown split {name!r}; use one of {', '.join(SPLIT_NAMES)}")
        table = io.read_positions(self.root / "splits.csv")
        chosen = {n for n, s in zip(table["name"].tolist(), table["split"].tolist()) if s == name}
        return SyntheticDataset(self.root, self.manifest, [n for n in self.names if n in chosen])

    def patches(self, patch: Sequence[int], *, alpha: float | None = None, length: int | None = None,
                seed: int = 0) -> PatchDataset:
        """A PyTorch ``Dataset`` of random (image, labels) patches; see :class:`PatchDataset`."""
        return PatchDataset(self, patch, alpha=alpha, length=length, seed=seed)


def load_dataset(root: str | os.PathLike) -> SyntheticDataset:
    """Open a data set made by ``cellsynth dataset``.

    Parameters
    ----------
    root
        The data set folder (holding ``dataset.json``).

    Returns
    -------
    SyntheticDataset
        The finished samples, read lazily: ``ds[i]`` is an :class:`cellsynth.io.Sample`,
        ``ds.image(i, alpha)`` an image, ``ds.split("train")`` a subset and
        ``ds.patches((32, 64, 64))`` a PyTorch ``Dataset`` of random patches.

    Examples
    --------
    >>> ds = load_dataset("demo")                                  # doctest: +SKIP
    >>> sample = ds[0]; sample.labels.shape, sample.voxel_size      # doctest: +SKIP
    """
    root = Path(root)
    manifest = read_manifest(root)
    names = [s["name"] for s in manifest["samples"]
             if isinstance(s, dict) and (root / "samples" / str(s.get("name")) / "sample.json").is_file()]
    return SyntheticDataset(root, manifest, names)


class PatchDataset:
    """Random (image, labels) patches of a data set, as a map-style PyTorch ``Dataset``.

    Item ``k`` is a patch of sample ``k % len(dataset)`` at a random corner drawn from
    ``SeedSequence(seed, spawn_key=(epoch, k))``: reproducible, and different in each
    epoch after :meth:`set_epoch`. Volumes are memory-mapped, so DataLoader workers share
    the page cache instead of copying volumes. Works with ``torch.utils.data.DataLoader``.

    Parameters
    ----------
    dataset
        The samples to draw from.
    patch
        Patch size (z, y, x) in voxels, at most the volume shape.
    alpha
        Quality level of the images (default: the first).
    length
        Items per epoch (default: one patch per sample, as in the paper).
    seed
        Seed of the patch positions.

    Returns (per item)
    ------------------
    image : torch.Tensor
        float32 (1, z, y, x) in [0, 1].
    labels : torch.Tensor
        int64 (z, y, x) instance labels.
    """

    def __init__(self, dataset: SyntheticDataset, patch: Sequence[int], *, alpha: float | None = None,
                 length: int | None = None, seed: int = 0):
        if len(dataset) == 0:
            raise CellsynthError(f"{dataset.root} has no finished samples to draw patches from")
        self.patch = tuple(int(p) for p in patch)
        shape = tuple(dataset.parameters["shape"])
        if len(self.patch) != 3 or not all(0 < p <= s for p, s in zip(self.patch, shape)):
            raise CellsynthError(f"patch must be three sizes between 1 and the volume shape {shape}, "
                                 f"got {tuple(patch)}")
        alpha = dataset.alphas[0] if alpha is None else float(alpha)
        if alpha not in dataset.alphas:
            raise CellsynthError(f"this data set has images for alpha {', '.join(f'{a:g}' for a in dataset.alphas)}, "
                                 f"not {alpha:g}")
        self.dataset = dataset
        self.volume = image_name(alpha, dataset.alphas)
        self.length = len(dataset) if length is None else int(length)
        self.seed = seed
        self.epoch = 0
        self.shape = shape

    def set_epoch(self, epoch: int) -> None:
        """Draw other patch positions (call once per epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, k: int) -> tuple[Any, Any]:
        import tifffile
        import torch

        if not 0 <= k < self.length:
            raise IndexError(k)
        i = k % len(self.dataset)
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(self.epoch, k)))
        corner = [int(rng.integers(0, s - p + 1)) for s, p in zip(self.shape, self.patch)]
        window = tuple(slice(c, c + p) for c, p in zip(corner, self.patch))
        image = tifffile.memmap(self.dataset.path(i, self.volume), mode="r")[window]
        labels = tifffile.memmap(self.dataset.path(i, "labels"), mode="r")[window]
        return (torch.from_numpy(image.astype(np.float32) / 65535.0)[None],
                torch.from_numpy(labels.astype(np.int64)))
