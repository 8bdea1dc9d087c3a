"""Automatic nuclei annotation against proofread labels: detection F1 and matched IoU.

    python benchmarks/bench_annotate.py [--radius 1.5 4.0] [--threshold 0.05]

Also scores annotate_membranes (cut_to_foreground off: the crops lie inside tissue) on
../shared/data/membranes/*.h5 (PlantSeg, Wolny et al., eLife 2020; MIT).

Data: ../shared/data/nuclei/arabidopsis_ovule_nuclei_1135.h5 (GoNuclear, Vijayan et al.,
Development 2024; crop from kreshuklab/plant-seg, MIT): 100^3 voxels, 54 proofread
nuclei, 43 of them cut by the crop border. Matching is one-to-one (Hungarian on IoU); a
detection counts at IoU >= 0.5.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from cellsynth.annotate import DEFAULT_NUCLEUS_RADIUS_UM

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nuclei" / "arabidopsis_ovule_nuclei_1135.h5"


def main() -> None:
    from cellsynth import io
    from cellsynth.annotate import annotate_nuclei
    from cellsynth.evaluate.segmentation import match_instances

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--radius", type=float, nargs=2, default=DEFAULT_NUCLEUS_RADIUS_UM,
                        help="nucleus radius range, µm (default: the package default)")
    parser.add_argument("--threshold", type=float, default=0.05)
    args = parser.parse_args()
    raw, voxel = io.read_h5(args.data, "raw")
    truth, _ = io.read_h5(args.data, "label")
    t = time.perf_counter()
    sample = annotate_nuclei(raw, voxel, radius_um=tuple(args.radius), threshold=args.threshold)
    seconds = time.perf_counter() - t
    sizes = np.bincount(truth.ravel())[1:]
    print(f"{args.data.name}: {raw.shape}, voxel {tuple(round(v, 3) for v in voxel)} µm, "
          f"{int((sizes > 0).sum())} true nuclei ({int(((sizes > 0) & (sizes < 300)).sum())} under 300 voxels)")
    print(f"annotate_nuclei: {sample.metadata['detections']} detections, {int(sample.labels.max())} nuclei, "
          f"{seconds:.1f} s")
    print(f"{'IoU threshold':>14s} {'TP':>4s} {'FP':>4s} {'FN':>4s} {'precision':>9s} {'recall':>7s} {'F1':>6s} "
          f"{'matched IoU':>11s} {'avg IoU':>8s}")
    for threshold in (0.3, 0.5, 0.7):
        m = match_instances(truth, sample.labels, threshold)
        print(f"{threshold:14.1f} {m['tp']:4d} {m['fp']:4d} {m['fn']:4d} {m['precision']:9.3f} {m['recall']:7.3f} "
              f"{m['f1']:6.3f} {m['matched_iou']:11.3f} {m['average_iou']:8.3f}")




def membranes() -> None:
    from cellsynth import io
    from cellsynth.annotate import annotate_membranes
    from cellsynth.evaluate.segmentation import match_instances

    print("\nannotate_membranes (defaults, cut_to_foreground=False), IoU >= 0.5:")
    for path in sorted((DATA.parents[1] / "membranes").glob("*.h5")):
        raw, voxel = io.read_h5(path, "raw")
        truth, _ = io.read_h5(path, "label")
        voxel = voxel or (0.25, 0.1625, 0.1625)  # the lateral root file records none: as configs/membranes.yaml
        seconds = []
        for _ in range(3):
            t = time.perf_counter()
            labels = annotate_membranes(raw, voxel, cut_to_foreground=False).labels
            seconds.append(time.perf_counter() - t)
        m = match_instances(truth, labels)
        print(f"  {path.name:36s} F1 {m['f1']:.3f}  matched IoU {m['matched_iou']:.3f}  "
              f"(TP {m['tp']}, FP {m['fp']}, FN {m['fn']})  {np.median(seconds):.2f} s (median of 3)")


if __name__ == "__main__":
    main()
    membranes()
