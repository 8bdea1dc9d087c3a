"""Syn2Real / Real2Real / Mix: does synthetic data help a segmenter? (Fig. 13 of the paper)

    python benchmarks/syn2real.py [--steps 150] [--synthetic 4] [--seed 0]

Real data (../shared/data/membranes, PlantSeg, Wolny et al., eLife 2020, MIT):
arabidopsis_ovule_membranes.h5 and lateral_root_membranes_train.h5 (voxel size not
recorded; 0.25 µm assumed). Each is cut along y: the first 70 % trains, the rest tests.

Synthetic data: membrane samples simulated with cellsynth (box organism, cell size 5 µm,
the ovule's voxel size: 47 cells and 41 % membrane voxels per 32x128x128 sample, as in
the real ovule crop) and rendered with ``synthesize_image(model="default")``; all but
one train, the last tests.

The baseline segmenter (:mod:`cellsynth.evaluate.segmenter`, a small 3D U-Net) is
trained for a few CPU minutes on each training set and applied to each test set. Scores:
per-class IoU of the thresholded maps (0.1 / 0.4 / 0.2) with tolerances 1 / 1 / 5
voxels, and the instance average IoU of the seeded watershed (matching by Hungarian
assignment). A class absent from a test crop's truth (background: these crops lie inside
tissue) is scored n/a. Short training: the numbers compare training sets; they are far
from what a fully trained network reaches.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "membranes"
OVULE_VOXEL = (0.235, 0.15, 0.15)
ROOT_VOXEL = (0.25, 0.25, 0.25)  # not recorded in the file


def real_sets():
    from cellsynth import io

    train, test = [], []
    for name, default_voxel in (("arabidopsis_ovule_membranes.h5", OVULE_VOXEL),
                                ("lateral_root_membranes_train.h5", ROOT_VOXEL)):
        raw, _ = io.read_h5(DATA / name, "raw")
        labels, _ = io.read_h5(DATA / name, "label")
        cut = int(0.7 * raw.shape[1])
        train.append((raw[:, :cut], labels[:, :cut]))
        test.append((raw[:, cut:], labels[:, cut:]))
    return train, test


def synthetic_sets(count: int, seed: int):
    from cellsynth.simulate.pipeline import simulate_sample
    from cellsynth.synthesis import synthesize_image

    pairs = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        sample = simulate_sample("membranes", (32, 128, 128), OVULE_VOXEL, rng, organism="box", cell_size_um=5.0,
                                 progress=False)
        image = synthesize_image(sample.mask, sample.foreground, OVULE_VOXEL, model="default", kind="membranes",
                                 seed=seed + i, progress=False)
        pairs.append((np.asarray(image), sample.labels))
    return pairs[:-1], pairs[-1:]


def score(net, tests):
    from cellsynth.evaluate.segmentation import class_targets, match_instances, multiclass_scores
    from cellsynth.evaluate.segmenter import instances_from_classes, predict_classes

    rows = []
    for image, labels in tests:
        probs = predict_classes(net, image)
        truth = class_targets(labels)
        s = multiclass_scores(truth, probs)
        for name, mask in truth.items():
            if not mask.any():  # e.g. no background in a crop inside tissue: no score
                s[name] = np.nan
        s["instances"] = match_instances(labels, instances_from_classes(probs))["average_iou"]
        rows.append(s)
    return {k: float(np.nanmean([r[k] for r in rows])) if any(np.isfinite(r[k]) for r in rows) else np.nan
            for k in rows[0]}


def main() -> None:
    import torch

    from cellsynth.evaluate.segmenter import train_segmenter

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150, help="training steps per model")
    parser.add_argument("--synthetic", type=int, default=4, help="synthetic samples (all but one train)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    real_train, real_test = real_sets()
    syn_train, syn_test = synthetic_sets(args.synthetic, args.seed)
    print(f"data ready in {time.perf_counter() - t0:.0f} s: real {len(real_train)} train / {len(real_test)} test "
          f"crops, synthetic {len(syn_train)} / {len(syn_test)} samples")
    training = {"Real": real_train, "Syn": syn_train, "Mix": real_train + syn_train}
    tests = {"Real": real_test, "Syn": syn_test}
    print(f"{'setup':10s} {'background':>10s} {'membrane':>9s} {'centroid':>9s} {'instances':>9s} {'train s':>8s}")
    for train_name, pairs in training.items():
        t = time.perf_counter()
        net = train_segmenter([p[0] for p in pairs], [p[1] for p in pairs], steps=args.steps, seed=args.seed,
                              progress=False)
        seconds = time.perf_counter() - t
        for test_name, test_pairs in tests.items():
            s = score(net, test_pairs)
            cells = [f"{s[k]:.3f}" if np.isfinite(s[k]) else "n/a" for k in ("background", "membrane", "centroid",
                                                                              "instances")]
            print(f"{train_name + '2' + test_name:10s} {cells[0]:>10s} {cells[1]:>9s} {cells[2]:>9s} {cells[3]:>9s} "
                  f"{seconds:8.0f}")


if __name__ == "__main__":
    main()
