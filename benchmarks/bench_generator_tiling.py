"""Tiled against whole-volume output of a generator, over patch, crop and overlap.

A generator's output voxel depends on the inputs within its receptive field (the halo, an
upper bound). The tiler crops every patch side by ``crop`` and blends overlaps of
``overlap`` voxels; below the halo a voxel's value depends on where the patch borders fall.
This script renders one simulated preset sample (data set seed 0) with the generator:

- **whole**: the network applied once to the whole volume mirrored by more than the halo
  (the value every voxel has with infinite context, the tiler's target);
- **tiled**: :func:`cellsynth.tiling.synthesize_tiled` with each patch / crop / overlap.

It prints the mean, 99.9th percentile and maximum absolute difference (intensities in
[0, 1]), the seam metric, the redundancy and the time of each setting, the default first.

    python benchmarks/bench_generator_tiling.py --model src/cellsynth/models/arabidopsis_ovule_nuclei.pt \\
        --preset arabidopsis_ovule_nuclei
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from cellsynth import dataset
from cellsynth.conditioning import positional_map
from cellsynth.dataset.presets import simulate_arguments
from cellsynth.evaluate.metrics import seam_metric
from cellsynth.render.gan import load_generator, voxel_noise
from cellsynth.simulate.pipeline import simulate_sample
from cellsynth.tiling import synthesize_tiled, tile_grid


def whole_volume(model, mask: np.ndarray, positional: np.ndarray) -> np.ndarray:
    """The generator on the whole volume mirrored by a whole number of size multiples above the halo."""
    m = model.size_multiple[0]
    margin = -(-(model.halo[0] + 1) // m) * m
    inputs = torch.from_numpy(np.stack([mask, positional]).astype(np.float32))
    pad = [(0, 0)] + [(margin, margin + (-(s + 2 * margin) % m)) for s in mask.shape]
    padded = torch.from_numpy(np.pad(inputs.numpy(), pad, mode="reflect"))
    noise = voxel_noise(torch.tensor([[-margin] * 3]), tuple(padded.shape[1:]), model.seed)
    with torch.inference_mode():
        out = model.generator(padded[None], noise)[0, 0].numpy()
    return out[tuple(slice(margin, margin + s) for s in mask.shape)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="generator file")
    parser.add_argument("--preset", required=True, help="preset whose simulated sample is rendered")
    parser.add_argument("--patches", type=int, nargs="+", default=[24, 48, 48, 32, 64, 64, 64, 128, 128],
                        help="patch sizes, three numbers each (default 24 48 48, 32 64 64, 64 128 128)")
    parser.add_argument("--crops", type=float, nargs="+", default=[0.125, 0.1875, 0.25],
                        help="crops as fractions of the patch (default 1/8, 3/16, 1/4)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    preset = dataset.load_preset(args.preset)
    shape, voxel = tuple(preset["shape"]), tuple(preset["voxel_size"])
    sample = simulate_sample(preset["kind"], shape, voxel, np.random.default_rng(dataset.sample_seeds(0, 0)[0]),
                             progress=False, **simulate_arguments(preset["simulate"]))
    mask = np.asarray(sample.mask)
    pos = positional_map(sample.foreground, voxel)
    model = load_generator(args.model, kind=preset["kind"])
    start = time.perf_counter()
    reference = whole_volume(model, mask, pos)
    print(f"{args.model}: halo {model.halo[0]}, whole volume {'x'.join(map(str, shape))} in "
          f"{time.perf_counter() - start:.1f} s")
    settings = [(None, None, None)]
    for i in range(0, len(args.patches), 3):
        patch = tuple(args.patches[i:i + 3])
        for fraction in args.crops:
            crop = tuple(max(1, round(fraction * p)) for p in patch)
            settings.append((patch, tuple(max(1, p // 16) for p in patch), crop))
    print(f"{'patch':>12} {'overlap':>10} {'crop':>12} {'mean':>8} {'p99.9':>8} {'max':>8} {'seams':>6} "
          f"{'redund.':>7} {'s':>6}")
    for patch, overlap, crop in settings:
        grid = tile_grid(model, shape, patch, overlap, crop)
        start = time.perf_counter()
        tiled = synthesize_tiled(model, mask, pos, patch=patch, overlap=overlap, crop=crop, progress=False)
        seconds = time.perf_counter() - start
        diff = np.abs(tiled - reference)
        label = "default" if patch is None else ""
        print(f"{'x'.join(map(str, grid.patch)):>12} {'x'.join(map(str, grid.overlap)):>10} "
              f"{'x'.join(map(str, grid.crop)):>12} {diff.mean():8.4f} {np.percentile(diff, 99.9):8.4f} "
              f"{diff.max():8.4f} {seam_metric(tiled, grid):6.3f} {grid.redundancy:7.2f} {seconds:6.1f} {label}",
              flush=True)


if __name__ == "__main__":
    main()
