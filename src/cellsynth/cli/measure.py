"""``cellsynth measure``: tissue statistics of labels, a comparison with real ones, a preset fit."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from cellsynth.cli import _options
from cellsynth.errors import CellsynthError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``measure`` subcommand."""
    p = subparsers.add_parser(
        "measure", help="tissue statistics of instance labels; --compare with real labels; --fit a preset",
        description="Measure cell count, volume (mean, CV), principal-axis elongation and orientation, "
                    "sphericity, neighbours, wall gaps (membranes) and nearest-neighbour distance of instance "
                    "labels (real or simulated). Statistics of whole cells use the cells that touch no face of "
                    "the volume (membranes: nor the background), weighted against the size bias of cropping; "
                    "the others include cut cells and depend on the crop size. --compare REAL measures LABELS "
                    "(simulated) and REAL in crops of the same size in µm and prints them side by side with "
                    "the difference; --fit PRESET fits the preset's tissue parameters to LABELS (real) and "
                    "writes the fitted preset.",
    )
    p.add_argument("labels", nargs="+", type=Path, metavar="LABELS",
                   help="label volumes (.tif, .h5, .npy, .ome.zarr) or sample folders (their labels.tif)")
    p.add_argument("--kind", choices=("nuclei", "membranes"), required=True,
                   help="nuclei, or membranes (labels are whole cells)")
    p.add_argument("--voxel-size", type=_options.positive, nargs=3, metavar=("Z", "Y", "X"),
                   help="voxel size of LABELS in µm, for files that record none (a recorded one wins) (default: the recorded one)")
    p.add_argument("--dataset", default="label", metavar="NAME", help="dataset read from HDF5 files (default label)")
    p.add_argument("--crop", nargs=3, metavar=("Z", "Y", "X"),
                   help="measure only this region of each LABELS file: a slice per axis in voxels, "
                        "e.g. ':' '0:150' ':' for the first 150 y-planes (default: the whole volume)")
    g = p.add_argument_group("comparison with real labels")
    g.add_argument("--compare", nargs="+", type=Path, metavar="REAL", help="real label volumes to compare LABELS with (default: none)")
    g.add_argument("--real-voxel-size", type=_options.positive, nargs=3, metavar=("Z", "Y", "X"),
                   help="voxel size of REAL files that record none, in µm (default: the recorded one)")
    g.add_argument("--real-crop", nargs=3, metavar=("Z", "Y", "X"), help="region of each REAL file (as --crop) (default: the whole volume)")
    g.add_argument("--crops", type=_options.positive_int, default=8, metavar="N",
                   help="crops measured per volume when sizes differ (default %(default)s)")
    g.add_argument("--crop-size", type=_options.positive, nargs=3, metavar=("Z", "Y", "X"),
                   help="compare in crops of this size in µm (default: the smallest extent of all volumes)")
    g.add_argument("--margin", type=_options.nonnegative, default=0.0, metavar="UM",
                   help="keep the crops of LABELS (with --fit: of the simulated volumes) this many µm from their "
                        "faces, or centre them where a volume is too short: a simulated volume's faces cut no "
                        "cell, a real one's do; about a cell diameter (default 0: crops anywhere)")
    g.add_argument("--inside-tissue", action="store_true",
                   help="use only crops lying inside the labelled tissue (real labels with background "
                        "against dense simulated tissue)")
    g = p.add_argument_group("preset fit")
    g.add_argument("--fit", metavar="PRESET",
                   help="fit the tissue parameters of this preset (name or .yaml) to LABELS; needs --preset-out (default: no fit)")
    g.add_argument("--preset-out", type=Path, metavar="FILE", help="write the fitted preset here (.yaml) (default: none; required with --fit)")
    g.add_argument("--fit-shape", type=_options.positive_int, nargs=3, metavar=("Z", "Y", "X"),
                   help="volume simulated per fit round, in voxels (default: the preset's shape)")
    g.add_argument("--fit-statistics", choices=("auto", "whole", "crops", "both"), default="auto",
                   help="membranes: fit the shape of whole cells, of cells as cut by crops of --crop-size, or "
                        "both (mean volume and orientation of whole cells, shape of cut ones) "
                        "(default auto: whole cells where LABELS hold 30 or more)")
    g.add_argument("--fit-parameters", nargs="+", metavar="NAME",
                   help="fit only these simulation parameters (e.g. cell_size); the others keep the preset's "
                        "values (default: all that the labels inform)")
    g.add_argument("--rounds", type=_options.positive_int, default=8, metavar="N", help="fit rounds (default %(default)s)")
    g.add_argument("--samples", type=_options.positive_int, default=2, metavar="N",
                   help="volumes simulated per round (default %(default)s)")
    g.add_argument("--seed", type=_options.seed, default=0, help="first simulation seed of the fit (default 0)")
    g = p.add_argument_group("output")
    g.add_argument("--out", type=Path, metavar="DIR",
                   help="write statistics.json (and with --compare histograms.png) to this folder (default: print only)")
    g.add_argument("--overwrite", action="store_true", help="replace existing output files")
    g.add_argument("--no-sphericity", action="store_true", help="skip the sphericity (the slowest statistic)")
    p.set_defaults(func=run)


