"""Choose the default model of every family and kind: ``src/cellsynth/models/defaults.json``.

The default of a family is the candidate with the best unpaired realism benchmark from
masks simulated with the family's preset (``cellsynth.evaluate.preset_benchmark``): rendered
by each candidate, ``--count`` samples are compared with the family's real volume in
``../shared/data`` (histogram W1, spectrum distance, KID, CNR against the real CNR), and the
candidate that beats every other on at least three of the four wins (physics on a tie;
``choose_default``). The real side is the first 75 % of the volume along y: the held-out last
25 % takes no part in any choice (``benchmarks/bench_realism.py --part heldout`` reports
there). Candidates: ``physics`` with the preset's calibrated renderer, and every
shipped generator of the family's kind (``src/cellsynth/models/*.pt``, one per kind or one per
family). The default of a kind (for presets without a family) is the model that is the
default of every family of that kind, else ``physics``.

The file keeps every candidate's scores beside the choice, with the floor (two halves of the
fitted part) and the physics renderer before calibration for comparison; the paired held-out
scores stay in the model cards (``<name>.md``, ``<name>.scores.json``).

    python scripts/choose_defaults.py [--count 4] [--seed 0] [--data ../shared/data] [--dry-run]
    python scripts/choose_defaults.py --benchmark fit.json   # reuse `bench_realism.py --part fit --json fit.json`
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from cellsynth import __version__, dataset, io
from cellsynth.evaluate.preset_benchmark import UNCALIBRATED, benchmark_preset, choose_default
from cellsynth.evaluate.realism import FLOOR, format_table
from cellsynth.families import FAMILIES, real_volume
from cellsynth.render.registry import DEFAULTS_FILE, KINDS, SHIPPED_DIR, shipped_generators

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
PART = "fit"
RULE = ("the candidate that beats every other on at least three of histogram W1, spectrum distance, KID and "
        "|log(CNR / real CNR)| (fewer is better for each), on --count masks simulated with the family's preset "
        "against the first 75 % along y of the family's real volume (the held-out last 25 % takes no part); else "
        "the one with most such wins; physics on a tie")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=4, help="simulated samples per family (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="data set seed of the samples (default 0)")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the real volumes (../shared/data)")
    parser.add_argument("--dry-run", action="store_true", help="print the choice, write nothing")
    parser.add_argument("--benchmark", type=Path, metavar="JSON",
                        help="scores from `python benchmarks/bench_realism.py --part fit [heldout] --json JSON` (the "
                             "same candidates) instead of computing them again")
    args = parser.parse_args(argv)
    previous = json.loads(args.benchmark.read_text()) if args.benchmark else {}
    parts = [k for k in ("full", "fit", "heldout") if isinstance(previous.get(k), dict) and "rows" not in previous[k]]
    previous = previous.get(PART, previous)  # a file of several parts (bench_realism.py --part fit heldout)
    families = {}
    for name, fam in FAMILIES.items():
        preset = dataset.load_preset(name)
        candidates = ["physics", *shipped_generators(fam.kind)]
        start = time.perf_counter()
        if name in previous:
            result = previous[name]
            missing = set(candidates) - set(result["rows"])
            if result["part"] != PART or missing:
                parser.error(f"{args.benchmark}: {name} was scored on part {result['part']} or lacks {missing}")
            real_name = result["real"]
            args.count, args.seed = result["count"], result["seed"]
        else:
            real = real_volume(name, args.data, part=PART,
                               membrane_thickness_um=preset["simulate"].get("membrane_thickness"))
            result = benchmark_preset(preset, [real], [*candidates, UNCALIBRATED], count=args.count, seed=args.seed)
            real_name = real.name
        choice = choose_default(result["rows"], candidates)
        print(f"\n{name}: default {choice} ({time.perf_counter() - start:.0f} s)")
        print(format_table(result))
        families[name] = {"kind": fam.kind, "model": choice, "candidates": candidates, "real": real_name,
                          "real_cnr": result["real_cnr"], "floor": result["rows"][FLOOR],
                          "scores": {k: v for k, v in result["rows"].items() if k != FLOOR},
                          "definition": result["definition"]}
    kinds = {}
    for kind in KINDS:
        chosen = {f["model"] for f in families.values() if f["kind"] == kind}
        kinds[kind] = chosen.pop() if len(chosen) == 1 else "physics"
    command = "python scripts/choose_defaults.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.benchmark:
        command = (f"python benchmarks/bench_realism.py --part {' '.join(parts or [PART])} --count {args.count} "
                   f"--seed {args.seed} "
                   f"--json {args.benchmark.name} && {command.replace(str(args.benchmark), args.benchmark.name)}")
    record = {"rule": RULE, "command": command,
              "cellsynth_version": __version__, "count": args.count, "seed": args.seed, "real_part": PART,
              "families": families, "kinds": kinds}
    print("\nkinds:", json.dumps(kinds))
    if not args.dry_run:
        io.write_json(SHIPPED_DIR / DEFAULTS_FILE, record)
        print(f"wrote {SHIPPED_DIR / DEFAULTS_FILE}")


if __name__ == "__main__":
    main()
