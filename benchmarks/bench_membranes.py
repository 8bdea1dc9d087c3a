"""Benchmark the weighted-Voronoi membrane simulation.

Cells of 40 µm (Poisson-disk seeds at least 40 µm apart, as `cellsynth simulate membranes
--cell-size 40` places them) in a box at 1 µm voxels, default weight spread and membrane
thickness. Reports, side by side in one run:

- ``simulate_membranes`` (tessellation, connectivity repair, relabelling, membrane mask,
  per-cell table): median wall time of several runs and peak traced memory;
- the naive baseline: a brute-force nearest-seed query of every voxel with a scipy KD-tree
  (plain Voronoi, no weights, no membranes), and a check that our tessellation with equal
  weights gives exactly its labels;
- the scaling of time and memory with the number of voxels.

Wall times on a shared machine vary with its load; the CPU time of this process is shown too.

Run: ``python benchmarks/bench_membranes.py [--repeats 3] [--quick]``.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
from scipy.spatial import cKDTree

from cellsynth.simulate.membranes import simulate_membranes, weighted_voronoi
from cellsynth.simulate.positions import poisson_disk_positions

CELL_SIZE_UM = 40.0
VOXEL = (1.0, 1.0, 1.0)


def seeds_for(shape: tuple[int, int, int]) -> np.ndarray:
    fg = np.ones(shape, np.uint8)
    return poisson_disk_positions(fg, VOXEL, CELL_SIZE_UM, np.random.default_rng(0))


def run_ours(shape: tuple[int, int, int], seeds: np.ndarray) -> object:
    return simulate_membranes(np.ones(shape, np.uint8), VOXEL, seeds, np.random.default_rng(1), progress=False)


def median_time(fn, repeats: int) -> tuple[float, float]:
    """Median wall time and median CPU time of this process (s)."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return float(np.median(wall)), float(np.median(cpu))


def peak_memory(fn) -> float:
    """Peak traced (numpy) memory of ``fn`` in bytes."""
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return float(peak)


def brute_force_nearest(shape: tuple[int, int, int], seeds: np.ndarray) -> np.ndarray:
    """Nearest seed of every voxel by a KD-tree query (the naive baseline), slab by slab."""
    tree = cKDTree(seeds)
    labels = np.empty(shape, np.int32)
    yx = np.stack(np.meshgrid(np.arange(shape[1]) * VOXEL[1], np.arange(shape[2]) * VOXEL[2], indexing="ij"), -1)
    yx = yx.reshape(-1, 2)
    for z in range(shape[0]):
        points = np.column_stack([np.full(len(yx), z * VOXEL[0]), yx])
        labels[z] = tree.query(points, workers=1)[1].reshape(shape[1:]) + 1
    return labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="skip the largest volumes")
    args = parser.parse_args()

    print(f"cell size {CELL_SIZE_UM:g} µm, voxel {VOXEL} µm, median of {args.repeats} runs\n")
    print("## ours vs naive baseline (256^3)")
    shape = (256, 256, 256)
    seeds = seeds_for(shape)
    ours = median_time(lambda: run_ours(shape, seeds), args.repeats)
    naive = median_time(lambda: brute_force_nearest(shape, seeds), max(1, args.repeats // 2))
    equal = weighted_voronoi(np.ones(shape, np.uint8), VOXEL, seeds, None, progress=False)
    same = bool(np.array_equal(equal, brute_force_nearest(shape, seeds)))
    print("| method | wall (s) | CPU (s) |\n|---|---|---|")
    print(f"| simulate_membranes (weighted, connected, membranes) | {ours[0]:.2f} | {ours[1]:.2f} |")
    print(f"| KD-tree nearest seed per voxel (plain Voronoi only) | {naive[0]:.2f} | {naive[1]:.2f} |")
    print("| reference code (design.md, same machine kind) | 84 | |")
    print(f"{len(seeds)} cells; equal-weight tessellation identical to brute force: {same}\n")

    print("## scaling with the number of voxels")
    shapes = [(128, 128, 128), (128, 256, 256), (256, 256, 256), (256, 512, 256), (256, 512, 512)]
    if args.quick:
        shapes = shapes[:3]
    print("| shape (z,y,x) | voxels (M) | cells | wall (s) | CPU (s) | CPU s per Mvoxel | peak memory (MB) "
          "| peak / uint16 labels |")
    print("|---|---|---|---|---|---|---|---|")
    for shape in shapes:
        seeds = seeds_for(shape)
        seconds, cpu = median_time(lambda: run_ours(shape, seeds), args.repeats)
        peak = peak_memory(lambda: run_ours(shape, seeds))
        voxels = float(np.prod(shape))
        print(f"| {shape} | {voxels / 1e6:.1f} | {len(seeds)} | {seconds:.2f} | {cpu:.2f} | {cpu / voxels * 1e6:.3f} | "
              f"{peak / 2**20:.0f} | {peak / (2 * voxels):.1f} |")


if __name__ == "__main__":
    main()
