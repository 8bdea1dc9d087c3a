"""Data set generation speed: 1 vs 2 workers, per-sample overhead, samples per minute per preset.

- **Workers**: the same data set (preset ``nuclei`` unless ``--preset``) made with 1 worker
  (in this process) and with 2 worker processes (a Dask LocalCluster), side by side, medians
  of ``--repeats`` runs. Throughput counts the whole run except the cluster's start-up and
  shut-down (one-off costs per run, a few seconds in all), which are reported on their own;
  the wall-clock speed-up with them is printed too.
- **Overhead**: everything that is not simulation or synthesis (scheduling, writing the
  files, manifest, README, splits) relative to the compute time of the samples.
- **Presets**: samples per minute of each shipped preset with 1 worker.

CPU seconds per sample are printed too: equal figures for 1 and 2 workers mean the workers
do no extra work, so on an idle machine the speed-up is limited only by the free cores.

Usage::

    python benchmarks/bench_dataset.py [--count 8] [--repeats 3] [--preset nuclei] [--shape Z Y X] [--skip-presets]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from cellsynth import dataset


def run(params: dict, count: int, workers: int, work: Path) -> dict[str, float]:
    """Make a fresh data set; return wall time, cluster start-up, compute and write times."""
    root = Path(tempfile.mkdtemp(dir=work))
    report = dataset.generate_dataset(root, params, count, seed=1, workers=workers, progress=False)
    assert not report.failed, report.failed
    compute = sum(t["simulate"] + t["synthesize"] for t in report.timings.values())
    io_time = sum(t["write"] for t in report.timings.values())
    cpu = statistics.median(t["cpu"] for t in report.timings.values())
    model = dataset.read_manifest(root)["parameters"]["synthesize"]["model"]
    return {"wall": report.wall_s, "startup": report.startup_s, "shutdown": report.shutdown_s,
            "work": report.wall_s - report.startup_s - report.shutdown_s,
            "compute": compute, "io": io_time, "cpu": cpu, "model": model}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="nuclei")
    parser.add_argument("--shape", type=int, nargs=3, help="override the preset's shape for the worker comparison")
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset-count", type=int, default=3)
    parser.add_argument("--skip-presets", action="store_true")
    parser.add_argument("--skip-workers", action="store_true")
    args = parser.parse_args()
    print(f"cores: {dataset.default_workers()}, load average: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    params = dataset.load_preset(args.preset)
    if args.shape:
        params = dataset.apply_overrides(params, {"shape": args.shape})
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run(params, 1, 1, work)  # warm-up: imports, caches
        if not args.skip_workers:
            compare_workers(params, args, work)
        if args.skip_presets:
            return
        print(f"\nsamples per minute per preset (1 worker, {args.preset_count} samples, median of 1 run)")
        print(f"{'preset':<30} {'shape':>14} {'model':>10} {'samples/min':>12} {'s/sample':>9}")
        for name in dataset.preset_names():
            p = dataset.load_preset(name)
            r = run(p, args.preset_count, 1, work)
            shape = "x".join(map(str, p["shape"]))
            print(f"{name:<30} {shape:>14} {r['model']:>10} {60 * args.preset_count / r['wall']:>12.2f} "
                  f"{r['wall'] / args.preset_count:>9.2f}")


def compare_workers(params: dict, args: argparse.Namespace, work: Path) -> None:
    """1 vs 2 workers on the same data set, medians of ``args.repeats`` runs (alternating, so
    that a change of load on the machine hits both alike)."""
    rows: dict[int, list[dict]] = {1: [], 2: []}
    for _ in range(args.repeats):
        for w, results in rows.items():
            results.append(run(params, args.count, w, work))
    shape = "x".join(map(str, params["shape"]))
    print(f"\npreset {args.preset} ({shape}, model {rows[1][0]['model']}), {args.count} samples, "
          f"medians of {args.repeats} runs")
    print(f"{'workers':>8} {'wall s':>8} {'start-up s':>11} {'shut-down s':>12} {'samples/min':>12} "
          f"{'overhead %':>11} {'io %':>6} {'CPU s/sample':>13}")
    per_min = {}
    for w, results in rows.items():
        work_s = statistics.median(r["work"] for r in results)
        per_min[w] = 60 * args.count / work_s
        # overhead: busy time of all worker slots minus the stages, relative to the stages
        overhead = statistics.median((r["work"] * w - r["compute"]) / r["compute"] for r in results)
        io_share = statistics.median(r["io"] / r["compute"] for r in results)
        print(f"{w:>8} {statistics.median(r['wall'] for r in results):>8.2f} "
              f"{statistics.median(r['startup'] for r in results):>11.2f} "
              f"{statistics.median(r['shutdown'] for r in results):>12.2f} {per_min[w]:>12.2f} "
              f"{100 * overhead:>11.1f} {100 * io_share:>6.1f} "
              f"{statistics.median(r['cpu'] for r in results):>13.2f}")
    print(f"speed-up 2 vs 1 workers (throughput, start-up and shut-down excluded): {per_min[2] / per_min[1]:.2f}x "
          f"(target >= 1.8x)")
    wall_speedup = statistics.median(r["wall"] for r in rows[1]) / statistics.median(r["wall"] for r in rows[2])
    print(f"speed-up 2 vs 1 workers (wall clock, start-up and shut-down included): {wall_speedup:.2f}x")


if __name__ == "__main__":
    main()
