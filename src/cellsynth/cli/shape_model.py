"""``cellsynth shape-model fit|sample``: statistical shape models (Eq. 4) from existing masks."""

from __future__ import annotations

import argparse
from pathlib import Path

from cellsynth.cli import _options

DEFAULT_RAYS = 500  # keep in step with cellsynth.shapes.shape_model.DEFAULT_RAYS (not imported: fast --help)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``shape-model`` subcommand with ``fit`` and ``sample``."""
    p = subparsers.add_parser(
        "shape-model", help="fit or sample a statistical shape model (organism or cell shapes)",
        description="Statistical shape model (Eq. 4): rays from each shape's centroid, mean and PCA of the ray "
                    "radii; new shapes vary each mode within +-3 standard deviations.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    fit = actions.add_parser(
        "fit", help="fit a model to masks or label volumes",
        description="Fit a shape model. Each label of a label volume is one training shape; a 0/1 mask file is "
                    "one shape. At least 3 shapes are needed. Shapes must contain their centroid (star-shaped) "
                    "and be consistently oriented, or use --align.",
    )
    fit.add_argument("masks", nargs="+", metavar="MASK", type=Path,
                     help="mask or label volumes (.tif, .h5 with a 'label' dataset, .ome.zarr, .npy)")
    fit.add_argument("--out", type=Path, required=True, metavar="MODEL.npz", help="model file to write")
    fit.add_argument("--voxel-size", type=_options.positive, nargs=3, metavar=("Z", "Y", "X"),
                     help="voxel size in µm (default: from the files, else 1 1 1)")
    fit.add_argument("--rays", type=_options.positive_int, default=DEFAULT_RAYS,
                     help=f"rays per shape (default {DEFAULT_RAYS})")
    fit.add_argument("--sh-order", type=_options.nonnegative_int,
                     help="SH order used to voxelise samples (default: the largest with (L+1)^2 <= rays/2)")
    fit.add_argument("--align", action="store_true",
                     help="turn each shape into its principal axes first (longest along x, shortest along z): "
                          "for shapes of arbitrary orientation")
    fit.add_argument("--overwrite", action="store_true", help="replace an existing model file")
    fit.set_defaults(func=run)
    sample = actions.add_parser(
        "sample", help="draw a new shape from a model and write it as a mask",
        description="Draw mode weights from N(0, variance) truncated to +-3 standard deviations and voxelise "
                    "the shape at the centre of the volume.",
    )
    sample.add_argument("model", type=Path, metavar="MODEL.npz", help="model written by `shape-model fit`")
    sample.add_argument("--out", type=Path, required=True, metavar="MASK",
                        help="mask to write (.tif or .ome.zarr), uint8 0/1")
    sample.add_argument("--shape", type=_options.positive_int, nargs=3, required=True, metavar=("Z", "Y", "X"),
                        help="volume shape in voxels")
    sample.add_argument("--voxel-size", type=_options.positive, nargs=3, metavar=("Z", "Y", "X"),
                        help="voxel size in µm (default: the training data's)")
    sample.add_argument("--seed", type=_options.seed, default=0, help="random seed (default 0)")
    sample.add_argument("--modes", type=_options.positive_int, help="vary only the first N modes (default all)")
    sample.add_argument("--random-rotation", action="store_true", help="rotate the shape uniformly at random")
    sample.add_argument("--overwrite", action="store_true", help="replace an existing mask file")
    sample.set_defaults(func=run)


def _config_path(out: Path) -> Path:
    """``name.json`` beside an output ``name.npz`` / ``name.tif`` / ``name.ome.zarr``."""
    name = out.name
    for suffix in (".ome.zarr", ".zarr", ".tiff", ".tif", ".npz"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return out.with_name(f"{name}.json")


def run(args: argparse.Namespace) -> None:
    """Run ``cellsynth shape-model fit|sample``."""
    import numpy as np

    from cellsynth import io
    from cellsynth.cli import resolved_config
    from cellsynth.errors import CellsynthError
    from cellsynth.outputs import check_output
    from cellsynth.shapes.ellipsoid import random_rotation
    from cellsynth.shapes.shape_model import ShapeModel, fit_shape_model, shapes_from_labels
    from cellsynth.simulate.organism import check_shape

    config = resolved_config(args)
    check_output(args.out, folder=False, overwrite=args.overwrite)
    check_output(_config_path(args.out), folder=False, overwrite=args.overwrite)
    if args.action == "fit":
        if args.out.suffix.lower() != ".npz":
            raise CellsynthError(f"the model file must end in .npz, got {args.out}")
        shapes, voxels = [], set()
        for path in args.masks:
            array, voxel = io.read_labels(path)
            voxels.add(tuple(round(v, 9) for v in voxel) if voxel is not None else None)
            shapes += shapes_from_labels(np.asarray(array))
        if args.voxel_size is not None:
            voxel = io.check_voxel_size(args.voxel_size)
        elif len(voxels - {None}) > 1:
            raise CellsynthError(f"the masks have different voxel sizes {sorted(voxels - {None})}; "
                                 "resample them or pass --voxel-size")
        else:
            voxel = next(iter(voxels - {None}), (1.0, 1.0, 1.0))
        model = fit_shape_model(shapes, voxel, n_rays=args.rays, sh_order=args.sh_order, align=args.align)
        model.save(args.out)
        total = float(model.variances.sum())
        info = {"command": "shape-model fit", "config": config, "shapes": len(shapes), "voxel_size_um": list(voxel),
                "modes": model.n_modes, "rays": len(model.mean), "sh_order": model.sh_order, "aligned": model.aligned,
                "mean_radius_um": float(model.mean.mean()),
                "explained_variance": [float(v / total) for v in model.variances] if total > 0 else []}
        io.write_json(_config_path(args.out), info)
        print(f"fitted {len(shapes)} shapes: {model.n_modes} modes, "
              f"mean radius {model.mean.mean():.3g} µm -> {args.out}")
        return
    if io.volume_format(args.out) is None:
        raise CellsynthError(f"--out {args.out} must end in .tif or .ome.zarr")
    model = ShapeModel.load(args.model)
    shape = check_shape(args.shape)
    voxel = io.check_voxel_size(args.voxel_size if args.voxel_size is not None else model.voxel_size)
    rng = np.random.default_rng(args.seed)
    rotation = random_rotation(rng) if args.random_rotation else None
    weights = model.sample_weights(rng, args.modes)
    radii = model.radii(weights)
    mask = model.voxelize(radii, shape, voxel, rotation=rotation)
    border = [mask[0], mask[-1], mask[:, 0], mask[:, -1], mask[:, :, 0], mask[:, :, -1]]
    if any(face.any() for face in border):
        needed = np.ceil(2 * radii.max() / np.asarray(voxel)).astype(int) + 3
        raise CellsynthError(f"the sampled shape is cut by the border of a {shape} volume; "
                             f"use --shape {' '.join(map(str, np.maximum(needed, shape)))} or larger")
    io.write_volume(args.out, mask, voxel, label=True)
    io.write_json(_config_path(args.out), {"command": "shape-model sample", "config": config,
                                           "voxel_size_um": list(voxel), "voxels_inside": int(mask.sum())})
    print(f"sampled a shape of {int(mask.sum())} voxels -> {args.out}")
