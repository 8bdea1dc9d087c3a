"""Tissue realism of the presets against the real labels they mimic (issue 16's acceptance).

For every preset that mimics a volume of ``../shared/data``, simulate a few samples with the
preset as shipped and with the parameters the presets had before they were fitted (the Eq. 3
or hand-set values, kept below as ``BEFORE``), measure them in crops of each report volume's
size (:func:`cellsynth.evaluate.tissue.compare_tissue`), and print real, before and now side
by side with the relative differences and the acceptance limits. The report volumes are the
ones the fits did not read:

- ovule membranes: fitted on ``masks_only/plant_cells_dense_labels_151x326x566.h5`` (voxel
  size assumed 0.15 µm isotropic); reported on ``membranes/arabidopsis_ovule_membranes.h5``,
  whole and its held-out last 25 % along y;
- lateral root membranes: fitted on the first 75 % along y of
  ``membranes/lateral_root_membranes_train.h5``; reported on the last 25 %;
- ovule nuclei: fitted on the first 75 % along y of the gold crops 1135 and 1137; reported
  on the gold crops 1139 and 1170 (each and pooled);
- Platynereis nuclei: fitted on the first 75 % along x of the labels; reported on the rest
  (voxel size unknown: 1 assumed).

Membranes are simulated in place: each sample is the real file's volume grown by
:data:`MARGIN_UM` on every side (the preset's voxel size; the gradient of a ``size_gradient``
has its origin at the centre of both), and each report region is measured in its own place in
the sample, one crop per sample. A simulated volume's faces cut no cell (every cell's centre
lies inside) and packed tissue next to them is coarser, so crops touching them hold far fewer
labels than a real crop of a larger tissue (about 50 against 80 for the ovule preset); the
margin keeps the measured part clear of them. Nuclei are simulated and measured the same way,
with the preset's ``count`` (nuclei per volume of the preset's shape) scaled to the grown
volume, so that the density stays the preset's: a real crop also holds the nuclei its faces
cut, a simulated volume none.

With ``--montage DIR`` it also writes, per family, a PNG of real and simulated label slices
at one physical scale (``docs/tissue/*.png`` were made so).

Usage::

    python scripts/tissue_report.py [--samples 3] [--montage docs/tissue] [--presets NAME...] [DATA_DIR]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from cellsynth import dataset, io
from cellsynth.evaluate.tissue import compare_tissue
from cellsynth.simulate.pipeline import simulate_sample

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

BEFORE = {
    "arabidopsis_ovule_membranes": {"organism": "box", "cell_size": 5.47, "membrane_thickness": 0.45},
    "lateral_root_membranes": {"organism": "box", "cell_size": 6.78, "membrane_thickness": 0.5},
    "platynereis_nuclei": {"organism": "box", "placement": "uniform", "count": 31, "radius": 7.994,
                           "radius_std": 3.147, "smoothness": 5.0, "sh_order": 20, "elongation": 1.41,
                           "orientation": [1.0, 0.0, 0.0]},
    "arabidopsis_ovule_nuclei": {"organism": "box", "count": 93, "cell_size": 6.76, "radius": 2.105,
                                 "radius_std": 0.204, "smoothness": 5.0, "sh_order": 20, "elongation": 1.32,
                                 "orientation": [1.0, 0.0, 0.0]},
}
"""The presets' simulation parameters before the fit (main at 19a4a28)."""

# statistic: acceptance limit on |relative difference| (issue 16)
LIMITS = {
    "membranes": {"cells": 0.15, "elongation_median_all": 0.20, "volume_cv_all": 0.25},
    "nuclei": {"radius_mean_um": 0.10, "sphericity_median": 0.10, "nn_distance_median_um": 0.10},
}
SHOWN = {
    "membranes": ("cells", "elongation_median_all", "volume_cv_all", "flatness_median_all", "chord_z_um",
                  "chord_y_um", "chord_x_um", "neighbour_alignment_all", "nn_distance_median_um"),
    "nuclei": ("cells", "radius_mean_um", "radius_std_um", "sphericity_median", "elongation_median",
               "nn_distance_median_um", "cells_per_1000um3"),
}

REPORTS = {
    "arabidopsis_ovule_membranes": [
        ("ovule crop, whole", [("membranes/arabidopsis_ovule_membranes.h5", np.s_[:, :, :])]),
        ("ovule crop, held-out 25 % y", [("membranes/arabidopsis_ovule_membranes.h5", np.s_[:, 96:, :])]),
    ],
    "lateral_root_membranes": [
        ("lateral root, held-out 25 % y", [("membranes/lateral_root_membranes_train.h5", np.s_[:, 150:, :])]),
    ],
    "arabidopsis_ovule_nuclei": [
        ("gold 1139", [("masks_only/arabidopsis_ovule_nuclei_gold_labels_1139.h5", np.s_[:, :, :])]),
        ("gold 1170", [("masks_only/arabidopsis_ovule_nuclei_gold_labels_1170.h5", np.s_[:, :, :])]),
        ("gold 1139 + 1170", [("masks_only/arabidopsis_ovule_nuclei_gold_labels_1139.h5", np.s_[:, :, :]),
                              ("masks_only/arabidopsis_ovule_nuclei_gold_labels_1170.h5", np.s_[:, :, :])]),
    ],
    "platynereis_nuclei": [
        ("Platynereis, last 25 % x", [("masks_only/platynereis_nuclei_labels_256x256x103.tif", np.s_[:, :, 192:])]),
    ],
}


MARGIN_UM = 8.0
"""Membranes: the simulated volume extends this far beyond the real one on every side (µm).
Measured on the presets, the count of labels in a crop stops rising once the crop is about
4 µm (ovule, cells of 7 µm) to 8 µm (lateral root, cells of 13-15 µm) inside the volume."""


