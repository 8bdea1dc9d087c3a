"""``cellsynth dataset``: generate a fully annotated data set from a preset."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cellsynth.cli import _options
from cellsynth.errors import CellsynthError

# flag destination -> dotted preset key it overrides
OVERRIDES = {
    "shape": "shape",
    "voxel_size": "voxel_size",
    "organism": "simulate.organism",
    "cell_count": "simulate.count",
    "radius": "simulate.radius",
    "radius_std": "simulate.radius_std",
    "smoothness": "simulate.smoothness",
    "sh_order": "simulate.sh_order",
    "cell_size": "simulate.cell_size",
    "membrane_thickness": "simulate.membrane_thickness",
    "model": "synthesize.model",
    "renderer": "renderer",
    "alpha": "synthesize.alpha",
    "beta": "synthesize.beta",
    "patch": "synthesize.patch",
    "device": "synthesize.device",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``dataset`` subcommand."""
    p = subparsers.add_parser(
        "dataset", help="generate a fully annotated data set (masks + synthetic images) from a preset",
        description="Simulate masks and synthesise images for COUNT samples into OUT/samples/, with "
                    "OUT/dataset.json (parameters, seeds, states), OUT/splits.csv and OUT/README.md. "
                    "A re-run with the same parameters makes only the missing samples. Flags below the "
                    "preset override the preset's values; sizes are in µm.",
    )
    p.set_defaults(func=run)
    p.add_argument("--preset", metavar="NAME", help="shipped preset (see --list-presets), a preset .yaml file, "
                   "or an existing data set's dataset.json to make more of the same (required for a new data set)")
    p.add_argument("--count", type=_options.positive_int, metavar="N",
                   help="number of samples (a larger N extends a data set) (required for a new data set; "
                        "default: the recorded count)")
    p.add_argument("--out", metavar="DIR", help="data set folder (empty, new, or a data set to complete) (required)")
    p.add_argument("--seed", type=_options.seed, default=None, help="data set seed (default 0); sample i uses "
                   "SeedSequence(seed, spawn_key=(i,))")
    p.add_argument("--split", metavar="TRAIN,VAL,TEST",
                   help="fractions of samples for train, val and test in splits.csv (default 0.8,0.1,0.1; a data "
                        "set keeps its split)")
    run_group = p.add_mutually_exclusive_group()
    run_group.add_argument("--workers", type=_options.positive_int, metavar="K",
                           help="local worker processes (default: the number of cores, at most one per sample "
                           "left to make); 1 runs in this process")
    run_group.add_argument("--scheduler", metavar="ADDRESS", help="existing dask.distributed scheduler, e.g. "
                           "tcp://host:8786; its workers must see --out at the same path "
                           "(default: a local cluster, see --workers)")
    p.add_argument("--scheduler-timeout", type=_options.positive, default=10.0, metavar="S",
                   help="seconds to try to reach --scheduler before giving up (default 10)")
    p.add_argument("--resume", action="store_true", help="complete the data set in --out (the preset and flags "
                   "may then be left out; given ones must match)")
    p.add_argument("--list-presets", action="store_true", help="list the shipped presets and exit")
    o = p.add_argument_group("preset overrides")
    o.add_argument("--shape", type=_options.positive_int, nargs=3, metavar=("Z", "Y", "X"),
                   help="volume shape in voxels")
    o.add_argument("--voxel-size", type=_options.positive, nargs=3, metavar=("Z", "Y", "X"), help="voxel size in µm")
    o.add_argument("--organism", help="organism shape: box, ellipsoid, sh, a mask file or a shape model .npz")
    o.add_argument("--cell-count", type=_options.positive_int, metavar="N",
                   help="cells per sample (simulate's --count)")
    o.add_argument("--radius", type=_options.positive, help="mean nucleus radius in µm")
    o.add_argument("--radius-std", type=_options.nonnegative, help="standard deviation of the nucleus radius in µm")
    o.add_argument("--smoothness", type=_options.nonnegative, help="SH smoothness gamma (larger: rounder nuclei)")
    o.add_argument("--sh-order", type=_options.nonnegative_int, help="SH order l of the nuclei")
    o.add_argument("--cell-size", type=_options.positive, help="mean cell diameter in µm (membranes)")
    o.add_argument("--membrane-thickness", type=_options.positive, help="membrane wall thickness in µm")
    o.add_argument("--model", help="synthesis model: default (best built-in), physics, nuclei, membranes or a "
                   "checkpoint path")
    o.add_argument("--renderer", metavar="FILE", help="physics parameters fitted by `cellsynth calibrate`, used where "
                   "the model is physics (replaces the preset's renderer)")
    o.add_argument("--alpha", metavar="A[,A...]", help="quality level(s) alpha in µm; several (e.g. 10,100,500) "
                   "write one image per level, image_alpha10.tif ...")
    o.add_argument("--beta", type=_options.positive, help="positional map length outside the organism in µm")
    o.add_argument("--patch", type=_options.positive_int, nargs=3, metavar=("Z", "Y", "X"),
                   help="synthesis patch size in voxels")
    o.add_argument("--device", help="synthesis device, e.g. cpu or cuda (results may differ between devices)")
    o.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="set any preset value, e.g. simulate.weight_spread=0.2 (YAML value; repeatable)")
    for action in o._group_actions:  # each override keeps the preset's value unless given
        action.help += " (default: the preset's)"


