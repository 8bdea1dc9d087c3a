"""Unpaired realism benchmark of the built-in presets against the real volumes they mimic.

For every preset with a ``family:`` (``cellsynth.families``), ``--count`` samples are
simulated exactly as ``cellsynth dataset`` makes them (data set seed ``--seed``), rendered by
each model, and compared with the family's real volume in ``../shared/data``
(``cellsynth.evaluate.preset_benchmark.benchmark_preset``): histogram W1, spectrum distance,
KID and CNR, with the real-vs-real floor (two halves of the real volume) printed first.

Models (default): ``physics`` (with the preset's calibrated ``renderer``), ``physics
(defaults)`` (the physics renderer before calibration), ``default`` where it names another
model, and every shipped generator of the preset's kind; ``--models`` replaces them.

``--part heldout`` compares with the held-out last 25 % along y of the real volume only
(the part no calibration or training may use); ``fit`` with the first 75 %; ``full``
(default) with all of it. Several parts (``--part fit heldout``) score the same renders
against each; the JSON then holds one table per part (``{part: {preset: ...}}``).

    python benchmarks/bench_realism.py                       # all family presets, 4 samples each
    python benchmarks/bench_realism.py --presets lateral_root_membranes --count 8 --json out.json
    python benchmarks/bench_realism.py --part fit heldout --json parts.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from cellsynth import dataset, io
from cellsynth.evaluate.preset_benchmark import UNCALIBRATED, render_preset
from cellsynth.evaluate.realism import format_table, realism_benchmark
from cellsynth.families import FAMILIES, real_volume
from cellsynth.render.registry import default_model_name, shipped_generators

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def default_models(preset: dict) -> list[str]:
    """physics, physics before calibration, and every shipped generator of the preset's kind."""
    models = ["physics", UNCALIBRATED, *shipped_generators(preset["kind"])]
    default = default_model_name(preset["kind"], preset.get("family"))
    return models if default in models else [*models, default]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    family_presets = [p for p in dataset.preset_names() if dataset.load_preset(p).get("family") in FAMILIES]
    parser.add_argument("--presets", nargs="+", default=family_presets, help="presets with a family (default: all)")
    parser.add_argument("--count", type=int, default=4, help="simulated samples per preset (default 4)")
    parser.add_argument("--models", nargs="+", help="models to render with (default: see above)")
    parser.add_argument("--part", nargs="+", choices=("full", "fit", "heldout"), default=["full"],
                        help="compare with the whole real volume, its first 75 %% or its held-out last 25 %% along y "
                             "(several: the same renders against each)")
    parser.add_argument("--seed", type=int, default=0, help="data set seed of the simulated samples (default 0)")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the real volumes (../shared/data)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    results: dict[str, dict] = {part: {} for part in args.part}
    for name in args.presets:
        preset = dataset.load_preset(name)
        if preset.get("family") not in FAMILIES:
            parser.error(f"preset {name} names no known family")
        models = args.models or default_models(preset)
        start = time.perf_counter()
        sets = render_preset(preset, models, count=args.count, seed=args.seed)
        for part in args.part:
            real = real_volume(preset["family"], args.data, part=part,
                               membrane_thickness_um=preset["simulate"].get("membrane_thickness"))
            result = realism_benchmark(sets, [real], progress=False)
            result.pop("curves")
            seconds = time.perf_counter() - start
            print(f"\n{name} ({args.count} samples per model, real: {real.name}; {seconds:.0f} s)")
            print(format_table(result))
            results[part][name] = {"family": preset["family"], "real": real.name, "count": args.count,
                                   "seed": args.seed, "part": part, **result, "seconds": round(seconds, 1)}
    if args.json:
        io.write_json(args.json, results[args.part[0]] if len(args.part) == 1 else results)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
