"""Measure voxel sizes and cell sizes of the real labelled volumes, for the dataset presets.

The presets in ``src/cellsynth/presets/`` that mimic a real volume family take their voxel
size and cell sizes from here (the values are copied into the preset files with a comment).
Cells touching the volume border are cut off, so sizes are measured on the others only.

With ``--check`` each preset of a real family is also simulated (3 seeds) and measured the
same way, side by side with the real volume: this is how the presets' ``cell_size`` (the
spacing of cell centres, which the simulation needs) was calibrated to the measured sizes.

Usage::

    python scripts/measure_presets.py [--check] [DATA_DIR]     # default: ../shared/data beside the checkout
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

from cellsynth import io

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# preset: file, dataset, voxel size to assume where the file records none
VOLUMES = {
    "arabidopsis_ovule_nuclei": ("nuclei/arabidopsis_ovule_nuclei_1135.h5", "label", None),
    # PlantSeg's lateral root (LRP) light-sheet stacks are published at 0.25 x 0.1625 x 0.1625 µm; with it
    # the cells' chords are nearly equal along the three axes (with 1 x 1 x 1 they are 27 : 44 : 56 voxels)
    "lateral_root_membranes": ("membranes/lateral_root_membranes_train.h5", "label", (0.25, 0.1625, 0.1625)),
    "arabidopsis_ovule_membranes": ("membranes/arabidopsis_ovule_membranes.h5", "label", None),
    "platynereis_nuclei": ("masks_only/platynereis_nuclei_labels_256x256x103.tif", None, (1.0, 1.0, 1.0)),
}


def measure(labels: np.ndarray, voxel_size: tuple[float, float, float]) -> dict[str, float]:
    """Cell count and sizes (µm) of a label volume.

    Two size estimates are given. ``interior_diameter_um``: the equivalent-sphere diameter
    of the cells that do not touch the volume border (cut cells would bias it low); None
    where every cell touches the border, as in small crops of dense tissue.
    ``chord_diameter_um``: a stereological estimate that cut cells do not bias, for dense
    tissue: with P_L label changes per µm along the axes, the mean chord is 1/P_L and a
    sphere of diameter d has mean chord 2d/3, so d = 1.5 / P_L (given only where cells fill
    over 90% of the volume).

    Parameters
    ----------
    labels
        Instance labels (Z, Y, X), 0 = background.
    voxel_size
        Voxel size in µm (z, y, x).
    """
    labels = np.asarray(labels).astype(np.int64)
    ids = np.unique(labels)
    ids = ids[ids > 0]
    faces = np.concatenate([np.moveaxis(labels, axis, 0)[end].ravel() for axis in range(3) for end in (0, -1)])
    interior = np.setdiff1d(ids, faces)
    voxel_volume = float(np.prod(voxel_size))
    stats: dict[str, object] = {
        "cells": int(ids.size),
        "interior_cells": int(interior.size),
        "foreground_fraction": round(float((labels > 0).mean()), 3),
    }
    if interior.size:
        counts = ndimage.sum_labels(np.ones_like(labels), labels, interior)
        diameters = (6.0 * counts * voxel_volume / np.pi) ** (1.0 / 3.0)
        boxes = ndimage.find_objects(labels)
        extents = np.array([[(s.stop - s.start) * v for s, v in zip(boxes[i - 1], voxel_size)] for i in interior])
        stats.update({
            "interior_diameter_um_mean": round(float(diameters.mean()), 3),
            "interior_diameter_um_std": round(float(diameters.std()), 3),
            "interior_extent_um_zyx": [round(float(e), 2) for e in extents.mean(axis=0)],
            "interior_extent_vox_zyx": [round(float(e / v), 1) for e, v in zip(extents.mean(axis=0), voxel_size)],
            # cut cells make a plain count per volume too high: use the labelled fraction instead
            "cells_per_1000_um3": float(f"{stats['foreground_fraction'] / (counts.mean() * voxel_volume) * 1000:.4g}"),
        })
    changes = sum(np.count_nonzero(np.diff(labels, axis=a) != 0) for a in range(3))
    length_um = sum(labels.size * v for v in voxel_size)
    if stats["foreground_fraction"] > 0.9:  # the chord estimate holds for space-filling cells only
        stats["chord_diameter_um"] = round(1.5 * length_um / changes, 3)
        # per axis: shows anisotropic cells (or a wrong voxel size)
        stats["chord_diameter_um_zyx"] = [
            round(float(1.5 * labels.size * v / np.count_nonzero(np.diff(labels, axis=a))), 2)
            for a, v in enumerate(voxel_size)]
    return stats


KEYS = ("cells", "interior_diameter_um_mean", "interior_diameter_um_std", "interior_extent_um_zyx",
        "cells_per_1000_um3", "foreground_fraction", "chord_diameter_um", "chord_diameter_um_zyx")


def simulated_stats(preset: str, seeds: int = 3) -> dict[str, object]:
    """Mean statistics of ``seeds`` samples simulated with a preset (its shape and voxel size)."""
    from cellsynth import dataset
    from cellsynth.simulate.pipeline import simulate_sample

    params = dataset.load_preset(preset)
    runs = []
    for seed in range(seeds):
        sample = simulate_sample(params["kind"], params["shape"], tuple(params["voxel_size"]),
                                 np.random.default_rng(seed), progress=False,
                                 **dataset.simulate_arguments(params["simulate"]))
        runs.append(measure(sample.labels, tuple(params["voxel_size"])))
    return {k: np.round(np.mean([r[k] for r in runs], axis=0), 3).tolist() for k in KEYS if k in runs[0]}


def main(data: Path, check: bool = False) -> None:
    for name, (fname, dataset, assumed) in VOLUMES.items():
        path = data / fname
        labels, voxel = io.read_volume(path, dataset or "raw")
        note = "recorded"
        if voxel is None:
            voxel, note = assumed, "ASSUMED (file records none)"
        stats = measure(labels, voxel)
        print(f"{name}: {fname}")
        print(f"  shape {labels.shape}, voxel size {tuple(round(v, 4) for v in voxel)} µm ({note})")
        simulated = simulated_stats(name) if check else {}
        for key, value in stats.items():
            print(f"  {key}: {value}" + (f"    simulated: {simulated[key]}" if key in simulated else ""))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--check"]
    main(Path(args[0]) if args else DATA, check="--check" in sys.argv[1:])
