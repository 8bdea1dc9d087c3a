"""Tiled inference: overhead of our tiler, MONAI's sliding_window_inference, and seams.

Side by side in one run, with the same 3D U-Net (base width 16, depth 3), patch and overlap:

1. ``ours (defaults)``: cellsynth.tiling with its default overlap/crop for the U-Net;
2. ``ours (as MONAI)``: our tiler with MONAI's setting (overlap 1/4 of the patch, no crop,
   Gaussian blending);
3. ``MONAI``: ``monai.inferers.sliding_window_inference(mode="gaussian", overlap=0.25)``.

Each row gives the median wall time, the time inside the model's forward passes, and the
overhead (everything else) relative to the model time. ``--seams`` adds a sweep of overlap
and crop settings with the seam metric (cellsynth.evaluate.metrics.seam_metric) and the redundancy,
using the shipped nuclei generator where installed (else the random-weight U-Net).

    python benchmarks/bench_tiling.py                       # 128x512x512, as in the issue
    python benchmarks/bench_tiling.py --shape 64 256 256 --seams
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from cellsynth.conditioning import positional_map
from cellsynth.evaluate.metrics import seam_metric
from cellsynth.tiling import (
    make_grid,
    nominal_redundancy,
    synthesize_tiled,
    tile_grid,
)


class TimedUNet:
    """A U-Net as a synthesis model, accumulating the time spent in forward passes."""

    def __init__(self, net: torch.nn.Module, device: torch.device) -> None:
        self.net = net.to(device).eval()
        self.device = device
        m, h = net.size_multiple, net.halo
        self.size_multiple, self.halo = (m, m, m), (h, h, h)
        self.seconds = 0.0

    def __call__(self, x: torch.Tensor, origins: torch.Tensor | None = None) -> torch.Tensor:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = self.net(x)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - start
        return out


def make_inputs(shape: tuple[int, int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Blob-like nuclei mask inside an ellipsoidal organism, and its positional map."""
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    foreground = (sum(((g - s / 2) / (0.45 * s)) ** 2 for g, s in zip(grid, shape)) < 1).astype(np.uint8)
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 6, 3)
    z, y, x = grid
    mask = (foreground & ((np.sin(z / 3 + phase[0]) * np.sin(y / 6 + phase[1]) * np.sin(x / 6 + phase[2])) > 0.4))
    return mask.astype(np.uint8), positional_map(foreground, (1.0, 0.5, 0.5))


def run_ours(model: TimedUNet, mask, pos, **tiling) -> tuple[float, float]:
    model.seconds = 0.0
    start = time.perf_counter()
    synthesize_tiled(model, mask, pos, device=model.device, progress=False, **tiling)
    return time.perf_counter() - start, model.seconds


