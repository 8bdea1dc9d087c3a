"""Speed of `cellsynth simulate`: nuclei and membranes, whole commands and stages.

Targets (set when the simulation was written; this 2-core machine):
- 200 nuclei (radius 9 µm, std 1, gamma 5, order 20) in 128x512x512: whole command <= 5 s
  (the reference code: about 21 s per nucleus, ~4200 s);
- membranes in a 256^3 box with cell size 40: <= 2 s (reference: 84 s);
- membranes in 512x512x256 (Z = 256): <= 15 s, time and peak memory linear in voxels.

Each whole command runs in a fresh Python process (start-up, imports and writing the TIFF
sample folder included); the medians of ``--repeats`` runs are printed, wall-clock and CPU
(user + system) seconds: the code is single-threaded, so on a shared, loaded machine the
CPU time is the better estimate of the wall time on an idle one. Side by side, in
one process: the SH voxelisation against two baselines on the same 200 nuclei -- every
bounding-box voxel tested against the exact radial function (no angular-grid pre-test),
and every voxel of the volume per nucleus (the reference's cost structure; extrapolated
from a 1 M voxel slab).

With ``--baseline-src DIR`` (the ``src`` folder of another checkout, e.g. ``/work/main/src``)
every whole command also runs with that code, alternating run by run with ours, and the ratio
of the medians is printed: how much a change slowed the turn-1 targets. The packed-tissue
case (``--packing cells``: elongated, oriented cells of varied size) runs with ours only and
is compared with the Eq. 3 membranes of the same size.

Usage: python benchmarks/bench_simulation.py [--repeats 3] [--quick] [--baseline-src DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WRAPPER = (
    "import resource, sys\n"
    "from cellsynth.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "use = resource.getrusage(resource.RUSAGE_SELF)\n"
    "print('PEAK_RSS_KB', use.ru_maxrss, use.ru_utime + use.ru_stime, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def run_command(argv: list[str], out: Path, src: str | None = None) -> dict:
    """Run `cellsynth ARGV --out OUT --overwrite` in a new process (with the package in ``src``,
    else the one installed); wall time, peak RSS, stages."""
    env = None if src is None else {**os.environ, "PYTHONPATH": src}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", WRAPPER, *argv, "--out", str(out), "--overwrite"],
                          capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(argv)}\n{proc.stderr}")
    usage = next(line.split() for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KB"))
    record = out / "log.json"  # sample.json before issue 13 (e.g. the base of bench_tissue_speed.py)
    timings = json.loads((record if record.is_file() else out / "sample.json").read_text())["timings"]
    return {"wall": wall, "cpu": float(usage[2]), "peak_mb": int(usage[1]) / 1024, "timings": timings}


def medians(runs: list[dict]) -> dict:
    stages = {k: statistics.median(r["timings"][k] for r in runs)
              for k in runs[0]["timings"] if isinstance(runs[0]["timings"][k], (int, float))}
    inner = {k: statistics.median(r["timings"]["stages"][k] for r in runs)
             for k in runs[0]["timings"].get("stages", {})}
    return {"wall": statistics.median(r["wall"] for r in runs), "cpu": statistics.median(r["cpu"] for r in runs),
            "peak_mb": max(r["peak_mb"] for r in runs),
            "stages": stages, "inner": inner, "n": len(runs)}


def fmt_stages(m: dict) -> str:
    return ", ".join(f"{k[:-2]} {v:.2f}" for k, v in m["stages"].items() if k != "total_s")


def bench_commands(repeats: int, quick: bool, tmp: Path, baseline: str | None = None) -> None:
    nuclei = ["simulate", "nuclei", "--shape", "128", "512", "512", "--count", "200", "--radius", "9",
              "--radius-std", "1", "--smoothness", "5", "--sh-order", "20"]
    membranes = ["simulate", "membranes", "--shape", "256", "256", "256", "--organism", "box", "--cell-size", "40"]
    print("\n== whole commands (fresh process each; median of %d) ==" % repeats)
    print(f"{'command':58s} {'wall s':>7s} {'cpu s':>6s} {'target':>7s} {'peak MB':>8s}  stages (wall s)")
    cases = [
        ("nuclei 200, 128x512x512, ellipsoid organism", nuclei, 5.0, True),
        ("nuclei 200, 128x512x512, box organism", nuclei + ["--organism", "box"], 5.0, True),
        ("membranes 256^3 box, cell size 40", membranes, 2.0, True),
        ("membranes 256^3 box, cell size 40, packed cells", membranes + [
            "--packing", "cells", "--elongation", "2", "--flatness", "0.5", "--weight-spread", "0.25",
            "--orientation-coherence", "40"], 4.0, False),
    ]
    results = {}
    for name, argv, target, both in cases:
        ours, theirs = [], []
        for _ in range(repeats):
            ours.append(run_command(argv, tmp / "s"))
            if baseline and both:
                theirs.append(run_command(argv, tmp / "b", baseline))
        m = results[name] = medians(ours)
        inner = ", ".join(f"{k[:-2]} {v:.2f}" for k, v in m["inner"].items())
        print(f"{name:58s} {m['wall']:7.2f} {m['cpu']:6.2f} {target:7.1f} {m['peak_mb']:8.0f}  {fmt_stages(m)}"
              + (f" [{inner}]" if inner else ""))
        if theirs:
            b = medians(theirs)
            print(f"{'  baseline ' + baseline:58.58s} {b['wall']:7.2f} {b['cpu']:6.2f} {'':7s} {b['peak_mb']:8.0f}"
                  f"  ours / baseline: wall {m['wall'] / b['wall']:.2f}x, cpu {m['cpu'] / b['cpu']:.2f}x")
    packed, plain = results[cases[3][0]], results[cases[2][0]]
    print(f"packed cells / Eq. 3 membranes (same volume): wall {packed['wall'] / plain['wall']:.2f}x, "
          f"cpu {packed['cpu'] / plain['cpu']:.2f}x")

    print("\n== membranes scaling (box, cell size 40; median of %d) ==" % repeats)
    print(f"{'shape (Z Y X)':18s} {'Mvoxels':>8s} {'wall s':>7s} {'cpu s':>6s} {'membr. s':>9s} {'ns/voxel':>9s} "
          f"{'peak MB':>8s} {'B/voxel':>8s}")
    shapes = [(64, 256, 256), (128, 256, 256), (128, 512, 512)] + ([] if quick else [(256, 512, 512)])
    for shape in shapes:
        argv = ["simulate", "membranes", "--shape", *map(str, shape), "--organism", "box", "--cell-size", "40"]
        m = medians([run_command(argv, tmp / "s") for _ in range(repeats)])
        voxels = float(np.prod(shape))
        stage = m["stages"]["membranes_s"]
        print(f"{' '.join(map(str, shape)):18s} {voxels / 1e6:8.1f} {m['wall']:7.2f} {m['cpu']:6.2f} {stage:9.2f} "
              f"{stage / voxels * 1e9:9.1f} {m['peak_mb']:8.0f} {m['peak_mb'] * 2**20 / voxels:8.1f}")


def bench_voxelisation(repeats: int) -> None:
    from cellsynth.shapes.harmonics import inside_sh, random_coefficients, voxelize_sh

    rng = np.random.default_rng(0)
    shape, voxel = (128, 512, 512), (1.0, 1.0, 1.0)
    coeffs = [random_coefficients(20, 9.0 + rng.standard_normal(), 5.0, rng) for _ in range(200)]
    centers = rng.uniform([15, 15, 15], [113, 497, 497], (200, 3))

    def ours() -> None:
        for c, x in zip(coeffs, centers):
            voxelize_sh(c, x, voxel, shape)

    def bbox_exact() -> None:
        for c, x in zip(coeffs, centers):
            box, _ = voxelize_sh(c, x, voxel, shape)
            grid = np.stack(np.meshgrid(*[np.arange(s.start, s.stop) for s in box], indexing="ij"), -1)
            inside_sh(c, grid.reshape(-1, 3) * voxel, x)

    print("\n== SH voxelisation of 200 nuclei (r ~ N(9, 1), gamma 5, order 20), one process ==")
    print(f"{'method':60s} {'s (median)':>11s} {'cpu s':>7s}")
    for name, fn, reps in (("bbox, angular-grid pre-test + exact band (voxelize_sh)", ours, repeats),
                           ("bbox, exact radial function at every voxel", bbox_exact, 1)):
        times, cpu = [], []
        for _ in range(reps):
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        print(f"{name:60s} {statistics.median(times):11.2f} {statistics.median(cpu):7.2f}")
    slab = np.stack(np.meshgrid(np.arange(4), np.arange(512), np.arange(512), indexing="ij"), -1).reshape(-1, 3)
    start = time.perf_counter()
    inside_sh(coeffs[0], slab * voxel, centers[0])
    per_nucleus = (time.perf_counter() - start) * np.prod(shape) / len(slab)
    print(f"{'whole volume per nucleus, exact (extrapolated from 1 M voxels)':60s} {200 * per_nucleus:11.0f}")
    print(f"{'reference code (design.md: ~21 s per nucleus)':60s} {200 * 21.0:11.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="skip the largest membrane volume")
    parser.add_argument("--baseline-src", metavar="DIR",
                        help="also run every whole command with the package in DIR (e.g. /work/main/src)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_commands(args.repeats, args.quick, Path(tmp), args.baseline_src)
    bench_voxelisation(args.repeats)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    print(f"\nload average at the end: {' '.join(load)} (2 cores shared with other jobs: timings are noisy)")


if __name__ == "__main__":
    main()
