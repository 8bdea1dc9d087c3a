"""``cellsynth synthesize INPUT``: render the microscope image of an annotation.

INPUT is a sample folder (from ``cellsynth simulate``), or a labels or mask file together
with ``--kind``; for a file, :func:`cellsynth.synthesis.annotation_from_labels` gives the
structure mask and the organism foreground (``--foreground FILE``, or the labelled cells
closed across the gaps between them, the organism training gives real volumes).
:func:`cellsynth.synthesis.synthesize_to_file` writes the image.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from cellsynth.cli import _options
from cellsynth.errors import CellsynthError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``synthesize``."""
    p = subparsers.add_parser(
        "synthesize", help="render a synthetic microscope image from a sample folder or a labels file",
        description="Render the fluorescence image of an annotation, patch by patch without seams. INPUT is a "
                    "sample folder (the image goes into it as image.tif and sample.json records the "
                    "parameters) or a labels/mask file with --kind and --out. Sizes are in voxels (z y x) "
                    "unless a unit is given.",
    )
    p.add_argument("input", metavar="INPUT", help="sample folder, or labels/mask file (.tif, .h5, .npy, .ome.zarr)")
    p.add_argument("--out", metavar="FILE",
                   help="output image (.tif or .ome.zarr); default for a sample folder: image.tif in it")
    p.add_argument("--kind", choices=("nuclei", "membranes"),
                   help="structure of a labels file (a sample folder records its own) (default: the sample's)")
    p.add_argument("--foreground", metavar="FILE",
                   help="organism mask (0/1) for a labels file (default: the region around the labelled cells)")
    p.add_argument("--foreground-closing", type=_options.positive, metavar="UM",
                   help="without --foreground: the organism is the labelled cells closed by a ball of this radius "
                        "in µm (default: twice the median distance between neighbouring cells)")
    p.add_argument("--membrane-thickness", type=_options.positive, metavar="UM",
                   help="membrane wall thickness in µm for a membranes labels file (default: the --renderer file's "
                        "apparent thickness, else the simulation's)")
    p.add_argument("--voxel-size", type=_options.positive, nargs=3, metavar=("Z", "Y", "X"),
                   help="voxel size in µm where the file records none (default: the file's own)")
    g = p.add_argument_group("model")
    g.add_argument("--model", default="default", metavar="NAME|PATH",
                   help="physics, default (the best built-in model for the family, or the kind, on the unpaired "
                        "realism benchmark: see models/defaults.json), nuclei, membranes (the shipped generators), "
                        "or a generator file from `cellsynth train` (default: default)")
    g.add_argument("--family", metavar="NAME",
                   help="the family of real volumes mimicked, e.g. lateral_root_membranes: chooses what default "
                        "means (default: the one a sample folder made by `cellsynth dataset` records, else none)")
    g.add_argument("--renderer", metavar="FILE",
                   help="physics parameters fitted to a microscope by `cellsynth calibrate` (physics model only) "
                        "(default: the physics model's defaults)")
    g.add_argument("--alpha", type=_options.positive, metavar="UM",
                   help="positional map decay length inside the organism in µm (Eq. 1); small values render "
                        "a deeper, poorer image (default: the model's own, 100 for physics)")
    g.add_argument("--beta", type=_options.positive, metavar="UM",
                   help="positional map decay length outside the organism in µm (default: the model's own, "
                        "100 for physics)")
    g.add_argument("--seed", type=_options.seed, default=0, help="seed of noise and brightness (default 0)")
    g = p.add_argument_group("tiling")
    g.add_argument("--patch", type=_options.positive_int, nargs=3, metavar=("Z", "Y", "X"),
                   help="patch size in voxels (default: the model's, e.g. 64 128 128 for generators)")
    g.add_argument("--overlap", type=_options.nonnegative_int, nargs=3, metavar=("Z", "Y", "X"),
                   help="minimum overlap of the kept patch regions in voxels (default: from the model's halo)")
    g.add_argument("--crop", type=_options.nonnegative_int, nargs=3, metavar=("Z", "Y", "X"),
                   help="voxels dropped at patch sides facing another patch (default: from the model's halo)")
    g.add_argument("--blend", choices=("linear", "gaussian", "hann", "constant"), default="linear",
                   help="blending weights across overlaps (default: linear, the paper's)")
    g.add_argument("--batch-size", type=_options.positive_int, default=4, help="patches per forward pass (default 4)")
    g.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    g.add_argument("--bf16", action="store_true", help="run the model under bfloat16 autocast")
    g = p.add_argument_group("output")
    g.add_argument("--format", choices=("tif", "zarr"),
                   help="output container (default: from --out, else the sample's format, else tif); zarr "
                        "streams volumes larger than memory into an OME-Zarr image with a multiscale pyramid (into "
                        "the sample's sample.ome.zarr, beside its label images)")
    g.add_argument("--ngff", choices=("0.4", "0.5"), default="0.4",
                   help="OME-NGFF version of a new .ome.zarr image: 0.4 (Zarr format 2, read by most viewers) or 0.5 "
                        "(Zarr format 3); a sample's own OME-Zarr image keeps its version (default 0.4)")
    g.add_argument("--dtype", choices=("uint16", "float32"), default="uint16",
                   help="output pixel type: uint16 (0-65535) or float32 in [0, 1] (default uint16)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing output image")
    g.add_argument("--memory-budget", type=_options.positive, default=1.0, metavar="GIB",
                   help="memory in GiB the synthesis may hold at a time when it streams into OME-Zarr (slabs are "
                        "sized from it; about 0.5 GiB more go to the program itself) (default 1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    """Run ``cellsynth synthesize``."""

    from cellsynth import io
    from cellsynth.cli import resolved_config
    from cellsynth.outputs import check_output
    from cellsynth.render.registry import describe_model
    from cellsynth.synthesis import check_synthesis, synthesize_to_file

    started = time.perf_counter()
    source = Path(args.input)
    sample_dir = source if (source / "sample.json").is_file() else None
    if sample_dir is None and source.is_dir() and not io.is_zarr(source):
        raise CellsynthError(f"{source} is not a sample folder (no sample.json); give a sample folder or a labels file")
    if sample_dir is None and not source.exists():
        raise CellsynthError(f"input not found: {source}; give a sample folder or a labels/mask file")
    recorded = io.read_json(sample_dir / "sample.json") if sample_dir is not None else None
    if recorded is not None and not isinstance(recorded.get("files", {}), dict):
        raise CellsynthError(f"{sample_dir}/sample.json is damaged (its files are not a mapping of volume names to "
                             "files); re-create the sample with `cellsynth simulate`")
    out = _output(args, sample_dir, recorded.get("format") if recorded else None)
    into_sample_image = sample_dir is not None and out.name == io.SAMPLE_ZARR
    if into_sample_image:  # the image levels of the sample's own OME-Zarr image
        if "image" in recorded["files"] and not args.overwrite:  # type: ignore[index]
            raise CellsynthError(f"{out} holds an image; pass --overwrite to replace it")
    else:
        check_output(out, folder=False, overwrite=args.overwrite)
    if sample_dir is not None:
        mask, foreground, voxel, kind, meta = _from_sample(sample_dir, args)
    else:
        mask, foreground, voxel, kind = _from_file(source, args)
        meta = None
    if args.renderer is not None and args.model != "physics":
        raise CellsynthError(f"--renderer sets the physics model; add --model physics (the model is {args.model})")
    family = args.family or (meta or {}).get("family")
    settings = {"kind": kind, "alpha": args.alpha, "beta": args.beta, "seed": args.seed, "patch": args.patch,
                "overlap": args.overlap, "crop": args.crop, "blend": args.blend, "batch_size": args.batch_size,
                "device": args.device, "autocast": args.bf16}
    if io.volume_format(out) == "zarr":  # streamed slab by slab: within the budget
        settings["memory_budget"] = int(args.memory_budget * 2**30)
    plan = check_synthesis(tuple(mask.shape), voxel, model=args.model, renderer=args.renderer, family=family,
                           **settings)
    model, grid = plan.model, plan.grid
    settings["alpha"], settings["beta"] = plan.alpha, plan.beta  # the model's own where none was given
    if into_sample_image and "image" in meta["files"]:  # until the new image is complete, the sample lists none
        meta["files"].pop("image")  # type: ignore[index]
        meta.pop("synthesis", None)  # type: ignore[union-attr]
        io.write_json(sample_dir / "sample.json", meta)  # type: ignore[arg-type, operator]
    synthesize_to_file(out, mask, foreground, voxel, model=model, dtype=args.dtype, ngff=args.ngff, **settings)

    # what determines the image, and nothing that differs between runs (the time goes to stderr)
    record = {
        "model": describe_model(model), **{k: v for k, v in settings.items() if k not in ("batch_size", "device")},
        "patch": grid.patch, "overlap": grid.overlap, "crop": grid.crop,
        "redundancy": round(grid.redundancy, 3), "patches": grid.n_patches, "dtype": args.dtype,
        "config": resolved_config(args),
    }
    if meta is not None and args.out is None:
        meta.setdefault("files", {})["image"] = out.name
        meta["synthesis"] = record
        io.write_json(sample_dir / "sample.json", meta)
    else:
        io.write_json(out.with_name(out.name + ".json"), {"input": str(source), "voxel_size_um": list(voxel), **record})
    print(f"wrote {out} ({'x'.join(map(str, mask.shape))} voxels, {grid.n_patches} patches, "
          f"{grid.redundancy:.2f}x the volume) in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def _from_sample(folder: Path, args: argparse.Namespace) -> tuple[Any, Any, tuple, str, dict]:
    from cellsynth import io

    sample = io.read_sample(folder, lazy=True)
    kind = sample.metadata.get("kind")
    if args.kind and kind and args.kind != kind:
        raise CellsynthError(f"{folder} is a {kind} sample; drop --kind {args.kind} or give a {args.kind} sample")
    kind = args.kind or kind
    if kind is None:
        raise CellsynthError(f"{folder}/sample.json records no kind; pass --kind nuclei or --kind membranes")
    if args.foreground or args.voxel_size:
        raise CellsynthError("--foreground and --voxel-size apply to a labels file; a sample folder has its own")
    return sample.mask, sample.foreground, sample.voxel_size, kind, sample.metadata


def _from_file(path: Path, args: argparse.Namespace) -> tuple[Any, Any, tuple, str]:
    import numpy as np

    from cellsynth import io
    from cellsynth.synthesis import annotation_from_labels, is_membrane_mask

    labels, voxel = io.read_labels(path, "raw")
    voxel = _voxel(voxel, args.voxel_size, path)
    thickness = args.membrane_thickness
    if thickness is None and args.renderer is not None and args.kind == "membranes":
        from cellsynth.render.renderer_file import read_renderer

        thickness = read_renderer(args.renderer).get("membrane_thickness_um")
    foreground = None
    if args.foreground:
        foreground, fg_voxel = io.read_labels(args.foreground, "raw")
        if fg_voxel is not None and not np.allclose(fg_voxel, voxel, rtol=1e-3):
            raise CellsynthError(f"foreground voxel size {tuple(fg_voxel)} µm differs from the labels' "
                                 f"{tuple(voxel)} µm; give a foreground of the same grid")
    if labels.dtype.kind != "f" and is_membrane_mask(labels, args.kind):
        print(f"note: {path} holds only 0 and 1; using it as the membrane mask", file=sys.stderr)
    try:
        mask, foreground = annotation_from_labels(
            labels, args.kind, voxel, foreground=foreground, foreground_closing_um=args.foreground_closing,
            membrane_thickness_um=thickness)
    except CellsynthError as err:
        raise CellsynthError(f"{path}: {err}") from None
    return mask, foreground, voxel, args.kind


def _voxel(recorded: Any, given: Any, path: Path) -> tuple[float, float, float]:
    import numpy as np

    from cellsynth.io import check_voxel_size

    if given is not None:
        if recorded is not None and not np.allclose(recorded, given, rtol=1e-3):
            raise CellsynthError(f"--voxel-size {tuple(given)} does not match the {tuple(recorded)} µm recorded in "
                                 f"{path}; drop --voxel-size or fix the file")
        return check_voxel_size(given)
    if recorded is None:
        raise CellsynthError(f"{path} records no voxel size; pass --voxel-size Z Y X in µm")
    return check_voxel_size(recorded)


def _output(args: argparse.Namespace, sample_dir: Path | None, sample_format: str | None) -> Path:
    from cellsynth import io

    if sample_dir is None and args.kind is None:
        raise CellsynthError("a labels file needs --kind nuclei or --kind membranes")
    if sample_dir is None and args.out is None:
        raise CellsynthError("a labels file needs --out FILE for the image")
    if args.out is None:  # into the sample folder, in its own format unless --format says otherwise
        file_format = args.format or sample_format or "tif"
        return sample_dir / io.sample_image_file(sample_dir, file_format)  # type: ignore[arg-type, operator]
    out = Path(args.out)
    suffix_format = io.volume_format(out)
    if suffix_format is None:
        raise CellsynthError(f"--out {out} must end in .tif or .ome.zarr")
    if args.format and args.format != suffix_format:
        raise CellsynthError(f"--format {args.format} contradicts --out {out}; drop one")
    return out
