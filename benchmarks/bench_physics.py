"""Physics renderer speed: cellsynth.synthesis (tiled, counter-based noise) against a plain
whole-volume numpy/scipy implementation of the same forward model.

The baseline renders the whole volume at once with ``scipy.ndimage`` filters and numpy's
generator (exact Poisson draws), so its noise changes with the volume's extent and it cannot
stream; it shows what the straightforward implementation costs. Both include the positional
map (one EDT). Medians of ``--repeats`` interleaved runs.

    python benchmarks/bench_physics.py                  # 128x512x512, target <= 10 s
    python benchmarks/bench_physics.py --shape 64 256 256
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from scipy import ndimage

from cellsynth.conditioning import positional_map
from cellsynth.render.physics import PhysicsParameters, psf_sigma_um
from cellsynth.synthesis import synthesize_image

VOXEL = (1.0, 0.25, 0.25)


def make_inputs(shape):
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    foreground = (sum(((g - s / 2) / (0.45 * s)) ** 2 for g, s in zip(grid, shape)) < 1).astype(np.uint8)
    z, y, x = grid
    mask = foreground & ((np.sin(z / 3.0) * np.sin(y / 9.0) * np.sin(x / 9.0)) > 0.3)
    return mask.astype(np.uint8), foreground


def baseline(mask, foreground, seed=0):
    """The same forward model, whole volume, with scipy filters and numpy's generator."""
    p = PhysicsParameters()
    rng = np.random.default_rng(seed)
    voxel = np.asarray(VOXEL)
    pos = positional_map(foreground, VOXEL)
    depth = np.clip(pos, 0, None)

    def field(scale_um, amplitude):
        cells = np.maximum(1, np.round(scale_um / voxel)).astype(int)
        lattice = rng.uniform(-1, 1, [s // c + 2 for s, c in zip(mask.shape, cells)]).astype(np.float32)
        up = ndimage.zoom(lattice, cells, order=1)[tuple(slice(0, s) for s in mask.shape)]
        return np.clip(1 + amplitude * up, 0, None)

    density = mask * field(p.brightness_scale_um, p.brightness_variation) * field(p.texture_scale_um, p.texture)
    density = (density + p.autofluorescence * (pos > 0)) * (1 - p.attenuation * depth)
    psf = np.asarray(psf_sigma_um(p)) / voxel
    sharp = ndimage.gaussian_filter(density, psf, mode="nearest", truncate=3)
    deep = ndimage.gaussian_filter(density, np.hypot(psf, p.depth_blur_um / voxel), mode="nearest", truncate=3)
    photons = p.signal_photons * (sharp + depth * (deep - sharp)) + p.background_photons
    adu = p.offset_adu + p.gain * rng.poisson(photons) + rng.normal(0, p.read_noise_adu, photons.shape)
    return np.clip(adu / p.white_adu, 0, 1).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=3, default=[128, 512, 512])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shape = tuple(args.shape)
    mask, foreground = make_inputs(shape)
    runs = {
        "cellsynth physics": lambda: synthesize_image(mask, foreground, VOXEL, model="physics", progress=False),
        "numpy/scipy whole": lambda: baseline(mask, foreground),
    }
    times = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    start = time.perf_counter()
    positional_map(foreground, VOXEL)
    edt = time.perf_counter() - start
    print(f"volume {shape} ({np.prod(shape) / 1e6:.0f} M voxels), voxel {VOXEL} µm, threads {args.threads}; "
          f"positional map alone {edt:.2f} s")
    print(f"{'method':20s} {'median s':>9s} {'runs':>24s}")
    for name, values in times.items():
        print(f"{name:20s} {statistics.median(values):9.2f} {' '.join(f'{v:.1f}' for v in values):>24s}")


if __name__ == "__main__":
    main()
