"""Training speed of the GAN on this machine: steps per second and the share spent waiting for data.

    python benchmarks/bench_training.py [--data ../shared/data/nuclei] [--repeats 5] [--threads 1 2]

For base width 16 and patch 32x64x64 (batch 1) it times full training steps (D and G
updates, ADA, identity and paired losses) in fp32 and under bf16 autocast, for generator
depth 3 (the network's default) and depth 1 (the shipped recipes), and the data
part of each step (patch sampling from volumes in memory). Side by side, as the baseline,
the data wait of a loader that reads every patch from the HDF5 file and normalizes it per
step (what a naive loader does). Medians of ``--repeats`` steps after one warm-up step.
On a GPU (if any) it also times patch 64x128x128 with bf16.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from cellsynth.gan.config import TrainConfig
from cellsynth.gan.data import find_pairs, load_volumes, normalize_image
from cellsynth.gan.train import Trainer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nuclei"


def time_steps(trainer: Trainer, repeats: int) -> tuple[float, float]:
    """Median step time and median data time (s)."""
    trainer.train_step()
    rows = [trainer.train_step() for _ in range(repeats)]
    return statistics.median(r["step_s"] for r in rows), statistics.median(r["data_s"] for r in rows)


def naive_patch_time(path: Path, patch: tuple[int, int, int], repeats: int) -> float:
    """Median time to read one random patch from HDF5 and normalize it (the naive loader)."""
    import h5py

    rng = np.random.default_rng(0)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with h5py.File(path, "r") as f:
            shape = f["raw"].shape
            c = [rng.integers(s - p + 1) for s, p in zip(shape, patch)]
            box = tuple(slice(a, a + p) for a, p in zip(c, patch))
            raw = f["raw"][box]
            f["label"][box]
            normalize_image(raw)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--depths", type=int, nargs="+", default=[3, 1], help="generator depths to time")
    args = parser.parse_args()
    volumes = load_volumes([args.data], "nuclei")
    patch = (32, 64, 64)
    print(f"GAN training step, width 16, patch {patch}, batch 1, median of {args.repeats}")
    print(f"load average: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'device':8} {'depth':>5} {'threads':>7} {'precision':>9} {'step s':>8} {'steps/s':>8} {'data s':>9} "
          f"{'data share':>10}")
    for depth in args.depths:
        for threads in args.threads:
            torch.set_num_threads(threads)
            for amp in (False, True):
                trainer = Trainer(TrainConfig(patch=patch, depth=depth), volumes, "cpu", amp)
                step, data = time_steps(trainer, args.repeats)
                print(f"{'cpu':8} {depth:>5} {threads:>7} {'bf16' if amp else 'fp32':>9} {step:8.3f} {1 / step:8.2f} "
                      f"{data:9.5f} {data / step:10.2%}")
    h5 = find_pairs([args.data])[0][1]
    naive = naive_patch_time(h5, patch, args.repeats * 4)
    print(f"baseline loader (read + normalize each patch from HDF5): {naive:.5f} s per patch")
    if torch.cuda.is_available():
        gpu_patch = (64, 128, 128)  # larger than the nuclei volume: use the lateral root membranes
        big = load_volumes([args.data.parent / "membranes" / "lateral_root_membranes_train.h5"], "membranes",
                           voxel_size=(0.25, 0.1625, 0.1625), holdout=0)
        step, data = time_steps(Trainer(TrainConfig(patch=gpu_patch, kind="membranes"), big, "cuda", True),
                                args.repeats)
        print(f"{'cuda':8} {3:>5} {'-':>7} {'bf16':>9} {step:8.3f} {1 / step:8.2f} {data:9.5f} {data / step:10.2%}"
              f"  (patch {gpu_patch}, {torch.cuda.get_device_name()})")


if __name__ == "__main__":
    main()
