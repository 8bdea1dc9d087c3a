"""Syn2Real: do segmenters trained on cellsynth data work on real images? (Fig. 13 of the paper)

    python benchmarks/syn2real.py --out DIR                     # every part, every arm, 3 seeds
    python benchmarks/syn2real.py --out DIR --part nuclei --seeds 0 1 2 --nuclei-steps 400
    python benchmarks/syn2real.py --out DIR --smoke             # tiny version (CI)

Re-running the same command skips the (part, arm, seed) results already in DIR/results.jsonl
and rewrites DIR/table.md from all of them; delete DIR to start over.

Real data (../shared/data; the LAST 25 % ALONG Y of every labelled volume is held out, as
everywhere in the project: no model, threshold or setting is fitted there):

- nuclei: ``nuclei/arabidopsis_ovule_nuclei_1135.h5`` (GoNuclear, Vijayan et al., Development
  2024; crop from kreshuklab/plant-seg, MIT), the only labelled real nuclei image we have:
  the first 75 % along y (100 x 75 x 100 voxels) is the real training data, the last 25 %
  (100 x 25 x 100) the test;
- membranes: ``membranes/arabidopsis_ovule_membranes.h5`` and
  ``membranes/lateral_root_membranes_train.h5`` (PlantSeg, Wolny et al., eLife 2020, MIT),
  split the same way; the lateral root voxel size (not recorded) is the recipe's
  0.25 x 0.1625 x 0.1625 µm.

Synthetic data: ``cellsynth dataset`` with the preset that mimics each volume
(arabidopsis_ovule_nuclei, arabidopsis_ovule_membranes, lateral_root_membranes), once per
synthesis model, then ``cellsynth export`` to the tool's layout (StarDist TIFF pairs for
nuclei, PlantSeg HDF5 for membranes), which the training reads back.

Arms (same training budget: steps, batch, patch and network for each):

- ``Syn:<model>``: only synthetic data, one arm per synthesis model (``--models``; by default
  ``default``, ``physics`` and the shipped generator of the kind; ``default`` is trained once
  under the model it stands for, which the table names);
- ``Real``: the real training part;
- ``Mix:<model>``: real training part and synthetic data of the ``default`` model, half of
  the training patches from each.

Segmenters:

- nuclei: StarDist 3D (``pip install -e ".[bench]"``), trained from scratch. Volumes are
  percentile-normalised and block-averaged 2x in y and x (0.28 x 0.25 x 0.25 µm voxels,
  nuclei about 15 x 17 x 17 voxels) so that a CPU can train it; predictions are scaled back
  to the original grid to be scored. Probability and NMS thresholds are chosen by StarDist's
  ``optimize_thresholds`` on the arm's own validation data (a synthetic validation sample;
  for Real the real training part; for Mix both). Scores on the held-out real part: F1 at
  IoU 0.5, AP at IoU 0.5 in StarDist's sense (TP / (TP + FP + FN)), mean matched IoU.
- membranes: the package's boundary U-Net (:mod:`cellsynth.evaluate.segmenter`: background,
  membrane and centroid maps, seeded watershed), PlantSeg's recipe of a boundary network
  plus watershed. Scores on the held-out real crops: the paper's per-class IoU (maps
  thresholded at 0.1 / 0.4 / 0.2, tolerances 1 / 1 / 5 voxels; a class absent from the
  truth is n/a) and instance F1 at IoU 0.5 with the mean matched IoU.

The table gives mean and standard deviation over the seeds (training seed: initial weights
and patch sampling; the data are the same for every seed) and, for nuclei, Syn2Real F1 as a
fraction of Real2Real F1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NUCLEI = ("nuclei/arabidopsis_ovule_nuclei_1135.h5", "arabidopsis_ovule_nuclei", None)
MEMBRANES = {
    "ovule": ("membranes/arabidopsis_ovule_membranes.h5", "arabidopsis_ovule_membranes", None),
    "lateral_root": ("membranes/lateral_root_membranes_train.h5", "lateral_root_membranes", (0.25, 0.1625, 0.1625)),
}
HOLDOUT = 0.25
NUCLEI_DOWNSAMPLE = (1, 2, 2)
SMOKE_SHAPES = {"nuclei": [24, 48, 48], "membranes": [24, 64, 64]}


# --------------------------------------------------------------------------- data


def real_volume(relative: str, voxel_fallback: tuple[float, float, float] | None) -> dict[str, Any]:
    """The training part and the held-out part of a labelled real volume."""
    from cellsynth import io
    from cellsynth.gan.data import split_regions

    raw, voxel = io.read_h5(DATA / relative, "raw")
    labels, _ = io.read_h5(DATA / relative, "label")
    voxel = voxel or voxel_fallback
    train, held = split_regions(raw.shape, HOLDOUT, "y")
    return {"voxel": tuple(voxel), "train": (raw[train], labels[train]), "test": (raw[held], labels[held])}


def synthetic_export(out: Path, preset: str, model: str, count: int, tool: str, smoke: bool) -> tuple[Path, str]:
    """Make ``count`` training samples and one validation sample of ``preset`` rendered by
    ``model`` and export them to ``tool``'s layout; returns the export and the model used."""
    from cellsynth import dataset
    from cellsynth.export import export_dataset

    params = dataset.load_preset(preset)
    params["synthesize"]["model"] = model
    if smoke:
        params["shape"] = SMOKE_SHAPES[params["kind"]]
        params["simulate"].pop("count", None)
    # the folder names the parameters, so a changed preset makes a new data set instead of failing
    digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
    root = out / "data" / f"{preset}-{model}-{digest}"
    dataset.generate_dataset(root, params, count + 1, seed=0, split_fractions=(count / (count + 1),
                                                                                1 / (count + 1), 0.0),
                             workers=1, progress=False)
    used = dataset.read_manifest(root)["parameters"]["synthesize"]["model"]
    export = root.with_name(f"{root.name}-{tool}")
    if not export.is_dir():
        export_dataset(root, export, tool, progress=False)
    return export, used


