"""``cellsynth evaluate``: how realistic are synthetic images? (metrics, figures, report)"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cellsynth.errors import CellsynthError

_VOLUME_SUFFIXES = (".tif", ".tiff", ".h5", ".hdf5", ".hdf", ".npy")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` subcommand."""
    p = subparsers.add_parser(
        "evaluate", help="realism metrics and a report: synthetic vs real images",
        description="Compare a synthetic image with its real counterpart (--synthetic: NRMSE, SSIM, ZNCC plus "
                    "distribution metrics) or a generated data set with real images (--dataset: distribution "
                    "metrics only). Both images are normalized by their own 1st and 99.9th percentiles first. "
                    "Writes metrics.json, PNG figures (axes in µm) and report.html to --report.",
    )
    p.add_argument("--real", type=Path, metavar="FILE_OR_DIR",
                   help="real image (.tif, .h5, .npy, .ome.zarr); with --dataset also a folder of them")
    p.add_argument("--synthetic", type=Path, metavar="FILE",
                   help="synthetic image of the same shape, or a sample folder holding image.tif")
    p.add_argument("--dataset", type=Path, metavar="DIR", help="a data set folder written by `cellsynth dataset`")
    p.add_argument("--image", default="image",
                   help="which image of each sample to evaluate, e.g. image_alpha100 (default image)")
    p.add_argument("--max-samples", type=int, metavar="N", help="evaluate only the first N samples of --dataset")
    p.add_argument("--mask", type=Path, metavar="FILE", help="restrict the paired metrics to this region (nonzero)")
    p.add_argument("--foreground", type=Path, metavar="FILE",
                   help="organism region for the depth profile (default: from the sample, else Otsu on --real)")
    p.add_argument("--report", type=Path, metavar="DIR", help="output folder; without it the metrics are only printed")
    p.add_argument("--voxel-size", type=float, nargs=3, metavar=("Z", "Y", "X"),
                   help="voxel size in µm (overrides the files' own)")
    p.add_argument("--h5-dataset", default="raw", metavar="NAME", help="dataset read from HDF5 files (default raw)")
    p.add_argument("--percentiles", type=float, nargs=2, default=(1.0, 99.9), metavar=("LOW", "HIGH"),
                   help="percentiles mapped to 0 and 1 before the metrics (default 1 99.9)")
    p.add_argument("--raw", action="store_true", help="no normalization: compare raw intensities (data range 1)")
    p.set_defaults(func=run)


def _read(path: Path, h5_dataset: str) -> tuple[Any, Any, Any]:
    """(image, voxel size or None, foreground or None) from a file or a sample folder."""
    from cellsynth import io

    if path.is_dir() and not io.is_zarr(path):
        sample = io.read_sample(path)
        if sample.image is None:
            raise CellsynthError(f"sample {path} has no image.tif; synthesise it first (`cellsynth synthesize`)")
        return sample.image, sample.voxel_size, sample.foreground
    image, voxel = io.read_volume(path, h5_dataset)
    return image, voxel, None


def _real_images(path: Path, h5_dataset: str, voxel_size: Any) -> list[tuple[Any, Any]]:
    from cellsynth.io import check_voxel_size

    if path.is_dir() and not str(path).endswith(".zarr"):
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in _VOLUME_SUFFIXES or p.name.endswith(".zarr"))
        if not files:
            raise CellsynthError(f"{path} holds no images (.tif, .h5, .npy, .ome.zarr)")
    else:
        files = [path]
    out = []
    for f in files:
        image, voxel, _ = _read(f, h5_dataset)
        voxel = voxel_size or voxel
        if voxel is None:
            raise CellsynthError(f"{f} records no voxel size; give one with --voxel-size Z Y X (µm)")
        out.append((image, check_voxel_size(voxel)))
    return out


def run(args: argparse.Namespace) -> None:
    """Run ``cellsynth evaluate``."""
    from cellsynth import io
    from cellsynth.cli import resolved_config
    from cellsynth.evaluate import report

    if args.real is None:
        raise CellsynthError("give the real image with --real FILE")
    if (args.synthetic is None) == (args.dataset is None):
        raise CellsynthError("give exactly one of --synthetic FILE (paired) or --dataset DIR (distribution metrics)")
    percentiles = None if args.raw else tuple(args.percentiles)
    inputs = {k: str(v) for k, v in (("real", args.real), ("synthetic", args.synthetic), ("dataset", args.dataset),
                                     ("mask", args.mask)) if v is not None}
    if args.dataset is not None:
        reals = _real_images(args.real, args.h5_dataset, args.voxel_size)
        results = report.evaluate_dataset(args.dataset, reals, args.report, image=args.image,
                                          percentiles=percentiles, max_samples=args.max_samples, inputs=inputs)
    else:
        if args.real.is_dir() and not io.is_zarr(args.real):
            raise CellsynthError(f"--real {args.real} is a folder; a paired comparison needs one image file")
        real, real_voxel, _ = _read(args.real, args.h5_dataset)
        synthetic, synth_voxel, foreground = _read(args.synthetic, args.h5_dataset)
        voxel = args.voxel_size or real_voxel or synth_voxel
        if voxel is None:
            raise CellsynthError("neither image records a voxel size; give one with --voxel-size Z Y X (µm)")
        mask = io.read_volume(args.mask, "label")[0] if args.mask is not None else None
        if args.foreground is not None:
            foreground = io.read_volume(args.foreground)[0]
        results = report.evaluate_pair(real, synthetic, voxel, args.report, mask=mask, foreground=foreground,
                                       percentiles=percentiles, inputs=inputs)
    if args.report is not None:
        io.write_json(args.report / "config.json", resolved_config(args))
    print(json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in results.items()}, indent=2))
    if args.report is not None:
        print(f"report: {args.report / 'report.html'}")