def parse_crop(spec: list[str] | None) -> tuple[slice, ...] | None:
    """Three ``start:stop`` strings (either may be empty) as slices; None for no crop.

    Examples
    --------
    >>> parse_crop([":", "0:150", "10:"])
    (slice(None, None, None), slice(0, 150, None), slice(10, None, None))
    """
    if spec is None:
        return None
    slices = []
    for item in spec:
        parts = item.split(":")
        try:
            if len(parts) != 2:
                raise ValueError
            start, stop = (int(v) if v.strip() else None for v in parts)
        except ValueError:
            raise CellsynthError(f"a crop is three slices such as ':' '0:150' ':', got {' '.join(spec)!r}") from None
        slices.append(slice(start, stop))
    return tuple(slices)


def read_labels(path: Path, dataset: str, voxel_size: Any, crop: tuple[slice, ...] | None) -> tuple[Any, Any]:
    """Labels and voxel size from a label file or a sample folder, cropped."""
    import numpy as np

    from cellsynth import io

    if path.is_dir() and not io.is_zarr(path):
        if not (path / "labels.tif").is_file() and not (path / "labels.ome.zarr").exists():
            raise CellsynthError(f"{path} is a folder without labels.tif; give a label file or a sample folder")
        labels, voxel = io.read_volume(path / ("labels.tif" if (path / "labels.tif").is_file() else "labels.ome.zarr"))
    else:
        labels, voxel = io.read_volume(path, dataset)
    voxel = voxel or voxel_size
    if voxel is None:
        raise CellsynthError(f"{path} records no voxel size; give it with --voxel-size Z Y X (µm)")
    labels = np.asarray(labels)
    if crop is not None:
        labels = labels[crop]
        if labels.size == 0:
            raise CellsynthError(f"the crop leaves nothing of {path} (shape {np.shape(labels)}); check --crop")
    if not labels.any():
        raise CellsynthError(f"{path} has no labelled cell (every voxel is 0{' in the crop' if crop else ''}); "
                             "give an instance label volume (0 = background, 1, 2, ... = cells)")
    return labels, io.check_voxel_size(voxel)


def _check_out(path: Path | None, overwrite: bool) -> None:
    """--out may be an existing folder (measure adds its files); only statistics.json is replaced."""
    from cellsynth.outputs import check_output

    if path is None:
        return
    check_output(path, overwrite=overwrite, existing_ok=True)  # a folder, in a place that can be written
    if (path / "statistics.json").exists() and not overwrite:
        raise CellsynthError(f"{path / 'statistics.json'} exists; choose another --out or pass --overwrite")


