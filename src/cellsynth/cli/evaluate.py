"""``cellsynth evaluate``: how realistic are synthetic images? (metrics, figures, report)"""

from __future__ import annotations

import argparse
import json
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from cellsynth.cli import _options
from cellsynth.errors import CellsynthError

_VOLUME_SUFFIXES = (".tif", ".tiff", ".h5", ".hdf5", ".hdf", ".npy")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` subcommand."""
    p = subparsers.add_parser(
        "evaluate", help="realism metrics and a report: synthetic vs real images",
        description="Compare a synthetic image with its real counterpart (--synthetic: paired NRMSE, SSIM, ZNCC plus "
                    "distribution metrics), or generated data sets with real volumes of the same family (--dataset: "
                    "the unpaired realism benchmark: histogram W1, spectrum distance in cycles/µm, KID on a fixed "
                    "filter bank, structure CNR, and the real-vs-real floor from two halves of the real volumes). "
                    "Every image is normalized by its own 1st and 99.9th percentiles first. Writes metrics.json, "
                    "PNG figures (axes in µm) and report.html to --report.",
    )
    p.add_argument("--real", type=Path, nargs="+", metavar="FILE_OR_DIR",
                   help="real image (.tif, .h5, .npy, .ome.zarr); with --dataset several, or folders of them "
                        "(required)")
    p.add_argument("--synthetic", type=Path, metavar="FILE",
                   help="synthetic image of the same shape, or a sample folder holding image.tif "
                        "(this or --dataset is required)")
    p.add_argument("--dataset", type=Path, nargs="+", metavar="DIR",
                   help="data set folders written by `cellsynth dataset`, one set (model) each "
                        "(this or --synthetic is required)")
    p.add_argument("--image", default="image",
                   help="which image of each sample to evaluate, e.g. image_alpha100 (default image)")
    p.add_argument("--max-samples", type=_options.positive_int, metavar="N",
                   help="evaluate only the first N samples of each --dataset (default: all)")
    p.add_argument("--real-labels", type=Path, nargs="+", metavar="FILE",
                   help="instance labels of the --real files, in the same order, for the CNR (HDF5 files "
                        "are read from their --h5-labels dataset without this) (default: none)")
    p.add_argument("--h5-labels", default="label", metavar="NAME",
                   help="labels dataset read from real HDF5 files where present (default label)")
    p.add_argument("--membrane-thickness", type=_options.positive, metavar="UM",
                   help="wall thickness in µm drawn between real membrane labels for the CNR (default: the data "
                        "set's simulation thickness)")
    p.add_argument("--patch-um", type=_options.positive, nargs=3, default=(5.0, 5.0, 5.0), metavar=("Z", "Y", "X"),
                   help="KID patch size in µm (default 5 5 5; cut to the smallest volume)")
    p.add_argument("--patches", type=_options.positive_int, default=256, metavar="N",
                   help="KID patches per set (default 256)")
    p.add_argument("--seed", type=_options.seed, default=0, help="seed of the KID patch positions (default 0)")
    p.add_argument("--mask", type=Path, metavar="FILE",
                   help="restrict the paired metrics to this region (nonzero) (default: the whole volume)")
    p.add_argument("--foreground", type=Path, metavar="FILE",
                   help="organism region for the depth profile (default: from the sample, else Otsu on --real)")
    p.add_argument("--report", type=Path, metavar="DIR",
                   help="output folder; without it the metrics are only printed (default: none)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --report folder (only cellsynth output is ever replaced)")
    p.add_argument("--voxel-size", type=_options.positive, nargs=3, metavar=("Z", "Y", "X"),
                   help="voxel size in µm of the real images (overrides the files' own) (default: the files' own)")
    p.add_argument("--h5-dataset", default="raw", metavar="NAME", help="dataset read from HDF5 files (default raw)")
    p.add_argument("--percentiles", type=_options.percentile, nargs=2, default=(1.0, 99.9), metavar=("LOW", "HIGH"),
                   help="percentiles mapped to 0 and 1 before the metrics (default 1 99.9)")
    p.add_argument("--raw", action="store_true", help="paired only: no normalization, compare raw intensities")
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


def _real_files(paths: list[Path]) -> list[Path]:
    files = []
    for path in paths:
        if path.is_dir() and not str(path).endswith(".zarr"):
            found = sorted(p for p in path.iterdir()
                           if p.suffix.lower() in _VOLUME_SUFFIXES or p.name.endswith(".zarr"))
            if not found:
                raise CellsynthError(f"{path} holds no images (.tif, .h5, .npy, .ome.zarr)")
            files += found
        elif not path.exists():
            raise CellsynthError(f"real image not found: {path}")
        else:
            files.append(path)
    return files


def _real_volumes(args: argparse.Namespace, kind: str | None, thickness: float | None) -> list[Any]:
    """The real images with their labels (where known) as benchmark volumes."""
    import h5py

    from cellsynth import io
    from cellsynth.evaluate.realism import realism_volume
    from cellsynth.io import check_voxel_size

    files = _real_files(args.real)
    if args.real_labels and len(args.real_labels) != len(files):
        raise CellsynthError(f"--real-labels gives {len(args.real_labels)} files for {len(files)} real images; "
                             "give one labels file per real image, in the same order")
    out = []
    for i, f in enumerate(files):
        image, voxel, _ = _read(f, args.h5_dataset)
        voxel = args.voxel_size or voxel
        if voxel is None:
            raise CellsynthError(f"{f} records no voxel size; give one with --voxel-size Z Y X (µm)")
        labels = None
        if args.real_labels:
            labels = io.read_labels(args.real_labels[i])[0]
        elif f.suffix.lower() in (".h5", ".hdf5", ".hdf"):
            with h5py.File(f, "r") as h5:
                present = args.h5_labels in h5
            if present:
                labels = io.read_labels(f, args.h5_labels)[0]
        if labels is not None and kind is None:
            raise CellsynthError("the data sets record no kind; the real labels need one: evaluate data sets "
                                 "written by `cellsynth dataset`")
        out.append(realism_volume(image, check_voxel_size(voxel), kind=kind, labels=labels,
                                  membrane_thickness_um=thickness, name=f.name))
    return out


def _synthetic_sets(args: argparse.Namespace) -> tuple[dict[str, list[Any]], str | None, float | None]:
    """``{set name: volumes}`` of the --dataset folders, their kind and membrane thickness."""
    from cellsynth.evaluate import report

    loaded = [(path, *report.dataset_volumes(path, image=args.image, max_samples=args.max_samples))
              for path in args.dataset]
    kinds = {p.get("kind") for _, _, p in loaded} - {None}
    if len(kinds) > 1:
        raise CellsynthError(f"the data sets mix kinds ({', '.join(sorted(kinds))}); compare one family at a time")
    models = [str(p.get("synthesize", {}).get("model", path.name)) for path, _, p in loaded]
    names = [Path(m).stem if Path(m).suffix else m for m in models]
    if len(set(names)) < len(names):
        names = [path.name for path, _, _ in loaded]
    if len(set(names)) < len(names):
        raise CellsynthError("two --dataset folders have the same name; give folders with different names")
    thickness = next((p.get("simulate", {}).get("membrane_thickness") for _, _, p in loaded
                      if p.get("simulate", {}).get("membrane_thickness")), None)
    return {n: v for n, (_, v, _) in zip(names, loaded)}, next(iter(kinds), None), thickness


def run(args: argparse.Namespace) -> None:
    """Run ``cellsynth evaluate``."""
    from cellsynth import io
    from cellsynth.cli import resolved_config
    from cellsynth.outputs import check_output

    if not args.real:
        raise CellsynthError("give the real image with --real FILE")
    if (args.synthetic is None) == (args.dataset is None):
        raise CellsynthError("give exactly one of --synthetic FILE (paired) or --dataset DIR (unpaired benchmark)")
    if args.report is not None:
        check_output(args.report, overwrite=args.overwrite, flag="--report")
    # the report is assembled in a temporary folder and appears whole, or not at all
    with io.atomic_path(args.report, directory=True) if args.report is not None else nullcontext() as report_dir:
        summary = _evaluate(args, report_dir)
        if report_dir is not None:
            io.write_json(report_dir / "config.json", resolved_config(args), atomic=False)
    print(summary)
    if args.report is not None:
        print(f"report: {args.report / 'report.html'}")


def _evaluate(args: argparse.Namespace, report_dir: Path | None) -> str:
    """Compute the metrics (and the report in ``report_dir``); return the summary to print."""
    from cellsynth import io
    from cellsynth.evaluate import report
    from cellsynth.evaluate.realism import format_table

    inputs = {k: (str(v) if isinstance(v, Path) else " ".join(map(str, v)))
              for k, v in (("real", args.real), ("synthetic", args.synthetic), ("dataset", args.dataset),
                           ("mask", args.mask)) if v is not None}
    if args.dataset is not None:
        if args.raw:
            raise CellsynthError("--raw applies to the paired comparison; the benchmark normalises every volume")
        sets, kind, thickness = _synthetic_sets(args)
        real = _real_volumes(args, kind, args.membrane_thickness or thickness)
        results = report.evaluate_unpaired(sets, real, report_dir, inputs=inputs, patch_um=tuple(args.patch_um),
                                           patches_per_set=args.patches, seed=args.seed,
                                           percentiles=tuple(args.percentiles))
        return format_table(results)
    if len(args.real) != 1 or (args.real[0].is_dir() and not io.is_zarr(args.real[0])):
        raise CellsynthError("a paired comparison needs one real image file; give --real FILE")
    percentiles = None if args.raw else tuple(args.percentiles)
    real, real_voxel, _ = _read(args.real[0], args.h5_dataset)
    synthetic, synth_voxel, foreground = _read(args.synthetic, args.h5_dataset)
    voxel = args.voxel_size or real_voxel or synth_voxel
    if voxel is None:
        raise CellsynthError("neither image records a voxel size; give one with --voxel-size Z Y X (µm)")
    mask = io.read_labels(args.mask)[0] if args.mask is not None else None
    if args.foreground is not None:
        foreground = io.read_labels(args.foreground, "raw")[0]
    results = report.evaluate_pair(real, synthetic, voxel, report_dir, mask=mask, foreground=foreground,
                                   percentiles=percentiles, inputs=inputs)
    return json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in results.items()}, indent=2)
