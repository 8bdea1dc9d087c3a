"""Synthesis speed from a simulated preset sample: generators beside the physics renderer.

Simulates one sample of a preset (data set seed ``--seed``), keeps its first ``--shape``
voxels (default 64 x 192 x 192, the size issue 17 quotes: "a 64x192x192 preset sample
takes about 13 s" with the generator shipped before it), and times
:func:`cellsynth.synthesis.synthesize_image` with every model given, runs interleaved,
median of ``--repeats``. A model may carry tiling settings after a colon, ``path:PZ,PY,PX``
(patch) or ``path:PZ,PY,PX/CZ,CY,CX/OZ,OY,OX`` (patch / crop / overlap); without them the
model's defaults (:func:`cellsynth.tiling.default_tiling`) are used. Each row gives the
wall-clock seconds and voxels of output per second, the same per CPU second of
the process (less sensitive to other jobs on a shared machine), the patch grid (patch, crop, overlap, number of
patches) and its redundancy (voxels computed per output voxel).

    python benchmarks/bench_synthesis_speed.py --preset arabidopsis_ovule_nuclei \\
        --models physics src/cellsynth/models/arabidopsis_ovule_nuclei.pt /work/main/src/cellsynth/models/nuclei.pt

Timings depend on the machine's load: run the models side by side, as here, and say how
busy the machine was.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from cellsynth import dataset
from cellsynth.dataset.presets import simulate_arguments
from cellsynth.render.registry import load_model
from cellsynth.simulate.pipeline import simulate_sample
from cellsynth.synthesis import synthesize_image
from cellsynth.tiling import tile_grid


def parse_model(text: str) -> tuple[str, dict[str, tuple[int, ...]]]:
    """``path[:patch[/crop/overlap]]`` -> (path, tiling keywords)."""
    name, _, tiling = text.partition(":")
    if not tiling:
        return name, {}
    parts = [tuple(int(v) for v in p.split(",")) for p in tiling.split("/")]
    return name, dict(zip(("patch", "crop", "overlap"), parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="arabidopsis_ovule_nuclei", help="preset to simulate (default "
                        "arabidopsis_ovule_nuclei)")
    parser.add_argument("--models", nargs="+", default=["physics"],
                        help="models: physics, shipped names or generator files, optionally path:patch[/crop/overlap]")
    parser.add_argument("--shape", type=int, nargs=3, default=[64, 192, 192], help="voxels kept (z y x), "
                        "default 64 192 192")
    parser.add_argument("--seed", type=int, default=0, help="data set seed of the sample (default 0)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per model (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1; CPU seconds then "
                        "measure one core's work)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    preset = dataset.load_preset(args.preset)
    kind, voxel = preset["kind"], tuple(preset["voxel_size"])
    full = tuple(max(s, t) for s, t in zip(preset["shape"], args.shape))
    simulation_seed, synthesis_seed = dataset.sample_seeds(args.seed, 0)
    sample = simulate_sample(kind, full, voxel, np.random.default_rng(simulation_seed), progress=False,
                             **simulate_arguments(preset["simulate"]))
    region = tuple(slice(0, s) for s in args.shape)
    mask, foreground = np.asarray(sample.mask)[region], np.asarray(sample.foreground)[region]
    voxels = float(np.prod(args.shape))
    models = [parse_model(m) for m in args.models]
    times: dict[int, list[float]] = {i: [] for i in range(len(models))}
    cpu: dict[int, list[float]] = {i: [] for i in range(len(models))}
    for _ in range(args.repeats):
        for i, (name, tiling) in enumerate(models):
            model = load_model(name, kind, voxel_size=voxel, seed=synthesis_seed)
            start, start_cpu = time.perf_counter(), time.process_time()
            synthesize_image(mask, foreground, voxel, model=model, kind=kind, seed=synthesis_seed, progress=False,
                             **tiling)
            times[i].append(time.perf_counter() - start)
            cpu[i].append(time.process_time() - start_cpu)
    print(f"{args.preset} sample (seed {args.seed}) cropped to {'x'.join(map(str, args.shape))}, "
          f"{args.threads} thread(s), median of {args.repeats}")
    print(f"{'model':<48} {'s':>7} {'kvox/s':>8} {'cpu s':>7} {'kvox/cpu s':>10} {'patch':>12} {'crop':>10} "
          f"{'overlap':>9} {'n':>4} {'redund.':>7}")
    for i, (name, tiling) in enumerate(models):
        model = load_model(name, kind, voxel_size=voxel, seed=synthesis_seed)
        grid = tile_grid(model, args.shape, tiling.get("patch"), tiling.get("overlap"), tiling.get("crop"))
        seconds, cpu_seconds = statistics.median(times[i]), statistics.median(cpu[i])
        label = name[-48:]
        print(f"{label:<48} {seconds:7.1f} {voxels / seconds / 1e3:8.0f} {cpu_seconds:7.1f} "
              f"{voxels / cpu_seconds / 1e3:10.0f} {'x'.join(map(str, grid.patch)):>12} "
              f"{'x'.join(map(str, grid.crop)):>10} {'x'.join(map(str, grid.overlap)):>9} {grid.n_patches:>4} "
              f"{grid.redundancy:7.2f}")


if __name__ == "__main__":
    main()