def run(args: argparse.Namespace) -> None:
    """Run ``cellsynth dataset``."""
    from cellsynth import dataset

    if args.list_presets:
        _list_presets()
        return
    if not args.out:
        raise CellsynthError("give --out DIR for the data set (or --list-presets)")
    overrides = _overrides(args)
    if args.preset is None:
        if not args.resume:
            raise CellsynthError("give --preset NAME (see --list-presets), or --resume to complete a data set")
        if overrides or args.seed is not None or args.split is not None:
            raise CellsynthError("with --resume and no --preset, leave out the other parameters (they are recorded)")
        parameters = None
    else:
        parameters = dataset.apply_overrides(dataset.load_preset(args.preset), overrides)
    report = dataset.generate_dataset(
        args.out, parameters, args.count, seed=0 if args.seed is None else args.seed,
        split_fractions=args.split, workers=args.workers, scheduler=args.scheduler,
        scheduler_timeout_s=args.scheduler_timeout, resume=args.resume,
    )
    print(f"{args.out}: {len(report.made)} samples made, {len(report.skipped)} already there, "
          f"{len(report.failed)} failed, of {report.count} ({report.wall_s:.1f} s)")
    if report.failed:
        for index, error in sorted(report.failed.items()):
            print(f"  {dataset.sample_name(index)}: {error}", file=sys.stderr)
        raise CellsynthError(f"{len(report.failed)} samples failed (listed above; details in {args.out}/log.jsonl); "
                             "finished samples are intact: fix the cause and run the same command again")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    import yaml

    values = {key: getattr(args, dest) for dest, key in OVERRIDES.items() if getattr(args, dest) is not None}
    for item in args.set:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise CellsynthError(f"--set takes KEY=VALUE (e.g. simulate.weight_spread=0.2), got {item!r}")
        try:
            values[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise CellsynthError(f"--set {item!r}: the value is not valid YAML") from None
    return values


def _list_presets() -> None:
    from cellsynth import dataset

    for name in dataset.preset_names():
        preset = dataset.load_preset(name)
        shape = "x".join(str(s) for s in preset["shape"])
        voxel = ", ".join(f"{v:g}" for v in preset["voxel_size"])
        print(f"{name:<28} {preset['kind']:<9} {shape:>12} voxels of ({voxel}) µm  "
              f"{preset.get('description', '').strip().splitlines()[0] if preset.get('description') else ''}")
