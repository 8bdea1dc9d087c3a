"""``cellsynth simulate nuclei|membranes``: write a simulated annotation sample folder."""

from __future__ import annotations

import argparse
import sys
import time

from cellsynth.cli import _options

# Defaults shown in the help; they mirror cellsynth.simulate.pipeline and
# cellsynth.simulate.membranes (not imported here so that the command starts fast).
# tests/test_simulate_cli.py checks that they agree.
HELP_DEFAULTS = {
    "radius": 9.0, "radius_std": 1.0, "smoothness": 5.0, "sh_order": 20, "membrane_cell_size": 10.0,
    "membrane_thickness": 1.0, "weight_spread": 0.2, "nucleus_cell_size_factor": 4.0, "packing_ratio": 1.47,
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``simulate nuclei`` and ``simulate membranes``."""
    parser = subparsers.add_parser(
        "simulate", help="simulate annotation masks: SH nuclei or weighted-Voronoi membranes",
        description="Simulate a fully annotated sample folder (labels.tif, mask.tif, foreground.tif, "
                    "positions.csv, sample.json): an organism, cell positions inside it, and nuclei or "
                    "membranes at those positions. Arrays are (Z, Y, X); sizes are in µm.",
    )
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    nuclei = kinds.add_parser(
        "nuclei", help="spherical-harmonic nuclei (Eq. 5-7)",
        description="Random star-convex nuclei from real spherical harmonics at layer-wise, uniform or "
                    "given positions. Nuclei never overlap; each label is one connected piece.",
    )
    membranes = kinds.add_parser(
        "membranes", help="whole cells by a weighted Voronoi tessellation (Eq. 3) and their membranes",
        description="Cells filling the organism as a multiplicatively weighted Voronoi tessellation; "
                    "labels are whole cells, the mask is their walls.",
    )
    for sub, kind in ((nuclei, "nuclei"), (membranes, "membranes")):
        _add_common(sub, kind)
        sub.set_defaults(func=run)
    d = HELP_DEFAULTS
    g = nuclei.add_argument_group("nuclei")
    g.add_argument("--radius", type=_options.positive, default=d["radius"], metavar="UM",
                   help="mean nucleus radius in µm (default %(default)s; the paper's r ~ N(9, 1))")
    g.add_argument("--radius-std", type=_options.nonnegative, default=d["radius_std"], metavar="UM",
                   help="standard deviation of the nucleus radius in µm (default %(default)s)")
    g.add_argument("--smoothness", type=_options.nonnegative, default=d["smoothness"], metavar="GAMMA",
                   help="SH smoothness gamma >= 0: small is irregular, large near-spherical (default %(default)s)")
    g.add_argument("--sh-order", type=_options.nonnegative_int, default=d["sh_order"], metavar="L",
                   help="spherical-harmonic order l, 0-100 (default %(default)s)")
    g.add_argument("--law", choices=("power", "exponential"), default="power",
                   help="decay of the SH power with order l: power l^-gamma (default) or exponential "
                        "exp(-gamma (l-1))")
    g.add_argument("--elongation", type=_options.positive, default=1.0, metavar="RATIO",
                   help="long-to-short axis ratio of the nuclei, volume preserving (default 1: no elongation)")
    g.add_argument("--orientation", type=_options.finite, nargs=3, metavar=("Z", "Y", "X"),
                   help="long-axis direction of all elongated nuclei (default: random per nucleus)")
    g.add_argument("--cell-size", type=_options.positive, metavar="UM",
                   help=f"mean diameter of the cell around each nucleus in µm; centres are at least "
                        f"cell-size/{d['packing_ratio']:g} apart (default {d['nucleus_cell_size_factor']:g} x --radius)")
    g = membranes.add_argument_group("membranes")
    g.add_argument("--cell-size", type=_options.positive, default=d["membrane_cell_size"], metavar="UM",
                   help=f"mean cell diameter in µm (volume-equivalent); centres are at least "
                        f"cell-size/{d['packing_ratio']:g} apart (default %(default)s)")
    g.add_argument("--membrane-thickness", type=_options.positive, metavar="UM",
                   help=f"membrane wall thickness in µm, symmetric about the wall (default {d['membrane_thickness']:g})")
    g.add_argument("--weight-spread", type=_options.nonnegative, metavar="S",
                   help=f"Voronoi weights gamma_j ~ U(1-S, 1+S), the cells' sizes; 0 gives flat walls "
                        f"(default {d['weight_spread']:g})")
    g.add_argument("--packing", choices=("points", "cells"), default="points",
                   help="points: seeds cell-size/1.47 apart, then Eq. 3 (the paper, default); cells: seeds of "
                        "non-overlapping ellipsoids with each cell's size and shape, each cell measuring distance "
                        "in its own metric (elongated, oriented cells; the options below)")
    g = membranes.add_argument_group("cell shape (with --packing cells)")
    g.add_argument("--elongation", type=_options.positive, default=1.0, metavar="RATIO",
                   help="long-to-short axis ratio of every cell's ellipsoid, volume preserving (default 1: round)")
    g.add_argument("--flatness", type=_options.finite, default=0.0, metavar="F",
                   help="middle axis = short axis x elongation^F: 0 cigars (default), 1 discs, 0.5 triaxial")
    g.add_argument("--orientation", type=_options.finite, nargs=3, metavar=("Z", "Y", "X"),
                   help="long-axis direction of all cells (default: random, see --orientation-coherence)")
    g.add_argument("--orientation-coherence", type=_options.nonnegative, default=0.0, metavar="UM",
                   help="cells closer than about this many µm point alike (a smooth random field); "
                        "0 orients every cell independently (default)")
    g.add_argument("--stretch", type=_options.positive, nargs=3, metavar=("Z", "Y", "X"),
                   help="stretch the whole tissue by these factors (scaled to a product of 1), e.g. 0.75 1.15 1.15 "
                        "for cells flatter along z (default: none)")
    g.add_argument("--orientation-bias", type=_options.nonnegative, nargs=3, metavar=("Z", "Y", "X"),
                   help="factors on the random long axes before normalisation, e.g. 0.3 1 1 for long axes "
                        "mostly in the xy plane (default: none)")
    g.add_argument("--size-gradient", type=_options.finite, nargs=3, metavar=("Z", "Y", "X"),
                   help="change of the log cell size per µm along z, y and x from the volume's centre (1/µm), "
                        "e.g. 0 -0.01 0 for cells 1 %% smaller per µm along y; --cell-size is the size at the "
                        "centre (default: none)")


def _add_common(sub: argparse.ArgumentParser, kind: str) -> None:
    g = sub.add_argument_group("volume and output")
    g.add_argument("--out", metavar="DIR", help="sample folder to write (required)")
    g.add_argument("--shape", type=_options.positive_int, nargs=3, default=[64, 192, 192], metavar=("Z", "Y", "X"),
                   help="volume shape in voxels (default 64 192 192)")
    g.add_argument("--voxel-size", type=_options.positive, nargs=3, default=[1.0, 1.0, 1.0], metavar=("Z", "Y", "X"),
                   help="voxel size in µm (default 1 1 1)")
    g.add_argument("--seed", type=_options.seed, default=0,
                   help="random seed; the same seed gives the same files (default 0)")
    g.add_argument("--format", choices=("tif", "zarr"), default="tif",
                   help="volume format: ImageJ TIFFs, or one OME-Zarr image sample.ome.zarr with the labels, mask "
                        "and foreground as label layers, for volumes too large for memory (default tif)")
    g.add_argument("--ngff", choices=("0.4", "0.5"), default="0.4",
                   help="OME-NGFF version with --format zarr: 0.4 (Zarr format 2, read by most viewers) or 0.5 "
                        "(Zarr format 3) (default 0.4)")
    g.add_argument("--overwrite", action="store_true",
                   help="replace an existing sample folder (only cellsynth output is ever replaced)")
    g = sub.add_argument_group("organism and positions")
    g.add_argument("--organism", default="ellipsoid", metavar="SPEC",
                   help="organism: box (the whole volume), ellipsoid, sh (embryo-like blob), a foreground mask "
                        "file or a shape model .npz (default ellipsoid)")
    g.add_argument("--semi-axes", type=_options.positive, nargs=3, metavar=("Z", "Y", "X"),
                   help="semi-axes of the ellipsoid organism in µm (default: fit the volume)")
    g.add_argument("--center", type=_options.finite, nargs=3, metavar=("Z", "Y", "X"),
                   help="centre of the ellipsoid or sh organism in µm (default: the volume's centre; "
                        "z on the deepest face with a tall z semi-axis makes a dome)")
    g.add_argument("--placement", choices=("layered", "uniform"), default="layered",
                   help="cell positions: layers from the organism surface inwards (default) or uniform "
                        "Poisson-disk in the whole organism")
    g.add_argument("--positions", metavar="CSV",
                   help="use these cell positions instead: columns z_um,y_um,x_um (µm) or z_px,y_px,x_px / "
                        "z,y,x (voxels); every point must lie in the organism "
                        "(default: none; --placement places the cells)")
    g.add_argument("--count", type=_options.positive_int, metavar="N",
                   help=f"number of {kind} (default: as many as fit; a warning says when fewer fit)")
    g.add_argument("--margin", type=_options.nonnegative, default=0.0, metavar="UM",
                   help="with --organism box: simulate the tissue this many µm wider on every side and cut the "
                        "sample from its middle, so that the faces cut cells as in a crop of real tissue; about a "
                        "cell diameter (default 0: no margin, no cell crosses a face)")


def run(args: argparse.Namespace) -> None:
    """Simulate the sample and write it atomically; print a one-line summary."""
    import warnings

    import numpy as np

    from cellsynth.cli import resolved_config
    from cellsynth.io import write_sample
    from cellsynth.outputs import check_output
    from cellsynth.simulate.pipeline import simulate_sample

    start = time.perf_counter()
    check_output(args.out, overwrite=args.overwrite)
    out = args.out
    params = dict(organism=args.organism, semi_axes_um=args.semi_axes, center_um=args.center,
                  placement=args.placement, positions=args.positions, count=args.count, cell_size_um=args.cell_size,
                  margin_um=args.margin)
    if args.kind == "nuclei":
        params.update(radius_um=args.radius, radius_std_um=args.radius_std, smoothness=args.smoothness,
                      sh_order=args.sh_order, law=args.law, elongation=args.elongation, orientation=args.orientation)
    else:
        params.update(membrane_thickness_um=args.membrane_thickness, weight_spread=args.weight_spread,
                      packing=args.packing, elongation=args.elongation, flatness=args.flatness,
                      orientation=args.orientation, orientation_coherence_um=args.orientation_coherence,
                      stretch=args.stretch, orientation_bias=args.orientation_bias,
                      size_gradient=args.size_gradient)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sample = simulate_sample(args.kind, args.shape, args.voxel_size, np.random.default_rng(args.seed), **params)
    for warning in caught:
        if issubclass(warning.category, UserWarning):
            print(f"cellsynth: warning: {warning.message}", file=sys.stderr)
    sample.metadata = {**sample.metadata, "seed": args.seed, "command": "simulate " + args.kind,
                       "config": resolved_config(args)}
    write_sample(out, sample, file_format=args.format, overwrite=args.overwrite, ngff=args.ngff)
    cells = int(len(sample.positions.get("label", ())))
    shape = "x".join(str(s) for s in np.shape(sample.labels))
    voxel = "x".join(f"{v:g}" for v in sample.voxel_size)
    print(f"wrote {cells} {args.kind} in a {shape} volume ({voxel} µm voxels) to {out} "
          f"in {time.perf_counter() - start:.1f} s")
