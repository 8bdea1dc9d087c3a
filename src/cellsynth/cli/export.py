"""``cellsynth export``: a data set in the folder layout of StarDist, Cellpose, nnU-Net or PlantSeg."""

from __future__ import annotations

import argparse
from pathlib import Path

from cellsynth.cli import _options


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` subcommand."""
    p = subparsers.add_parser(
        "export", help="write a data set in the layout of StarDist, Cellpose, nnU-Net v2 or PlantSeg",
        description="Write the samples of a cellsynth data set (from `cellsynth dataset`) in the training-data "
                    "layout of a segmentation tool, keeping the data set's train / val / test splits and the voxel "
                    "size (µm) in every file. stardist: SPLIT/images + SPLIT/masks TIFF pairs; cellpose: "
                    "SPLIT/NAME.tif "
                    "+ NAME_masks.tif (3D, or 2D z-planes with --slices); nnunet: DatasetXXX_Name/imagesTr, labelsTr, "
                    "imagesTs, labelsTs, dataset.json (TIFF + spacing JSON, nnU-Net v2's Tiff3DIO); plantseg: "
                    "SPLIT/NAME.h5 with raw, label and element_size_um.",
    )
    p.add_argument("dataset", type=Path, metavar="DATASET", help="data set folder (holding dataset.json)")
    p.add_argument("--to", choices=("stardist", "cellpose", "nnunet", "plantseg"), required=True,
                   help="the tool whose layout to write")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="export folder to create (for nnunet: the nnUNet_raw folder that receives DatasetXXX_Name)")
    p.add_argument("--alpha", type=_options.positive, metavar="UM",
                   help="quality level alpha (µm) of the images to export (default: the data set's first)")
    p.add_argument("--slices", action="store_true",
                   help="cellpose: write the 2D z-planes that hold labels instead of 3D volumes")
    p.add_argument("--dataset-id", type=_options.positive_int, default=501, metavar="N",
                   help="nnunet: data set number 1-999 (default 501; above 500 avoids nnU-Net's own)")
    p.add_argument("--name", metavar="NAME", help="nnunet: data set name (default: the data set folder's name)")
    p.add_argument("--classes", choices=("boundary", "foreground"), default="boundary",
                   help="nnunet: labels background/structure/boundary (default) or background/structure")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out folder (only cellsynth output is ever replaced)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    """Run ``cellsynth export``."""
    from cellsynth.export import MANIFEST, export_dataset
    from cellsynth.io import read_json

    out = export_dataset(args.dataset, args.out, args.to, alpha=args.alpha, overwrite=args.overwrite,
                         slices=args.slices, dataset_id=args.dataset_id, dataset_name=args.name, classes=args.classes)
    files = read_json(out / MANIFEST)["files"]
    counts = ", ".join(f"{len(v)} {k}" for k, v in files.items())
    print(f"{args.dataset} -> {out} ({args.to}): files {counts}")
