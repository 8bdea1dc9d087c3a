"""``cellsynth annotate``: automatic annotation of a real image (nuclei or membranes)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cellsynth.cli import _options


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``annotate`` subcommand."""
    p = subparsers.add_parser(
        "annotate", help="make training masks from an unannotated real image",
        description="Automatic, training-free annotation of a real 3D image. nuclei: multi-scale LoG detection "
                    "(radii in µm) and a seeded watershed with a local half-maximum threshold; membranes: a seeded "
                    "watershed on the membrane signal. Writes a sample folder (labels, mask, foreground, "
                    "positions.csv) whose positions.csv feeds `cellsynth simulate nuclei --positions`.",
    )
    p.add_argument("image", type=Path, metavar="IMAGE", help="the real image (.tif, .h5, .npy, .ome.zarr)")
    p.add_argument("--kind", choices=("nuclei", "membranes"), required=False, default="nuclei",
                   help="what the image shows (default nuclei)")
    p.add_argument("--out", type=Path, metavar="DIR", help="sample folder to write (required)")
    p.add_argument("--voxel-size", type=_options.positive, nargs=3, metavar=("Z", "Y", "X"),
                   help="voxel size in µm (overrides the file's own; needed where it records none) "
                        "(default: the file's own)")
    p.add_argument("--h5-dataset", default="raw", metavar="NAME", help="dataset read from HDF5 files (default raw)")
    p.add_argument("--radius", type=_options.positive, nargs=2, default=(1.5, 4.0), metavar=("MIN", "MAX"),
                   help="nuclei: smallest and largest nucleus radius in µm (default 1.5 4)")
    p.add_argument("--threshold", type=_options.nonnegative, default=0.07,
                   help="nuclei: minimum LoG blob response in normalized intensity (default 0.07; lower finds more)")
    p.add_argument("--level", type=_options.fraction, default=0.55,
                   help="nuclei: fraction between a nucleus's local background and peak that bounds it "
                        "(default 0.55; lower gives larger nuclei)")
    p.add_argument("--min-distance", type=_options.positive, metavar="UM",
                   help="nuclei: minimum distance between seeds in µm (default the smallest radius)")
    p.add_argument("--seed-depth", type=_options.nonnegative, default=0.05,
                   help="membranes: how much darker than its walls (normalized intensity) a cell must be to get "
                        "its own seed (default 0.05; raise it where cells are split, lower it where they merge)")
    p.add_argument("--smoothing", type=_options.nonnegative, metavar="UM",
                   help="Gaussian smoothing in µm before the watershed (default 0.25 nuclei, 0.3 membranes)")
    p.add_argument("--membrane-thickness", type=_options.positive, metavar="UM",
                   help="membranes: wall thickness of the mask (default: the simulation's, 1 µm)")
    p.add_argument("--keep-outside", action="store_true",
                   help="membranes: keep cells outside the estimated organism region (crops inside tissue)")
    p.add_argument("--percentiles", type=_options.percentile, nargs=2, default=(1.0, 99.9), metavar=("LOW", "HIGH"),
                   help="intensity percentiles mapped to 0 and 1 (default 1 99.9)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out folder (only cellsynth output is ever replaced)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    """Run ``cellsynth annotate``."""
    from cellsynth import io
    from cellsynth.annotate import annotate_membranes, annotate_nuclei
    from cellsynth.cli import resolved_config
    from cellsynth.errors import CellsynthError
    from cellsynth.outputs import check_output

    check_output(args.out, overwrite=args.overwrite)
    image, voxel = io.read_volume(args.image, args.h5_dataset)
    voxel = args.voxel_size or voxel
    if voxel is None:
        raise CellsynthError(f"{args.image} records no voxel size; give one with --voxel-size Z Y X (µm)")
    options = {"percentiles": tuple(args.percentiles)}
    if args.smoothing is not None:
        options["smoothing_um"] = args.smoothing
    if args.kind == "nuclei":
        sample = annotate_nuclei(image, voxel, radius_um=tuple(args.radius), threshold=args.threshold, level=args.level,
                                 min_distance_um=args.min_distance, **options)
    else:
        if args.min_distance is not None:
            raise CellsynthError("--min-distance applies to nuclei; membranes use --seed-depth")
        sample = annotate_membranes(image, voxel, seed_depth=args.seed_depth,
                                    membrane_thickness_um=args.membrane_thickness,
                                    cut_to_foreground=not args.keep_outside, **options)
    sample.metadata["image"] = str(args.image)
    sample.metadata["config"] = resolved_config(args)
    io.write_sample(args.out, sample, overwrite=args.overwrite)
    print(f"{args.kind}: {int(sample.labels.max())} labelled in {args.image} -> {args.out}")
