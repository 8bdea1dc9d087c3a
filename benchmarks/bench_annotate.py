"""Automatic annotation against proofread labels, on the part it may be tuned on and on the
parts it is reported on: detection F1 at IoU 0.5 and matched IoU.

    python benchmarks/bench_annotate.py [--radius 1.5 4.0] [--threshold 0.07] [--level 0.55] [--seed-depth 0.05]

Protocol (the project's held-out rule): settings may be tuned only on the first 75 % along y
of a volume ("train"); scores are reported on the last 25 % ("held-out") and on volumes that
were not tuned on at all.

- nuclei: ../shared/data/nuclei/arabidopsis_ovule_nuclei_1135.h5 (GoNuclear, Vijayan et al.,
  Development 2024; crop from kreshuklab/plant-seg, MIT), the only labelled real nuclei image:
  100^3 voxels, 54 proofread nuclei, 43 of them cut by the crop border;
- membranes: ../shared/data/membranes/*.h5 (PlantSeg, Wolny et al., eLife 2020; MIT),
  annotate_membranes with cut_to_foreground off (the crops lie inside tissue); the lateral
  root voxel size (not recorded) is the recipe's 0.25 x 0.1625 x 0.1625 µm.

Matching is one-to-one (Hungarian on IoU); a detection counts at IoU >= 0.5. "cells under
10 %" counts the true objects smaller than a tenth of the volume's median object (slivers cut
by the crop), and "F1 ceiling" is the F1 of an annotation that finds every other object
exactly and none of those.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from cellsynth.annotate import DEFAULT_NUCLEUS_LEVEL, DEFAULT_NUCLEUS_RADIUS_UM, DEFAULT_NUCLEUS_THRESHOLD

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NUCLEI = DATA / "nuclei" / "arabidopsis_ovule_nuclei_1135.h5"
ROOT_VOXEL = (0.25, 0.1625, 0.1625)


def parts(shape: tuple[int, ...]) -> dict[str, tuple[slice, ...]]:
    from cellsynth.gan.data import split_regions

    train, held = split_regions(shape, 0.25, "y")
    return {"train": train, "held-out": held, "whole": tuple(slice(None) for _ in shape)}


def report(name: str, truth: np.ndarray, annotate) -> None:
    from cellsynth.evaluate.segmentation import match_instances

    sizes = np.bincount(truth.ravel())[1:]
    median = np.median(sizes[sizes > 0])
    for part, region in parts(truth.shape).items():
        t = time.perf_counter()
        labels = annotate(region)
        elapsed = time.perf_counter() - t
        m = match_instances(truth[region], labels, 0.5)
        s = np.bincount(truth[region].ravel())[1:]
        s = s[s > 0]
        tiny = int((s < 0.1 * median).sum())
        ceiling = 2 * (len(s) - tiny) / max(2 * len(s) - tiny, 1)
        print(f"  {name:28s} {part:9s} F1 {m['f1']:.3f}  matched IoU {m['matched_iou']:.3f}  "
              f"(TP {m['tp']}, FP {m['fp']}, FN {m['fn']}; {len(s)} cells, {tiny} under 10 %, "
              f"F1 ceiling {ceiling:.3f})  {elapsed:.1f} s")


def main() -> None:
    from cellsynth import io
    from cellsynth.annotate import annotate_membranes, annotate_nuclei

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--radius", type=float, nargs=2, default=DEFAULT_NUCLEUS_RADIUS_UM,
                        help="nucleus radius range, µm (default: the package default)")
    parser.add_argument("--threshold", type=float, default=DEFAULT_NUCLEUS_THRESHOLD, help="nuclei: LoG threshold")
    parser.add_argument("--level", type=float, default=DEFAULT_NUCLEUS_LEVEL, help="nuclei: boundary level")
    parser.add_argument("--seed-depth", type=float, default=0.05, help="membranes: h-minima depth")
    parser.add_argument("--smoothing", type=float, help="membranes: smoothing in µm (default: the package's)")
    args = parser.parse_args()

    print("annotate_nuclei, IoU >= 0.5:")
    raw, voxel = io.read_h5(NUCLEI, "raw")
    truth, _ = io.read_h5(NUCLEI, "label")
    report(NUCLEI.name, truth, lambda r: annotate_nuclei(raw[r], voxel, radius_um=tuple(args.radius),
                                                         threshold=args.threshold,
                                                         level=args.level).labels)

    print("annotate_membranes (cut_to_foreground=False), IoU >= 0.5:")
    options = {"seed_depth": args.seed_depth, "cut_to_foreground": False}
    if args.smoothing is not None:
        options["smoothing_um"] = args.smoothing
    for path in sorted((DATA / "membranes").glob("*.h5")):
        raw_m, voxel_m = io.read_h5(path, "raw")
        truth_m, _ = io.read_h5(path, "label")
        voxel_m = voxel_m or ROOT_VOXEL
        report(path.name, truth_m, lambda r: annotate_membranes(raw_m[r], voxel_m, **options).labels)


if __name__ == "__main__":
    main()