def run(args: argparse.Namespace) -> None:
    """Run ``cellsynth measure``."""
    from cellsynth import io
    from cellsynth.cli import resolved_config
    from cellsynth.evaluate import tissue

    if args.fit and args.compare:
        raise CellsynthError("--fit and --compare do different jobs; run them one at a time")
    if args.fit and not args.preset_out:
        raise CellsynthError("--fit needs --preset-out FILE.yaml to write the fitted preset to")
    if args.preset_out and not args.fit:
        raise CellsynthError("--preset-out writes a fitted preset: give the preset to fit with --fit")
    if args.preset_out is not None:
        if args.preset_out.suffix not in (".yaml", ".yml"):
            raise CellsynthError(f"--preset-out must be a .yaml file, got {args.preset_out}")
        from cellsynth.outputs import check_output

        check_output(args.preset_out, folder=False, overwrite=args.overwrite, flag="--preset-out")
    _check_out(args.out, args.overwrite)
    crop = parse_crop(args.crop)
    volumes = [read_labels(path, args.dataset, args.voxel_size, crop) for path in args.labels]
    sphericity = not args.no_sphericity
    result: dict[str, Any] = {"command": "measure", "config": resolved_config(args)}

    if args.fit:
        result["fit"] = _fit(args, volumes)
    elif args.compare:
        real_crop = parse_crop(args.real_crop)
        real = [read_labels(path, args.dataset, args.real_voxel_size, real_crop) for path in args.compare]
        comparison = tissue.compare_tissue(real, volumes, args.kind, crops=args.crops, crop_um=args.crop_size,
                                           inside_tissue=args.inside_tissue, sphericity=sphericity,
                                           margin_um=args.margin)
        print(comparison.table())
        result["comparison"] = comparison.to_dict()
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            from cellsynth.evaluate.plots import plot_tissue_distributions

            plot_tissue_distributions(comparison.distributions, args.out / "histograms.png")
    else:
        tables = [tissue.measure_cells(labels, voxel, args.kind, sphericity=sphericity) for labels, voxel in volumes]
        summaries = {str(path): tissue.summarize(table) for path, table in zip(args.labels, tables)}
        if len(tables) > 1:
            summaries["pooled"] = tissue.summarize(tables)
        print(tissue.summary_table({Path(k).name if k != "pooled" else k: v for k, v in summaries.items()}))
        result["statistics"] = summaries
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        io.write_json(args.out / "statistics.json", result)


def _fit(args: argparse.Namespace, volumes: list[tuple[Any, Any]]) -> dict[str, Any]:
    """Fit a preset's tissue parameters to the measured labels and write the fitted preset."""
    from cellsynth.dataset.presets import load_preset, preset_values, simulate_arguments, simulate_keys
    from cellsynth.simulate.fit import fit_tissue

    preset = load_preset(args.fit)
    if preset["kind"] != args.kind:
        raise CellsynthError(f"preset {args.fit} simulates {preset['kind']}, not {args.kind}; choose a matching --kind")
    shape = tuple(args.fit_shape) if args.fit_shape else tuple(preset["shape"])

    def progress(index: int, record: dict[str, Any]) -> None:
        values = ", ".join(f"{k} {v}" for k, v in preset_values(record["parameters"]).items())
        stats = ", ".join(f"{k} {v:.4g}" for k, v in record["statistics"].items())
        print(f"round {index + 1}/{args.rounds}: {values} -> {stats}", file=sys.stderr, flush=True)

    only = None
    if args.fit_parameters is not None:
        unknown = sorted(set(args.fit_parameters) - set(simulate_keys()))
        if unknown:
            raise CellsynthError(f"unknown simulation parameters {', '.join(unknown)} for --fit-parameters")
        only = list(simulate_arguments({name: None for name in args.fit_parameters}))
    fit = fit_tissue(volumes, args.kind, shape, tuple(preset["voxel_size"]), simulate_arguments(preset["simulate"]),
                     crop_um=args.crop_size, inside_tissue=args.inside_tissue, statistics=args.fit_statistics,
                     only=only, rounds=args.rounds, samples=args.samples, crops=args.crops,
                     margin_um=args.margin, seed=args.seed,
                     callback=progress)
    report = fit.report(lambda argument: next(iter(preset_values({argument: None}))))
    print(report)
    preset["simulate"] = {k: v for k, v in preset_values(fit.parameters).items() if v is not None}
    command = "cellsynth " + " ".join(shlex.quote(str(a)) for a in getattr(args, "_argv", ["measure", "..."]))
    write_preset(args.preset_out, preset, [f"Tissue parameters fitted with `{command}`:", *report.splitlines()])
    print(f"wrote {args.preset_out}")
    return {"parameters": preset["simulate"], "history": fit.history,
            "comparisons": {k: c.to_dict() for k, c in fit.comparisons.items()}}


def write_preset(path: Path, preset: dict[str, Any], comment: list[str]) -> None:
    """Write a preset as YAML with a comment block on top (atomically)."""
    import yaml

    from cellsynth import io

    body = yaml.safe_dump(json.loads(json.dumps(preset)), sort_keys=False, default_flow_style=None, allow_unicode=True)
    text = "".join(f"# {line}\n" for line in comment) + body
    with io.atomic_path(path) as tmp:
        Path(tmp).write_text(text)
