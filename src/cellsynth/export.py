"""Export a data set to the folder layouts of StarDist, Cellpose, nnU-Net v2 and PlantSeg.

Each tool expects its training data laid out its own way; :func:`export_dataset` writes a
cellsynth data set (``cellsynth dataset``) in the layout of one tool, with the data set's
train / val / test splits and its voxel size in every file:

``stardist``
    ``train/images/NAME.tif`` and ``train/masks/NAME.tif`` (likewise ``val/``, ``test/``): the
    image / instance-label TIFF pairs with equal names that StarDist's example notebooks
    read (ImageJ TIFFs with the voxel size).
``cellpose``
    ``train/NAME.tif`` and ``train/NAME_masks.tif`` (likewise ``val/``, ``test/``): the image
    and ``_masks`` pairs of ``cellpose --train --dir train --test_dir val --mask_filter
    _masks``. Cellpose trains on 2D images: with ``slices=True`` every z-plane that holds a
    label is also written as ``NAME_z012.tif`` / ``NAME_z012_masks.tif`` (2D TIFFs with the
    pixel size), and the 3D volumes are left out.
``nnunet``
    ``DatasetXXX_Name/imagesTr/NAME_0000.tif``, ``labelsTr/NAME.tif``, ``imagesTs``,
    ``labelsTs`` and ``dataset.json`` (nnU-Net v2's raw data format with its ``Tiff3DIO``
    reader, which takes the spacing from a ``NAME.json`` beside each file:
    ``{"spacing": [z, y, x]}``). Train and val samples go to ``imagesTr`` (nnU-Net makes its
    own cross-validation folds); ``splits_final.json`` gives our split as fold 0, to copy into
    ``nnUNet_preprocessed/DatasetXXX_Name/``; test samples go to ``imagesTs``. Labels are the
    semantic classes background (0) / structure (1) / boundary (2), the usual way to train
    nnU-Net for instances (``classes="boundary"``; the boundary is each nucleus's outer
    voxel layer, :func:`cellsynth.simulate.annotations.boundary_map`, or the data set's
    membrane walls), or background / structure (``classes="foreground"``).
``plantseg``
    ``train/NAME.h5`` (likewise ``val/``, ``test/``) with the datasets ``raw`` and ``label``
    (instance labels; PlantSeg's training derives the boundaries) and ``element_size_um``
    (z, y, x), the layout of PlantSeg and pytorch-3dunet.

Every export also holds ``cellsynth_export.json`` (source data set, quality level, voxel
size, the files of each split) and a ``README.md`` that says how to train on it. The export
folder is assembled under a temporary name and renamed when complete.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cellsynth import io
from cellsynth.errors import CellsynthError
from cellsynth.outputs import check_output
from cellsynth.progress import progress_bar

TOOLS = ("stardist", "cellpose", "nnunet", "plantseg")
"""The layouts :func:`export_dataset` writes."""
NNUNET_CLASSES = {
    "boundary": {"background": 0, "structure": 1, "boundary": 2},
    "foreground": {"background": 0, "structure": 1},
}
"""nnU-Net label sets: class name -> value in ``labelsTr``."""
MANIFEST = "cellsynth_export.json"


def export_dataset(dataset: str | os.PathLike, out: str | os.PathLike, to: str, *, alpha: float | None = None,
                   overwrite: bool = False, slices: bool = False, dataset_id: int = 501,
                   dataset_name: str | None = None, classes: str = "boundary",
                   progress: bool | None = None) -> Path:
    """Write a cellsynth data set in the folder layout of a segmentation tool.

    Parameters
    ----------
    dataset
        A data set folder made by ``cellsynth dataset`` (holding ``dataset.json``).
    out
        The export folder to create. For nnU-Net it is the ``nnUNet_raw`` folder that
        receives ``DatasetXXX_Name/``.
    to
        ``stardist``, ``cellpose``, ``nnunet`` or ``plantseg`` (see the module notes).
    alpha
        Quality level (µm) of the image to export, for data sets with several (default: the
        first).
    overwrite
        Replace an existing, non-empty ``out``.
    slices
        Cellpose: write the 2D z-planes that hold labels instead of the 3D volumes.
    dataset_id, dataset_name
        nnU-Net: the data set number (1-999; above 500 avoids nnU-Net's own) and name
        (default: the data set folder's name, letters and digits only).
    classes
        nnU-Net: ``boundary`` (background / structure / boundary) or ``foreground``
        (background / structure).
    progress
        Progress bar: None (default) on a terminal only, True always, False never.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    CellsynthError
        For an unknown tool or option, a missing data set, or an existing ``out`` without
        ``overwrite``.

    Examples
    --------
    >>> export_dataset("demo", "demo_stardist", "stardist")  # doctest: +SKIP
    PosixPath('demo_stardist')
    """
    from cellsynth import __version__
    from cellsynth.dataset import SPLIT_NAMES, image_name, load_dataset

    if to not in TOOLS:
        raise CellsynthError(f"unknown tool {to!r}; export to one of {', '.join(TOOLS)}")
    if classes not in NNUNET_CLASSES:
        raise CellsynthError(f"unknown nnU-Net classes {classes!r}; use {' or '.join(NNUNET_CLASSES)}")
    if not 1 <= int(dataset_id) <= 999:
        raise CellsynthError(f"the nnU-Net data set id must be 1-999 (above 500 avoids nnU-Net's own), "
                             f"got {dataset_id}")
    if slices and to != "cellpose":
        raise CellsynthError("2D slices are a Cellpose option; leave out --slices for other tools")
    check_output(out, overwrite=overwrite)
    out = Path(out)
    ds = load_dataset(dataset)
    if not len(ds):
        raise CellsynthError(f"{dataset} holds no finished sample; complete it with `cellsynth dataset --resume`")
    alpha = ds.alphas[0] if alpha is None else float(alpha)
    if alpha not in ds.alphas:
        raise CellsynthError(f"{dataset} has images for alpha {', '.join(f'{a:g}' for a in ds.alphas)}, not {alpha:g}")
    splits = {name: ds.split(name).names for name in SPLIT_NAMES}
    voxel = ds.voxel_size
    image_volume = image_name(alpha, ds.alphas)
    writer = {"stardist": _write_stardist, "cellpose": _write_cellpose, "nnunet": _write_nnunet,
              "plantseg": _write_plantseg}[to]
    options = {"slices": slices, "dataset_id": int(dataset_id), "classes": classes,
               "dataset_name": _nnunet_name(dataset_name or Path(dataset).resolve().name)}
    with io.atomic_path(out, directory=True) as tmp:
        files: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
        for split, name, volumes in _samples(ds, splits, image_volume, progress):
            for path in writer(tmp, split, name, volumes, voxel, ds.kind, options):
                files[split].append(str(path.relative_to(tmp)))
        extra = _write_nnunet_dataset_json(tmp, splits, ds.kind, options) if to == "nnunet" else {}
        io.write_json(tmp / MANIFEST, {
            "cellsynth_version": __version__, "tool": to, "source": str(Path(dataset).resolve()), "kind": ds.kind, "alpha": alpha,
            "voxel_size_um": list(voxel), "samples": splits, "files": files, **extra}, atomic=False)
        (tmp / "README.md").write_text(_readme(to, ds.kind, voxel, splits, options, Path(dataset).name))
    return out


def _samples(ds: Any, splits: dict[str, list[str]], image_volume: str,
             progress: bool | None) -> Iterator[tuple[str, str, dict[str, np.ndarray]]]:
    """(split, name, {image, labels, mask}) of every sample, split by split; the image as stored
    (uint16), so the export holds the same bytes."""
    index = {name: i for i, name in enumerate(ds.names)}
    order = [(split, name) for split, names in splits.items() for name in names]
    for split, name in progress_bar(order, progress=progress, desc="exporting", unit="sample"):
        i = index[name]
        path = ds.path(i, image_volume)
        if not path.is_file():
            raise CellsynthError(f"{name} has no image {path.name}; synthesise the data set's images first")
        yield split, name, {volume: io.read_volume(ds.path(i, volume) if volume != "image" else path)[0]
                            for volume in ("image", "labels", "mask")}


# --------------------------------------------------------------------------- the layouts


def _write_stardist(root: Path, split: str, name: str, volumes: dict[str, np.ndarray], voxel: io.VoxelSize,
                    kind: str, options: dict) -> list[Path]:
    paths = [root / split / "images" / f"{name}.tif", root / split / "masks" / f"{name}.tif"]
    for path, volume in zip(paths, (volumes["image"], volumes["labels"])):
        path.parent.mkdir(parents=True, exist_ok=True)
        io.write_tiff(path, volume, voxel, atomic=False)
    return paths


def _write_cellpose(root: Path, split: str, name: str, volumes: dict[str, np.ndarray], voxel: io.VoxelSize,
                    kind: str, options: dict) -> list[Path]:
    folder = root / split
    folder.mkdir(parents=True, exist_ok=True)
    image, labels = volumes["image"], volumes["labels"]
    if not options["slices"]:
        io.write_tiff(folder / f"{name}.tif", image, voxel, atomic=False)
        io.write_tiff(folder / f"{name}_masks.tif", labels, voxel, atomic=False)
        return [folder / f"{name}.tif", folder / f"{name}_masks.tif"]
    paths = []
    digits = len(str(labels.shape[0] - 1))
    for z in np.flatnonzero(labels.reshape(labels.shape[0], -1).any(axis=1)):
        stem = f"{name}_z{z:0{digits}d}"
        for suffix, plane in (("", image[z]), ("_masks", labels[z])):
            paths.append(folder / f"{stem}{suffix}.tif")
            _write_plane(paths[-1], plane, voxel[1:])
    return paths


def _write_plane(path: Path, plane: np.ndarray, pixel_size: tuple[float, float]) -> None:
    """A 2D TIFF with its pixel size (µm), as ImageJ reads it."""
    import tifffile

    vy, vx = pixel_size
    tifffile.imwrite(path, plane, imagej=True, resolution=(1.0 / vx, 1.0 / vy), metadata={"unit": "um", "axes": "YX"})


def nnunet_labels(labels: np.ndarray, kind: str, mask: np.ndarray | None = None, *,
                  classes: str = "boundary") -> np.ndarray:
    """nnU-Net semantic classes from instance labels.

    Parameters
    ----------
    labels
        Instance labels (Z, Y, X), 0 = background.
    kind
        ``nuclei`` (the boundary is each nucleus's outer voxel layer) or ``membranes`` (the
        boundary is ``mask``, the cell walls of the sample).
    mask
        Membranes: the sample's membrane mask.
    classes
        ``boundary``: 0 background, 1 structure, 2 boundary; ``foreground``: 0 background,
        1 structure (every labelled voxel).

    Returns
    -------
    numpy.ndarray
        uint8 class map.

    Examples
    --------
    >>> nnunet_labels(np.array([[[0, 1, 1, 1, 1, 2, 2, 2]]]), "nuclei")[0, 0]
    array([0, 2, 1, 1, 2, 2, 1, 1], dtype=uint8)
    """
    from cellsynth.simulate.annotations import boundary_map

    labels = np.asarray(labels)
    out = (labels != 0).astype(np.uint8)
    if classes == "foreground":
        return out
    if classes != "boundary":
        raise CellsynthError(f"unknown nnU-Net classes {classes!r}; use {' or '.join(NNUNET_CLASSES)}")
    if kind == "membranes":
        if mask is None:
            raise CellsynthError("membranes need the membrane mask for the boundary class")
        boundary = np.asarray(mask) != 0
    else:
        boundary = boundary_map(labels) != 0
    out[boundary & (labels != 0)] = 2
    return out


def _write_nnunet(root: Path, split: str, name: str, volumes: dict[str, np.ndarray], voxel: io.VoxelSize,
                  kind: str, options: dict) -> list[Path]:
    base = root / _nnunet_folder(options)
    suffix = "Ts" if split == "test" else "Tr"
    classes = nnunet_labels(volumes["labels"], kind, volumes["mask"], classes=options["classes"])
    paths = []
    for folder, stem, volume in ((f"images{suffix}", f"{name}_0000", volumes["image"]),
                                 (f"labels{suffix}", name, classes)):
        (base / folder).mkdir(parents=True, exist_ok=True)
        paths.append(base / folder / f"{stem}.tif")
        io.write_tiff(paths[-1], volume, voxel, atomic=False)
        # Tiff3DIO reads the spacing from NAME.json beside the file (no channel suffix)
        paths.append(base / folder / f"{name}.json")
        io.write_json(paths[-1], {"spacing": list(voxel)}, atomic=False)
    return paths


def _write_nnunet_dataset_json(root: Path, splits: dict[str, list[str]], kind: str, options: dict) -> dict:
    base = root / _nnunet_folder(options)
    training = splits["train"] + splits["val"]
    if not training:
        raise CellsynthError("nnU-Net needs training samples; this data set has only test samples")
    io.write_json(base / "dataset.json", {
        "channel_names": {"0": f"{kind} fluorescence"},
        "labels": NNUNET_CLASSES[options["classes"]],
        "numTraining": len(training),
        "file_ending": ".tif",
        "overwrite_image_reader_writer": "Tiff3DIO",
        "name": options["dataset_name"],
        "description": f"cellsynth synthetic {kind} (simulated masks, rendered images)",
    }, atomic=False)
    if splits["val"]:
        io.write_json(base / "splits_final.json", [{"train": splits["train"], "val": splits["val"]}], atomic=False)
    return {"nnunet_dataset": _nnunet_folder(options)}


def _write_plantseg(root: Path, split: str, name: str, volumes: dict[str, np.ndarray], voxel: io.VoxelSize,
                    kind: str, options: dict) -> list[Path]:
    path = root / split / f"{name}.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    io.write_h5(path, {"raw": volumes["image"], "label": volumes["labels"]}, voxel, atomic=False)
    return [path]


def _nnunet_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9]", "", name)
    return cleaned or "cellsynth"


def _nnunet_folder(options: dict) -> str:
    return f"Dataset{options['dataset_id']:03d}_{options['dataset_name']}"


# --------------------------------------------------------------------------- README


def _readme(to: str, kind: str, voxel: io.VoxelSize, splits: dict[str, list[str]], options: dict,
            source: str) -> str:
    counts = ", ".join(f"{len(v)} {k}" for k, v in splits.items())
    vz, vy, vx = voxel
    head = (f"# cellsynth data set `{source}` for {to}\n\n{kind}, {counts} samples, voxel size "
            f"{vz:g} x {vy:g} x {vx:g} µm (z, y, x), recorded in every file. Made by `cellsynth export`; "
            f"`{MANIFEST}` lists the files of each split.\n\n")
    body = {
        "stardist": "StarDist 3D: read `train/images/*.tif` and `train/masks/*.tif` (same names) with tifffile, "
                    "validate on `val/`, test on `test/`. The voxel size gives StarDist's anisotropy "
                    f"(z / x = {vz / vx:.2f}).\n",
        "cellpose": ("Cellpose: `cellpose --train --dir train --test_dir val --mask_filter _masks`. "
                     + ("2D z-planes with labels: `NAME_zNNN.tif` and `NAME_zNNN_masks.tif`.\n" if options["slices"]
                        else "3D volumes; Cellpose trains on 2D planes: export with `--slices` to get them.\n")),
        "nnunet": (f"nnU-Net v2: set `nnUNet_raw` to this folder, then `nnUNetv2_plan_and_preprocess -d "
                   f"{options['dataset_id']} --verify_dataset_integrity`. Images and labels are TIFFs read by "
                   "Tiff3DIO, with the spacing (z, y, x) in the `NAME.json` beside them. Labels: "
                   + ", ".join(f"{v} {k}" for k, v in NNUNET_CLASSES[options["classes"]].items())
                   + ". To train on cellsynth's train split and validate on its val split (fold 0), copy "
                   "`splits_final.json` to `nnUNet_preprocessed/" + _nnunet_folder(options) + "/`. Test samples are "
                   "in `imagesTs` / `labelsTs`.\n"),
        "plantseg": "PlantSeg / pytorch-3dunet: list `train/*.h5` as training and `val/*.h5` as validation "
                    "file paths; each holds `raw` (uint16) and `label` (instance labels; the boundary "
                    "targets are derived from them in training), with `element_size_um` (z, y, x).\n",
    }[to]
    return head + body