def read_stardist(export: Path, split: str) -> list[tuple[np.ndarray, np.ndarray]]:
    import tifffile

    folder = export / split
    return [(tifffile.imread(p), tifffile.imread(folder / "masks" / p.name))
            for p in sorted((folder / "images").glob("*.tif"))]


def read_plantseg(export: Path, split: str) -> list[tuple[np.ndarray, np.ndarray]]:
    import h5py

    pairs = []
    for path in sorted((export / split).glob("*.h5")):
        with h5py.File(path, "r") as f:
            pairs.append((f["raw"][()], f["label"][()]))
    return pairs


def balanced(real: list, synthetic: list) -> list:
    """Real and synthetic volumes listed so that each half of the draws comes from each."""
    return real * max(1, round(len(synthetic) / max(len(real), 1))) + synthetic


# --------------------------------------------------------------------------- nuclei: StarDist 3D


def _downsample(image: np.ndarray, labels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    from skimage.transform import downscale_local_mean

    from cellsynth.intensity import normalize_percentiles

    crop = tuple(slice(0, s - s % f) for s, f in zip(image.shape, NUCLEI_DOWNSAMPLE))
    small = downscale_local_mean(normalize_percentiles(image[crop], 1.0, 99.8), NUCLEI_DOWNSAMPLE).astype(np.float32)
    if labels is None:
        return small, None
    return small, np.ascontiguousarray(labels[crop][tuple(slice(f // 2, None, f) for f in NUCLEI_DOWNSAMPLE)])


def _upsample(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    for axis, f in enumerate(NUCLEI_DOWNSAMPLE):
        labels = np.repeat(labels, f, axis=axis)
    pad = [(0, max(0, s - n)) for s, n in zip(shape, labels.shape)]
    return np.pad(labels, pad, mode="edge")[tuple(slice(0, s) for s in shape)]


def _augment(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Random flips, 90° turns in y-x and intensity scaling (StarDist's example augmenter)."""
    rng = np.random
    for axis in (0, 1, 2):
        if rng.random() < 0.5:
            x, y = np.flip(x, axis), np.flip(y, axis)
    k = rng.randint(4)
    x, y = np.rot90(x, k, axes=(1, 2)), np.rot90(y, k, axes=(1, 2))
    x = x * rng.uniform(0.6, 2.0) + rng.uniform(-0.2, 0.2)
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def train_stardist(train: list, val: list, *, steps: int, seed: int, patch: tuple[int, int, int],
                   smoke: bool) -> Any:
    """StarDist 3D from scratch on (image, labels) pairs; thresholds optimised on ``val``."""
    import random

    import tensorflow as tf
    from stardist import Rays_GoldenSpiral, calculate_extents, fill_label_holes
    from stardist.models import Config3D, StarDist3D

    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)
    xs, ys = zip(*[_downsample(x, fill_label_holes(y)) for x, y in train])
    vx, vy = zip(*[_downsample(x, fill_label_holes(y)) for x, y in val])
    extents = calculate_extents(list(ys))
    anisotropy = tuple(float(a) for a in np.max(extents) / extents)
    config = Config3D(
        rays=Rays_GoldenSpiral(16 if smoke else 64, anisotropy=anisotropy), anisotropy=anisotropy, grid=(1, 1, 1),
        n_channel_in=1, unet_n_depth=2, unet_n_filter_base=8 if smoke else 16, train_patch_size=patch,
        train_batch_size=2, train_tensorboard=False, train_steps_per_epoch=max(1, steps // 4), train_epochs=4,
        use_gpu=False)
    model = StarDist3D(config, name="stardist", basedir=None)
    model.train(list(xs), list(ys), validation_data=(list(vx), list(vy)), augmenter=_augment,
                epochs=4, steps_per_epoch=max(1, steps // 4))
    model.optimize_thresholds(list(vx), list(vy), nms_threshs=[0.3, 0.4, 0.5], save_to_json=False)
    return model


def score_stardist(model: Any, image: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    from cellsynth.evaluate.segmentation import match_instances

    small, _ = _downsample(image, None)
    labels, _ = model.predict_instances(small, show_tile_progress=False)
    prediction = _upsample(labels, truth.shape)
    m = match_instances(truth, prediction, 0.5)
    return {"f1": m["f1"], "ap": m["tp"] / max(m["tp"] + m["fp"] + m["fn"], 1), "matched_iou": m["matched_iou"],
            "tp": m["tp"], "fp": m["fp"], "fn": m["fn"]}


# --------------------------------------------------------------------------- membranes: boundary U-Net


def train_boundary_unet(train: list, *, steps: int, seed: int, patch: tuple[int, int, int], width: int,
                        depth: int) -> Any:
    from cellsynth.evaluate.segmenter import train_segmenter

    return train_segmenter([x for x, _ in train], [y for _, y in train], steps=steps, seed=seed, patch=patch,
                           width=width, depth=depth, batch=2, lr=2e-3, progress=False)


def score_boundary_unet(net: Any, image: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    from cellsynth.evaluate.segmentation import class_targets, match_instances, multiclass_scores
    from cellsynth.evaluate.segmenter import instances_from_classes, predict_classes

    probabilities = predict_classes(net, image)
    targets = class_targets(truth)
    scores = {f"iou_{k}": (v if targets[k].any() else float("nan"))
              for k, v in multiclass_scores(targets, probabilities).items()}
    m = match_instances(truth, instances_from_classes(probabilities), 0.5)
    return {**scores, "f1": m["f1"], "matched_iou": m["matched_iou"], "tp": m["tp"], "fp": m["fp"], "fn": m["fn"]}


# --------------------------------------------------------------------------- runner


def arms(kind: str, models: list[str]) -> list[str]:
    from cellsynth.render.registry import default_model_name

    resolved = [default_model_name(kind) if m == "default" else m for m in models]
    return list(dict.fromkeys(resolved))


def run_part(part: str, args: argparse.Namespace, done: set, log: Path) -> None:
    from cellsynth.render.registry import default_model_name

    families = {"nuclei": {"nuclei": NUCLEI}, "membranes": MEMBRANES}[part]
    kind = "nuclei" if part == "nuclei" else "membranes"
    tool = "stardist" if part == "nuclei" else "plantseg"
    models = [m.replace("GENERATOR", kind) for m in args.models]
    default = default_model_name(kind)
    for family, (relative, preset, fallback) in families.items():
        real = real_volume(relative, fallback)
        if args.smoke:
            real = {**real, "train": tuple(a[:24, :40, :48] for a in real["train"]),
                    "test": tuple(a[:24, :, :48] for a in real["test"])}
        synthetic = {}
        if args.families and family not in args.families:
            continue
        for model in arms(kind, models):
            export, used = synthetic_export(args.out, preset, model, args.samples, tool, args.smoke)
            reader = read_stardist if tool == "stardist" else read_plantseg
            synthetic[used] = (reader(export, "train"), reader(export, "val"))
        training = {f"Syn:{m}": (tr, va) for m, (tr, va) in synthetic.items()}
        training["Real"] = ([real["train"]], [real["train"]])
        syn_train, syn_val = synthetic[default]
        training[f"Mix:{default}"] = (balanced([real["train"]], syn_train), [real["train"]] + syn_val)
        for seed in args.seeds:  # every arm of one seed first, so that a partial run compares arms
            for arm, (train, val) in training.items():
                key = (part, family, arm, seed)
                if key in done:
                    continue
                t0 = time.perf_counter()
                if part == "nuclei":
                    model = train_stardist(train, val, steps=args.nuclei_steps, seed=seed,
                                           patch=tuple(args.nuclei_patch), smoke=args.smoke)
                    seconds = time.perf_counter() - t0
                    scores = score_stardist(model, *real["test"])
                else:
                    model = train_boundary_unet(train, steps=args.membrane_steps, seed=seed,
                                                patch=tuple(args.membrane_patch), width=args.membrane_width,
                                                depth=args.membrane_depth)
                    seconds = time.perf_counter() - t0
                    scores = score_boundary_unet(model, *real["test"])
                row = {"part": part, "family": family, "arm": arm, "seed": seed, "train_s": seconds,
                       "default_model": default, **scores}
                with open(log, "a") as f:
                    f.write(json.dumps(row) + "\n")
                done.add(key)
                print(json.dumps(row), flush=True)


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table: mean ± sd over seeds per (part, family, arm)."""
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r["part"], r["family"], r["arm"]), []).append(r)
    lines = []
    for part, columns in (("nuclei", ("f1", "ap", "matched_iou")),
                          ("membranes", ("iou_background", "iou_membrane", "iou_centroid", "f1", "matched_iou"))):
        keys = [k for k in groups if k[0] == part]
        if not keys:
            continue
        lines += [f"\n{part} (held-out real test part; mean ± sd over seeds)\n",
                  "| family | arm | seeds | " + " | ".join(columns) + " | F1 / Real2Real F1 | train s |",
                  "|---" * (len(columns) + 5) + "|"]
        for key in keys:
            rs = groups[key]
            real = groups.get((part, key[1], "Real"))
            cells = []
            for c in columns:
                values = np.array([r[c] for r in rs], dtype=float)
                cells.append("n/a" if np.isnan(values).all() else
                             f"{np.nanmean(values):.3f} ± {np.nanstd(values):.3f}")
            ratio = (f"{np.mean([r['f1'] for r in rs]) / np.mean([r['f1'] for r in real]):.2f}"
                     if real and np.mean([r["f1"] for r in real]) > 0 else "n/a")
            default = rs[0]["default_model"]
            arm = key[2] + (" (= default)" if key[2] == f"Syn:{default}" else "")
            lines.append(f"| {key[1]} | {arm} | {len(rs)} | " + " | ".join(cells)
                         + f" | {ratio} | {np.mean([r['train_s'] for r in rs]):.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for data, results.jsonl and table.md")
    parser.add_argument("--part", nargs="+", choices=("nuclei", "membranes"), default=["nuclei", "membranes"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    parser.add_argument("--models", nargs="+", default=["default", "physics", "GENERATOR"],
                        help="synthesis models of the Syn arms (GENERATOR: the shipped generator of the kind; "
                             "or a checkpoint path)")
    parser.add_argument("--samples", type=int, default=3, help="synthetic training samples per model (plus 1 val)")
    parser.add_argument("--nuclei-steps", type=int, default=240, help="StarDist training steps per arm")
    parser.add_argument("--nuclei-patch", type=int, nargs=3, default=(32, 32, 32),
                        help="StarDist patch (z y x) on the 2x downsampled grid")
    parser.add_argument("--membrane-steps", type=int, default=250, help="boundary U-Net training steps per arm")
    parser.add_argument("--membrane-width", type=int, default=8, help="boundary U-Net base width")
    parser.add_argument("--membrane-depth", type=int, default=2, help="boundary U-Net depth")
    parser.add_argument("--membrane-patch", type=int, nargs=3, default=(16, 64, 64))
    parser.add_argument("--families", nargs="+", help="only these families (nuclei, ovule, lateral_root)")
    parser.add_argument("--threads", type=int, default=1, help="threads for torch and TensorFlow")
    parser.add_argument("--smoke", action="store_true", help="tiny data and 2 training steps (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.samples, args.nuclei_steps, args.membrane_steps, args.seeds = 1, 2, 2, args.seeds[:1]
        args.nuclei_patch, args.membrane_patch, args.membrane_width = (8, 16, 16), (8, 32, 32), 4
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import torch

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "results.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    done = {(r["part"], r["family"], r["arm"], r["seed"]) for r in rows}
    parts = list(args.part)
    if "nuclei" in parts:
        try:
            import tensorflow as tf
            import stardist  # noqa: F401
        except ImportError:
            print("nuclei: StarDist is not installed (pip install -e '.[bench]'); skipped")
            parts.remove("nuclei")
        else:
            tf.config.threading.set_intra_op_parallelism_threads(args.threads)
            tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    t0 = time.perf_counter()
    for part in parts:
        run_part(part, args, done, log)
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    header = (f"Syn2Real benchmark: `python benchmarks/syn2real.py {' '.join(argv or [])}`\n"
              f"{platform.node()}, {os.cpu_count()} cores, {args.threads} thread(s); this run "
              f"{time.perf_counter() - t0:.0f} s\n")
    (args.out / "table.md").write_text(header + table(rows))
    print(header + table(rows))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