ASSUMED_VOXEL = {"lateral_root_membranes_train.h5": (0.25, 0.1625, 0.1625),
                 "platynereis_nuclei_labels_256x256x103.tif": (1.0, 1.0, 1.0)}
"""Voxel sizes of the files that record none (as the presets assume)."""


MONTAGES = ("arabidopsis_ovule_membranes", "lateral_root_membranes", "arabidopsis_ovule_nuclei")
"""Presets whose slices show something (the Platynereis nuclei are too sparse for one slice)."""


def read(data: Path, name: str, region: tuple[slice, ...]) -> tuple[np.ndarray, tuple[float, float, float]]:
    labels, voxel = io.read_volume(data / name, "label")
    return np.ascontiguousarray(np.asarray(labels)[region]), tuple(voxel or ASSUMED_VOXEL[Path(name).name])


def simulate(preset: dict, parameters: dict, seeds: range,
             shape: tuple[int, ...] | None = None) -> list[tuple[np.ndarray, tuple[float, ...]]]:
    voxel = tuple(preset["voxel_size"])
    out = []
    for seed in seeds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            sample = simulate_sample(preset["kind"], shape or preset["shape"], voxel, np.random.default_rng(seed),
                                     progress=False, **dataset.simulate_arguments(parameters))
        out.append((sample.labels, voxel))
    return out


def without_margin(parameters: dict) -> dict:
    """A preset's simulation parameters without its ``margin``: this script grows the volume
    itself (:data:`MARGIN_UM`), as the presets were fitted, and measures in place."""
    return {k: v for k, v in parameters.items() if k != "margin"}


def in_place(samples: list[tuple[np.ndarray, tuple[float, ...]]], margin: np.ndarray, real_shape: tuple[int, ...],
             region: tuple[slice, ...]) -> list[tuple[np.ndarray, tuple[float, ...]]]:
    """The part of each grown sample where ``region`` of the real volume lies."""
    boxes = tuple(slice(m + (r.indices(n)[0]), m + r.indices(n)[1]) for m, r, n in zip(margin, region, real_shape))
    return [(np.ascontiguousarray(labels[boxes]), voxel) for labels, voxel in samples]


def main(data: Path, samples: int, montage: Path | None, presets: list[str] | None = None) -> None:
    for name, reports in REPORTS.items():
        if presets and name not in presets:
            continue
        preset = dataset.load_preset(name)
        kind = preset["kind"]
        seeds = range(1000, 1000 + samples)  # not the fit's seeds
        # in place, in the real file's volume grown by the margin (nuclei: the same density)
        real_shape = io.read_volume(data / reports[0][1][0][0], "label")[0].shape
        margin = np.round(MARGIN_UM / np.asarray(preset["voxel_size"])).astype(int)
        grown = tuple(int(n + 2 * m) for n, m in zip(real_shape, margin))
        scale = float(np.prod(grown)) / float(np.prod(preset["shape"]))
        now, before = (simulate(preset, {**p, "count": round(p["count"] * scale)} if "count" in p else p, seeds, grown)
                       for p in (without_margin(preset["simulate"]), BEFORE[name]))
        print(f"\n=== {name} ({samples} simulated samples of {'x'.join(map(str, grown))} each, "
              f"measured in place {MARGIN_UM:g} µm inside)")
        for title, files in reports:
            real = [read(data, f, region) for f, region in files]
            sphericity = kind == "nuclei"
            sim_now, sim_before = (in_place(s, margin, real_shape, files[0][1]) for s in (now, before))
            a = compare_tissue(real, sim_now, kind, sphericity=sphericity)
            b = compare_tissue(real, sim_before, kind, sphericity=sphericity)
            crop = " x ".join(f"{c:.1f}" for c in a.crop_um)
            print(f"--- {title}: crops of {crop} µm (z y x); {a.volumes['simulated']} simulated crops")
            print(f"{'statistic':26s}{'real':>9s}{'before':>9s}{'diff':>9s}{'now':>9s}{'(sd)':>8s}{'diff':>9s}"
                  f"{'limit':>8s}  pass")
            for key in SHOWN[kind]:
                limit = LIMITS[kind].get(key)
                d_now, d_before = a.relative_difference[key], b.relative_difference[key]
                verdict = "" if limit is None else ("yes" if abs(d_now) <= limit else "NO")
                print(f"{key:26s}{a.real[key]:9.3f}{b.simulated[key]:9.3f}{100 * d_before:+8.1f}%"
                      f"{a.simulated[key]:9.3f}{a.simulated_sd[key]:8.3f}{100 * d_now:+8.1f}%"
                      f"{'' if limit is None else f'{100 * limit:.0f} %':>8s}  {verdict}")
        if montage is not None and name in MONTAGES:
            from cellsynth.evaluate.plots import plot_label_slices

            montage.mkdir(parents=True, exist_ok=True)
            files = reports[0][1]
            real_labels, real_voxel = read(data, files[0][0], files[0][1])
            now, before = (in_place(s, margin, real_shape, files[0][1]) for s in (now, before))
            volumes = {"real": real_labels, "simulated (preset now)": now[0][0], "before the fit": before[0][0]}
            voxels = {"real": real_voxel, "simulated (preset now)": now[0][1], "before the fit": before[0][1]}
            path = montage / f"{name}.png"
            plot_label_slices(volumes, voxels, path)
            print(f"wrote {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--samples", type=int, default=3, help="simulated samples per preset (default 3)")
    parser.add_argument("--montage", type=Path, metavar="DIR", help="write real vs simulated label slices here")
    parser.add_argument("--presets", nargs="+", choices=list(REPORTS), help="only these presets (default all)")
    args = parser.parse_args()
    main(args.data, args.samples, args.montage, args.presets)