def run_monai(model: TimedUNet, mask, pos, patch, batch_size) -> tuple[float, float]:
    from monai.inferers import sliding_window_inference

    model.seconds = 0.0
    start = time.perf_counter()
    with torch.inference_mode():
        inputs = torch.from_numpy(np.stack([mask.astype(np.float32), pos]))[None].to(model.device)
        out = sliding_window_inference(inputs, patch, batch_size, model, overlap=0.25, mode="gaussian",
                                       sw_device=model.device, device=model.device)
        out.cpu().numpy()
    return time.perf_counter() - start, model.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=3, default=[128, 512, 512])
    parser.add_argument("--patch", type=int, nargs=3, default=[64, 128, 128])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seams", action="store_true", help="also sweep overlap/crop with the seam metric")
    parser.add_argument("--seam-shape", type=int, nargs=3, default=[64, 192, 192])
    parser.add_argument("--seam-patch", type=int, nargs=3, default=[32, 64, 64])
    parser.add_argument("--seam-models", nargs="+", choices=("shipped", "random"), default=["shipped", "random"])
    parser.add_argument("--skip-timing", action="store_true", help="only the seam sweep")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from cellsynth.gan.networks import UNetGenerator

    torch.manual_seed(0)
    device = torch.device(args.device)
    model = TimedUNet(UNetGenerator(in_channels=2, width=16, depth=3), device)
    shape, patch = tuple(args.shape), tuple(args.patch)
    mask, pos = make_inputs(shape)
    monai_like = {"patch": patch, "overlap": tuple(p // 4 for p in patch), "crop": 0, "blend": "gaussian"}
    grid = tile_grid(model, shape, patch)
    print(f"volume {shape}, patch {patch}, batch {args.batch_size}, device {device}, threads {args.threads}")
    print(f"our defaults: overlap {grid.overlap}, crop {grid.crop}, {grid.n_patches} patches, "
          f"{grid.redundancy:.2f}x the volume (nominal {nominal_redundancy(patch, grid.overlap, grid.crop):.2f}x; "
          f"the paper's setting: {nominal_redundancy((64, 128, 128), (15, 30, 30), (15, 30, 30)):.1f}x)")
    runs = {
        "ours (defaults)": lambda: run_ours(model, mask, pos, patch=patch, batch_size=args.batch_size),
        "ours (as MONAI)": lambda: run_ours(model, mask, pos, batch_size=args.batch_size, **monai_like),
        "MONAI gaussian": lambda: run_monai(model, mask, pos, patch, args.batch_size),
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for _ in range(0 if args.skip_timing else args.repeats):  # interleaved, so load changes hit every method alike
        for name, fn in runs.items():
            times[name].append(fn())
    print(f"\n{'method':18s} {'wall s':>8s} {'model s':>8s} {'overhead s':>10s} {'overhead %':>10s}")
    for name, values in times.items():
        if not values:
            continue
        wall = statistics.median(v[0] for v in values)
        inner = statistics.median(v[1] for v in values)
        over = statistics.median(v[0] - v[1] for v in values)
        print(f"{name:18s} {wall:8.2f} {inner:8.2f} {over:10.2f} {100 * over / inner:9.1f}%")

    if args.seams:
        for which in args.seam_models:
            seam_sweep(tuple(args.seam_shape), tuple(args.seam_patch), device, args.batch_size, which)


def seam_sweep(shape, patch, device, batch_size, which) -> None:
    """Seam metric and redundancy for several overlap/crop settings (fractions of the patch)."""
    from cellsynth.gan.networks import UNetGenerator
    from cellsynth.render.registry import load_model, shipped_model

    if which == "shipped" and shipped_model("nuclei"):
        model, name = load_model("nuclei", "nuclei", device), "shipped nuclei generator"
    else:
        torch.manual_seed(0)
        model, name = TimedUNet(UNetGenerator(in_channels=2, width=16, depth=3), device), "random-weight U-Net"
    mask, pos = make_inputs(shape, seed=1)
    settings = {
        "paper (0.23P, 0.23P)": (tuple(round(p * 15 / 64) for p in patch),) * 2,
        "default (P/16, P/8)": (tuple(p // 16 for p in patch), tuple(p // 8 for p in patch)),
        "P/16, P/16": (tuple(p // 16 for p in patch),) * 2,
        "P/32, P/16": (tuple(max(1, p // 32) for p in patch), tuple(p // 16 for p in patch)),
        "P/16, no crop": (tuple(p // 16 for p in patch), (0, 0, 0)),
        "P/8, no crop": (tuple(p // 8 for p in patch), (0, 0, 0)),
        "P/4, no crop": (tuple(p // 4 for p in patch), (0, 0, 0)),
        "P/4, no crop, gaussian": (tuple(p // 4 for p in patch), (0, 0, 0)),
        "none (abutting)": ((0, 0, 0), (0, 0, 0)),
    }
    whole = None
    print(f"\nseams: {name}, volume {shape}, patch {patch}")
    print(f"{'overlap, crop':24s} {'overlap':>12s} {'crop':>12s} {'redundancy':>10s} {'seam':>6s} "
          f"{'mean |d| vs paper':>17s} {'max |d|':>8s}")
    for label, (overlap, crop) in settings.items():
        out = synthesize_tiled(model, mask, pos, patch=patch, overlap=overlap, crop=crop, batch_size=batch_size,
                               device=device, blend="gaussian" if "gaussian" in label else "linear", progress=False)
        whole = out if whole is None else whole
        grid = make_grid(shape, patch, overlap, crop, model.size_multiple)
        print(f"{label:24s} {overlap!s:>12s} {crop!s:>12s} {nominal_redundancy(patch, overlap, crop):10.2f} "
              f"{seam_metric(out, grid):6.3f} {np.abs(out - whole).mean():17.5f} {np.abs(out - whole).max():8.4f}")


if __name__ == "__main__":
    main()
