"""Speed of the turn-1 simulation targets with the family presets' tissue settings, against a base.

Issue 16 (realistic tissue) allows the simulation of the turn-1 targets -- membranes in a
256^3 volume, 200 nuclei in 128x512x512 -- to become at most 2x slower. This script runs
each target as a whole ``cellsynth simulate`` command in a fresh process, once with this
checkout's code and presets and once with the code and presets of a base checkout (e.g. the
commit before the tissue work, unpacked with ``git archive BASE src | tar -x -C DIR``),
alternating run by run so both see the same machine load, and prints the medians of
``--repeats`` runs side by side with the ratio ours / base.

Cases:
- the generic turn-1 commands of ``benchmarks/bench_simulation.py`` (same flags for both), and
  the 256^3 membranes as packed cells of the lateral root preset's shape (orientation
  coherence scaled with the cell size) against the base's Eq. 3 at the same cell size;
- every membrane and nuclei preset that both checkouts ship: its ``simulate`` settings and
  voxel size, at the turn-1 shape (and 200 nuclei), each checkout with its own preset, so
  the packed, elongated cells (``packing: cells``) of the refitted membrane presets are timed
  against the Eq. 3 tessellation the base presets used.

Wall-clock and CPU (user + system) seconds are both printed: the simulation is
single-threaded, so on a loaded machine the CPU time is the better estimate of an idle
machine's wall time. Run both sides under the same ``nice``.

Usage: python benchmarks/bench_tissue_speed.py --base-src DIR [--repeats 3] [--cases NAME ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_simulation import medians, run_command  # noqa: E402

OURS_SRC = Path(__file__).resolve().parents[1] / "src"
TURN1_SHAPE = {"membranes": ["256", "256", "256"], "nuclei": ["128", "512", "512"]}
_MEMBRANES40 = ["simulate", "membranes", "--shape", *TURN1_SHAPE["membranes"], "--organism", "box", "--cell-size", "40"]
_NUCLEI200 = ["simulate", "nuclei", "--shape", *TURN1_SHAPE["nuclei"], "--count", "200", "--radius", "9",
              "--radius-std", "1", "--smoothness", "5", "--sh-order", "20"]
# (ours, base) arguments: the same command, or packed cells against Eq. 3 at the same cell count
GENERIC = {
    "nuclei 200, 128x512x512 (bench_simulation)": (_NUCLEI200, _NUCLEI200),
    "membranes 256^3 box, cell size 40 (bench_simulation)": (_MEMBRANES40, _MEMBRANES40),
    "membranes 256^3 box, cell size 40, packed lateral-root shape": (_MEMBRANES40 + [
        "--packing", "cells", "--weight-spread", "0.4769", "--elongation", "3.456", "--flatness", "0.491",
        "--orientation-coherence", "19.7", "--stretch", "0.8069", "0.9207", "1.0"], _MEMBRANES40),
}


def preset_command(src: Path, name: str) -> list[str]:
    """``cellsynth simulate`` arguments for preset ``name`` of the checkout in ``src``, at the
    turn-1 shape (and 200 nuclei)."""
    preset = yaml.safe_load((src / "cellsynth" / "presets" / f"{name}.yaml").read_text())
    kind = preset["kind"]
    argv = ["simulate", kind, "--shape", *TURN1_SHAPE[kind],
            "--voxel-size", *map(str, preset["voxel_size"])]
    settings = dict(preset["simulate"])
    if kind == "nuclei":
        settings["count"] = 200
    for key, value in settings.items():
        values = value if isinstance(value, list) else [value]
        argv += ["--" + key.replace("_", "-"), *map(str, values)]
    return argv


def shared_presets(base: Path) -> list[str]:
    """Names of the presets that both checkouts ship (those with a turn-1 kind)."""
    names = []
    for path in sorted((OURS_SRC / "cellsynth" / "presets").glob("*.yaml")):
        if (base / "cellsynth" / "presets" / path.name).is_file():
            if yaml.safe_load(path.read_text())["kind"] in TURN1_SHAPE:
                names.append(path.stem)
    return names


def describe(argv: list[str]) -> str:
    """The tissue settings of a command, short: the packing of membranes, the count of nuclei."""
    packing = argv[argv.index("--packing") + 1] if "--packing" in argv else "points (Eq. 3)"
    return f"packing {packing}" if argv[1] == "membranes" else f"{argv[argv.index('--count') + 1]} nuclei"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-src", required=True, type=Path, metavar="DIR",
                        help="the src folder of the base checkout")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case and side (default 3)")
    parser.add_argument("--cases", nargs="*", metavar="NAME",
                        help="run only the cases whose name contains one of these words")
    args = parser.parse_args()
    base = args.base_src.resolve()
    cases = dict(GENERIC)
    for name in shared_presets(base):
        cases[f"preset {name} at the turn-1 shape"] = (preset_command(OURS_SRC, name), preset_command(base, name))
    if args.cases:
        cases = {k: v for k, v in cases.items() if any(word in k for word in args.cases)}

    print(f"ours: {OURS_SRC}\nbase: {base}\nmedian of {args.repeats} runs per side, alternating\n")
    print(f"{'case':62s} {'side':5s} {'wall s':>7s} {'cpu s':>6s} {'peak MB':>8s}  stages (wall s)")
    ratios = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (ours_argv, base_argv) in cases.items():
            ours, theirs = [], []
            for _ in range(args.repeats):
                ours.append(run_command(ours_argv, Path(tmp) / "ours", str(OURS_SRC)))
                theirs.append(run_command(base_argv, Path(tmp) / "base", str(base)))
            rows = {"ours": medians(ours), "base": medians(theirs)}
            for side, argv in (("ours", ours_argv), ("base", base_argv)):
                m = rows[side]
                stages = ", ".join(f"{k[:-2]} {v:.2f}" for k, v in m["stages"].items() if k != "total_s")
                if m["inner"]:
                    stages += " [" + ", ".join(f"{k[:-2]} {v:.2f}" for k, v in m["inner"].items()) + "]"
                label = name if side == "ours" else ""
                print(f"{label:62.62s} {side:5s} {m['wall']:7.2f} {m['cpu']:6.2f} {m['peak_mb']:8.0f}  "
                      f"{describe(argv)}; {stages}")
            ratios[name] = (rows["ours"]["wall"] / rows["base"]["wall"], rows["ours"]["cpu"] / rows["base"]["cpu"])
            print(f"{'':62s} ratio ours / base: wall {ratios[name][0]:.2f}x, cpu {ratios[name][1]:.2f}x", flush=True)

    worst = max(ratios.items(), key=lambda item: item[1][1])
    print(f"\nslowest against the base (cpu): {worst[0]}: {worst[1][1]:.2f}x (limit 2x)")
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    print(f"load average at the end: {' '.join(load)} (2 shared cores: timings are noisy)")


if __name__ == "__main__":
    main()
