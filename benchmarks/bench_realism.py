"""Unpaired realism benchmark of the built-in presets against the real volumes they mimic.

For every preset with a ``family:`` (``cellsynth.families``), ``--count`` samples are
simulated exactly as ``cellsynth dataset`` makes them (data set seed ``--seed``), rendered by
each model, and compared with the family's real volume in ``../shared/data`` by
``cellsynth.evaluate.realism.realism_benchmark``: histogram W1, spectrum distance, KID and
CNR, with the real-vs-real floor (two halves of the real volume) printed first.

Models: ``physics``, the shipped generator of the kind where one is installed, and any
generator checkpoint given with ``--models``.

``--part heldout`` compares with the held-out last 25 % along y of the real volume only
(the part no calibration or training may use); ``--part full`` (default) with all of it.

    python benchmarks/bench_realism.py                       # all family presets, 4 samples each
    python benchmarks/bench_realism.py --presets lateral_root_membranes --count 8 --json out.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from cellsynth import dataset, io
from cellsynth.evaluate.realism import format_table, realism_benchmark, realism_volume
from cellsynth.families import FAMILIES
from cellsynth.render.registry import shipped_model

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
HELDOUT_FRACTION = 0.25


def real_volume(preset: dict, data: Path, part: str):
    """The family's real volume (with its labels) as a benchmark volume: all of it, or the
    held-out last 25 % along y."""
    family = FAMILIES[preset["family"]]
    raw, voxel = io.read_h5(data / family.real_file, "raw")
    labels, _ = io.read_h5(data / family.real_file, "label")
    voxel = voxel or family.voxel_size
    if part == "heldout":
        start = raw.shape[1] - int(round(HELDOUT_FRACTION * raw.shape[1]))
        raw, labels = raw[:, start:], labels[:, start:]
    return realism_volume(raw, voxel, kind=preset["kind"], labels=labels,
                          membrane_thickness_um=preset["simulate"].get("membrane_thickness"),
                          name=f"{family.real_file} ({part})")


def synthetic_sets(preset: dict, models: list[str], count: int, seed: int) -> dict[str, list]:
    """``{model: volumes}``: ``count`` simulated samples of the preset rendered by each model."""
    from cellsynth.simulate.pipeline import simulate_sample
    from cellsynth.synthesis import synthesize_image

    kind, shape, voxel = preset["kind"], tuple(preset["shape"]), tuple(preset["voxel_size"])
    synth = {k: v for k, v in preset["synthesize"].items() if k not in ("model", "alpha")}
    alpha = preset["synthesize"]["alpha"][0]
    sets: dict[str, list] = {m: [] for m in models}
    for index in range(count):
        simulation_seed, synthesis_seed = dataset.sample_seeds(seed, index)
        with dataset.one_thread():
            sample = simulate_sample(kind, shape, voxel, np.random.default_rng(simulation_seed), progress=False,
                                     **preset["simulate"])
            for model in models:
                image = synthesize_image(sample.mask, sample.foreground, voxel, model=model, kind=kind, alpha=alpha,
                                         seed=synthesis_seed, progress=False, **synth)
                sets[model].append(realism_volume(image, voxel, mask=sample.mask, foreground=sample.foreground,
                                                  name=f"{model} {index}"))
    return sets


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    family_presets = [p for p in dataset.preset_names() if dataset.load_preset(p).get("family") in FAMILIES]
    parser.add_argument("--presets", nargs="+", default=family_presets, help="presets with a family (default: all)")
    parser.add_argument("--count", type=int, default=4, help="simulated samples per preset (default 4)")
    parser.add_argument("--models", nargs="+", help="models to render with (default: physics and the shipped "
                                                    "generator of the kind)")
    parser.add_argument("--part", choices=("full", "heldout"), default="full",
                        help="compare with the whole real volume or its held-out last 25 %% along y")
    parser.add_argument("--seed", type=int, default=0, help="data set seed of the simulated samples (default 0)")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the real volumes (../shared/data)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    results = {}
    for name in args.presets:
        preset = dataset.load_preset(name)
        if preset.get("family") not in FAMILIES:
            parser.error(f"preset {name} names no known family")
        models = args.models or ["physics"] + (
            [preset["kind"]] if shipped_model(preset["kind"]) else [])
        start = time.perf_counter()
        real = real_volume(preset, args.data, args.part)
        sets = synthetic_sets(preset, models, args.count, args.seed)
        result = realism_benchmark(sets, [real], progress=False)
        result.pop("curves")
        seconds = time.perf_counter() - start
        print(f"\n{name} ({args.count} samples per model, real: {real.name}; {seconds:.0f} s)")
        print(format_table(result))
        results[name] = {"family": preset["family"], "real": real.name, "count": args.count, "seed": args.seed,
                         "part": args.part, **result, "seconds": round(seconds, 1)}
    if args.json:
        io.write_json(args.json, results)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
