"""Training data for the GAN: real images, their structure masks and positional maps.

Inputs are HDF5 files with ``raw`` and ``label`` datasets (a file or a folder of them), or
a folder with ``images/`` and ``labels/`` holding TIFF pairs matched by name. Labels become
the structure the generator sees through the simulation's own function
(:func:`cellsynth.simulate.annotations.structure_mask`: nuclei foreground, or membranes
with the same wall definition as simulated samples); the positional map comes from the
same functions synthesis uses (:func:`cellsynth.conditioning.organism_from_labels`, the
organism a labels file gets, and :func:`cellsynth.conditioning.positional_map`), so the
organism, alpha and beta mean the same in training and synthesis. A crop taken inside a
tissue is organism up to its border, like a simulated ``box`` organism, and its map is 1.

Whole volumes are prepared once and kept in memory; a patch is a slice plus a flip or
rotation, which takes well under a millisecond, so the loader never holds the training
step up. The last ``holdout`` fraction of each volume along one axis is cut off before
anything else, so the networks never see it; use :func:`split_regions` to find it again
for evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cellsynth.errors import CellsynthError
from cellsynth.intensity import normalize_percentiles
from cellsynth.io import VoxelSize, check_labels, check_voxel_size, read_h5, read_tiff

_H5 = (".h5", ".hdf5", ".hdf")
_TIFF = (".tif", ".tiff")
AXES = {"z": 0, "y": 1, "x": 2}


@dataclass
class TrainingVolume:
    """One real volume prepared for training (its training part only).

    Attributes
    ----------
    name
        File name, for messages and logs.
    image
        float32 in [0, 1] after percentile normalization; None for a simulated annotation
        (masks without an image, :mod:`cellsynth.gan.simulated`).
    mask
        uint8 structure mask (0/1).
    positional
        float32 positional map (Eq. 1) of the organism of the training part's labels.
    voxel_size
        µm (z, y, x).
    """

    name: str
    image: np.ndarray | None
    mask: np.ndarray
    positional: np.ndarray
    voxel_size: VoxelSize


def find_pairs(paths: Sequence[str | Path]) -> list[tuple[str, Path, Path]]:
    """List ``(name, image_file, label_file)`` for every training pair under ``paths``.

    An HDF5 file is its own pair (``raw`` and ``label``); a folder contributes its HDF5
    files, or its ``images/`` and ``labels/`` TIFFs matched by file name.
    """
    pairs: list[tuple[str, Path, Path]] = []
    for path in map(Path, paths):
        if path.is_file() and path.suffix.lower() in _H5:
            pairs.append((path.name, path, path))
        elif path.is_dir() and (path / "images").is_dir():
            images = {p.stem: p for p in sorted((path / "images").iterdir()) if p.suffix.lower() in _TIFF}
            labels = {p.stem: p for p in sorted((path / "labels").iterdir()) if p.suffix.lower() in _TIFF} \
                if (path / "labels").is_dir() else {}
            unmatched = sorted(set(images) ^ set(labels))
            if unmatched:
                raise CellsynthError(f"{path}: images/ and labels/ must hold TIFFs of the same names; "
                                     f"unmatched: {', '.join(unmatched[:5])}")
            pairs += [(name, images[name], labels[name]) for name in sorted(images)]
        elif path.is_dir():
            pairs += [(p.name, p, p) for p in sorted(path.iterdir()) if p.suffix.lower() in _H5]
        else:
            raise CellsynthError(f"--data {path}: not an HDF5 file or a folder; "
                                 "give .h5 files with raw/label, or a folder with images/ and labels/")
    if not pairs:
        raise CellsynthError(f"no training data found in {', '.join(map(str, paths))}; "
                             "give .h5 files with raw/label, or a folder with images/ and labels/ TIFFs")
    return pairs


def read_pair(image_file: Path, label_file: Path,
              voxel_size: VoxelSize | None = None) -> tuple[np.ndarray, np.ndarray, VoxelSize]:
    """Read a raw image and its instance labels; check shapes, cells and voxel size.

    ``voxel_size`` (µm, z y x) is used where the file records none.
    """
    if image_file.suffix.lower() in _H5:
        raw, voxel = read_h5(image_file, "raw")
        labels = check_labels(read_h5(label_file, "label")[0], str(label_file))
    else:
        raw, voxel = read_tiff(image_file)
        labels = check_labels(read_tiff(label_file)[0], str(label_file))
    name = image_file.name if image_file == label_file else f"{image_file.name} / {label_file.name}"
    if raw.shape != labels.shape:
        raise CellsynthError(f"{name}: image shape {raw.shape} and label shape {labels.shape} differ; "
                             "give labels of the image's shape")
    if labels.dtype.kind not in "iu":
        raise CellsynthError(f"{name}: labels must be integers (instance ids), got {labels.dtype}")
    if not labels.any():
        raise CellsynthError(f"{name}: the labels contain no cells (all 0); annotate the image or leave it out")
    voxel = voxel or voxel_size
    if voxel is None:
        raise CellsynthError(f"{name} records no voxel size; pass --voxel-size Z Y X in µm")
    return raw, labels, check_voxel_size(voxel)


def split_regions(shape: Sequence[int], holdout: float, axis: str = "y") -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """The training part and the held-out part (the last ``holdout`` fraction along ``axis``)."""
    if not 0 <= holdout < 1:
        raise CellsynthError(f"holdout must be a fraction in [0, 1), got {holdout}")
    if axis not in AXES:
        raise CellsynthError(f"holdout axis must be z, y or x, got {axis!r}")
    a = AXES[axis]
    cut = shape[a] - round(holdout * shape[a])
    train = [slice(None)] * 3
    held = [slice(None)] * 3
    train[a], held[a] = slice(0, cut), slice(cut, None)
    return tuple(train), tuple(held)


def normalize_image(raw: np.ndarray, low: float = 1.0, high: float = 99.9) -> np.ndarray:
    """A raw training image as float32 in [0, 1]: :func:`cellsynth.intensity.normalize_percentiles`
    of its float32 values (the percentiles are taken in float32, as the shipped models saw them)."""
    return normalize_percentiles(np.asarray(raw, dtype=np.float32), low, high)


def load_volumes(paths: Sequence[str | Path], kind: str, *, voxel_size: VoxelSize | None = None,
                 alpha: float = 100.0, beta: float = 100.0, percentiles: tuple[float, float] = (1.0, 99.9),
                 holdout: float = 0.25, holdout_axis: str = "y",
                 membrane_thickness_um: float | None = None) -> list[TrainingVolume]:
    """Read and prepare every training pair under ``paths``.

    Parameters
    ----------
    paths
        HDF5 files, folders of them, or folders with ``images/`` and ``labels/``.
    kind
        ``"nuclei"`` or ``"membranes"``: which structure mask the labels give.
    voxel_size
        µm (z, y, x) for files that record none.
    alpha, beta
        Positional map decay lengths in µm (Eq. 1).
    percentiles
        Intensity percentiles mapped to 0 and 1.
    holdout, holdout_axis
        Fraction of each volume, at the end of this axis, left out of training.
    membrane_thickness_um
        Wall thickness for membranes (the simulation's default when None).
    """
    from cellsynth.conditioning import organism_from_labels, positional_map
    from cellsynth.simulate.annotations import structure_mask

    if kind not in ("nuclei", "membranes"):
        raise CellsynthError(f"kind must be nuclei or membranes, got {kind!r}")
    extra = {} if membrane_thickness_um is None else {"membrane_thickness_um": membrane_thickness_um}
    volumes = []
    for name, image_file, label_file in find_pairs(paths):
        raw, labels, voxel = read_pair(image_file, label_file, voxel_size)
        train, _ = split_regions(raw.shape, holdout, holdout_axis)
        image = normalize_image(raw[train], *percentiles)
        labels = labels[train]
        mask = structure_mask(labels, kind, voxel, **extra).astype(np.uint8)
        positional = positional_map(organism_from_labels(labels, voxel), voxel, alpha, beta)
        volumes.append(TrainingVolume(name, image, mask, positional, voxel))
    return volumes


class PatchSampler:
    """Random training patches from volumes held in memory.

    Parameters
    ----------
    volumes
        Prepared volumes; those smaller than ``patch`` in some axis are skipped. Either
        all have images, or none (simulated annotations: only masks and maps are drawn).
    patch
        Patch size (z, y, x) in voxels.
    rng
        Source of randomness; its state is part of a training checkpoint.
    paired
        Image and mask patches from the same place (aligned pairs) or from independent
        places (unpaired training, e.g. when masks were not made from the images).
    foreground_bias
        Probability of centring a mask patch on a structure voxel instead of anywhere.
    flips
        Random flips along y and x.
    rotations
        Random 90-degree rotations in the yx plane (180 degrees only when y != x).
    """

    def __init__(self, volumes: Sequence[TrainingVolume], patch: Sequence[int], rng: np.random.Generator, *,
                 paired: bool = True, foreground_bias: float = 0.5, flips: bool = True,
                 rotations: bool = True) -> None:
        self.patch = tuple(int(p) for p in patch)
        self.volumes = [v for v in volumes if all(s >= p for s, p in zip(v.mask.shape, self.patch))]
        if not self.volumes:
            sizes = ", ".join(f"{v.name} {v.mask.shape}" for v in volumes)
            raise CellsynthError(f"--patch {' '.join(map(str, self.patch))} is larger than every training image "
                                 f"(training parts: {sizes}); choose a smaller --patch")
        self.masks_only = all(v.image is None for v in self.volumes)
        if not self.masks_only and any(v.image is None for v in self.volumes):
            raise CellsynthError("give volumes that all have an image, or none (simulated annotations)")
        self.rng, self.paired = rng, paired
        self.foreground_bias, self.flips, self.rotations = float(foreground_bias), flips, rotations
        self._structure = []
        for v in self.volumes:
            coords = np.argwhere(v.mask)
            if len(coords) > 100_000:
                coords = coords[np.random.default_rng(0).choice(len(coords), 100_000, replace=False)]
            self._structure.append(coords)

    def _corner(self, index: int, biased: bool) -> np.ndarray:
        shape = np.array(self.volumes[index].mask.shape)
        high = shape - self.patch
        coords = self._structure[index]
        if biased and len(coords):
            centre = coords[self.rng.integers(len(coords))]
            return np.clip(centre - np.array(self.patch) // 2, 0, high)
        return np.array([self.rng.integers(h + 1) for h in high])

    def _crop(self, array: np.ndarray, corner: np.ndarray) -> np.ndarray:
        return array[tuple(slice(c, c + p) for c, p in zip(corner, self.patch))]

    def _transform(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        flip = [ax for ax in (1, 2) if self.flips and self.rng.random() < 0.5]
        k = 0
        if self.rotations:
            k = int(self.rng.integers(4)) if self.patch[1] == self.patch[2] else 2 * int(self.rng.integers(2))
        out = []
        for a in arrays:
            if flip:
                a = np.flip(a, axis=flip)
            out.append(np.rot90(a, k, axes=(1, 2)))
        return out

    def sample(self, batch: int) -> dict[str, np.ndarray]:
        """Draw ``batch`` patches.

        Returns
        -------
        dict
            ``mask`` and ``positional`` (the generator's input), ``image`` and
            ``image_positional`` (the real image and its own positional map; in paired mode
            the image is aligned with the mask; not for masks-only volumes), each float32
            ``(batch, 1, Z, Y, X)``.
        """
        out: dict[str, list[np.ndarray]] = {"mask": [], "positional": [], "image": [], "image_positional": []}
        for _ in range(batch):
            i = int(self.rng.integers(len(self.volumes)))
            biased = self.rng.random() < self.foreground_bias
            corner = self._corner(i, biased)
            v = self.volumes[i]
            if self.masks_only:
                mask, pos = self._transform([self._crop(v.mask, corner), self._crop(v.positional, corner)])
                out["mask"].append(mask)
                out["positional"].append(pos)
                continue
            if self.paired:
                mask, pos, image = self._transform([self._crop(a, corner) for a in (v.mask, v.positional, v.image)])
                image_pos = pos
            else:
                mask, pos = self._transform([self._crop(v.mask, corner), self._crop(v.positional, corner)])
                j = int(self.rng.integers(len(self.volumes)))
                w = self.volumes[j]
                corner_j = self._corner(j, self.rng.random() < self.foreground_bias)
                image, image_pos = self._transform([self._crop(w.image, corner_j), self._crop(w.positional, corner_j)])
            for key, value in zip(out, (mask, pos, image, image_pos)):
                out[key].append(value)
        return {k: np.stack(v)[:, None].astype(np.float32) for k, v in out.items() if v}
