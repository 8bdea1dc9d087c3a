"""``cellsynth calibrate REAL``: fit the physics renderer to a real volume and its labels."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from cellsynth.cli import _options
from cellsynth.errors import CellsynthError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``calibrate`` subcommand."""
    p = subparsers.add_parser(
        "calibrate", help="fit the physics renderer to a real volume and its labels (renderer.yaml)",
        description="Fit the physics renderer to a real image and its instance labels: PSF widths (z, y, x) in µm, "
                    "signal and tissue levels, per-cell brightness spread, texture and its scale, depth "
                    "attenuation, the noise (from the image's mean-variance relation) and, for membranes, the "
                    "apparent wall thickness. The last --holdout fraction along y is left out of the fit and only "
                    "scored. Writes a renderer file for `synthesize --model physics --renderer FILE`, `dataset "
                    "--renderer FILE` or a preset's renderer: key. Parameters the data cannot identify keep their "
                    "defaults, and the command says which.",
    )
    p.add_argument("real", type=Path, metavar="REAL", help="the real image (.tif, .h5, .npy, .ome.zarr)")
    p.add_argument("--kind", choices=("nuclei", "membranes"), help="what the image shows (required)")
    p.add_argument("--labels", type=Path, metavar="FILE_OR_DIR",
                   help="instance labels of REAL (a labels file, or a sample folder from `cellsynth annotate`); "
                        "default: the --h5-labels dataset of an HDF5 REAL")
    p.add_argument("--out", type=Path, metavar="FILE", help="the renderer file to write (.yaml) (required)")
    p.add_argument("--voxel-size", type=_options.positive, nargs=3, metavar=("Z", "Y", "X"),
                   help="voxel size in µm, needed where REAL records none (default: the one REAL records)")
    p.add_argument("--h5-dataset", default="raw", metavar="NAME", help="image dataset of an HDF5 REAL (default raw)")
    p.add_argument("--h5-labels", default="label", metavar="NAME",
                   help="labels dataset of an HDF5 REAL (default label)")
    p.add_argument("--holdout", type=_options.number(0, 0.9, high_open=True), default=0.25, metavar="FRACTION",
                   help="fraction of REAL at the end along y kept out of the fit and scored (default 0.25; 0 fits "
                        "on everything)")
    p.add_argument("--membrane-thickness", type=_options.positive, metavar="UM",
                   help="membranes: use this wall thickness in µm instead of fitting it (default: fitted)")
    p.add_argument("--preset", metavar="NAME_OR_FILE",
                   help="also refine the renderer so that renders of masks simulated with this preset (its simulate "
                        "values and shape, at REAL's voxel size) match REAL's fitted part: the PSF width along z, "
                        "the brightness and autofluorescence spreads, the signal level and the textures, which the "
                        "real labels bind only loosely (default: no refinement)")
    p.add_argument("--simulated-count", type=_options.positive_int, default=2, metavar="N",
                   help="samples simulated with --preset (default 2)")
    p.add_argument("--seed", type=_options.seed, default=0,
                   help="seed of the renders that score the fit and of the --preset samples (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=run)


def _labels(args: argparse.Namespace) -> Any:
    import h5py

    from cellsynth import io

    if args.labels is not None:
        if args.labels.is_dir() and not io.is_zarr(args.labels):
            return io.read_sample(args.labels).labels
        return io.read_volume(args.labels, "label")[0]
    if args.real.suffix.lower() in (".h5", ".hdf5", ".hdf"):
        with h5py.File(args.real, "r") as h5:
            if args.h5_labels in h5:
                return h5[args.h5_labels][...]
    kind = args.kind or "nuclei"
    raise CellsynthError(f"calibration needs the labels of {args.real}: give --labels FILE, or annotate it first "
                         f"(`cellsynth annotate {args.real} --kind {kind} --out annotated`, then --labels annotated)")


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces this calibration (for the renderer file's header)."""
    parts = ["cellsynth", "calibrate", str(args.real), "--kind", args.kind]
    for flag, value in (("--labels", args.labels),
                        ("--h5-dataset", None if args.h5_dataset == "raw" else args.h5_dataset),
                        ("--h5-labels", None if args.h5_labels == "label" else args.h5_labels),
                        ("--holdout", None if args.holdout == 0.25 else args.holdout),
                        ("--membrane-thickness", args.membrane_thickness), ("--preset", args.preset),
                        ("--simulated-count", None if args.preset is None or args.simulated_count == 2
                         else args.simulated_count), ("--seed", args.seed or None)):
        if value is not None:
            parts += [flag, str(value)]
    if args.voxel_size:
        parts += ["--voxel-size", *(f"{v:g}" for v in args.voxel_size)]
    parts += ["--out", str(args.out)]
    return " ".join(shlex.quote(p) for p in parts)


def run(args: argparse.Namespace) -> None:
    """Run ``cellsynth calibrate``."""
    import numpy as np

    from cellsynth import __version__, io
    from cellsynth.evaluate.realism import format_table
    from cellsynth.outputs import check_output
    from cellsynth.render.calibration import calibrate_renderer
    from cellsynth.render.renderer_file import write_renderer

    if args.kind is None:
        raise CellsynthError("give --kind nuclei or --kind membranes")
    if args.out is None:
        raise CellsynthError("give the renderer file to write with --out FILE (.yaml)")
    if args.out.suffix.lower() not in (".yaml", ".yml"):
        raise CellsynthError(f"--out {args.out} must end in .yaml")
    check_output(args.out, folder=False, overwrite=args.overwrite)
    if not args.real.exists():
        raise CellsynthError(f"real image not found: {args.real}")
    image, voxel = io.read_volume(args.real, args.h5_dataset)
    voxel = args.voxel_size or voxel
    if voxel is None:
        raise CellsynthError(f"{args.real} records no voxel size; give one with --voxel-size Z Y X (µm)")
    labels = np.asarray(_labels(args))
    simulated = None
    if args.preset is not None:
        from cellsynth.dataset import load_preset
        from cellsynth.render.calibration import preset_labels

        preset = load_preset(args.preset)
        if preset["kind"] != args.kind:
            raise CellsynthError(f"--preset {args.preset} simulates {preset['kind']}, not {args.kind}; give a "
                                 f"{args.kind} preset")
        simulated = preset_labels(preset, voxel, args.simulated_count, seed=args.seed)
    calibration = calibrate_renderer(np.asarray(image), labels, voxel, args.kind, holdout=args.holdout,
                                     membrane_thickness_um=args.membrane_thickness, simulated=simulated,
                                     seed=args.seed)
    command = _command(args)
    voxel_text = ", ".join(f"{float(v):g}" for v in voxel)
    header = (f"Physics renderer fitted to {args.real} by cellsynth {__version__}:\n  {command}\n"
              f"voxel size (z, y, x) {voxel_text} µm; fitted on {calibration.fit['fitted_region']}")
    write_renderer(args.out, calibration.parameters, kind=args.kind,
                   membrane_thickness_um=calibration.membrane_thickness_um, header=header,
                   extra={"source": str(args.real), "voxel_size_um": [float(v) for v in voxel],
                          "notes": calibration.notes, "fit": calibration.fit, "scores": calibration.scores})
    for name, value in calibration.parameters.items():
        print(f"  {name}: {value}")
    if calibration.membrane_thickness_um is not None:
        print(f"  membrane_thickness (simulation, µm): {calibration.membrane_thickness_um}")
    for note in calibration.notes:
        print(f"note: {note}")
    for part, scores in calibration.scores.items():
        rows = {k: v for k, v in scores.items() if isinstance(v, dict)}
        print(f"\nthe real labels rendered, against the real image, {part} part ({scores['region']}):")
        print(format_table({"rows": rows, "real_cnr": scores["real_cnr"]}))
    print(f"\nwrote {args.out}")
