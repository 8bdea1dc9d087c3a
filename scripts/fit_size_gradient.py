"""Fit a membrane preset's cell size and cell-size gradient to the count trend of real labels.

Real tissue is not always uniform: in the lateral root labels, slabs of 8.1 µm along y hold
more cells the further along y they lie. This script cuts the part of a real label volume
that may be fitted (by default the first 75 % along the axis; the rest is held out) into
slabs along the axis, and fits ``cell_size`` and ``size_gradient`` of a preset
(:func:`cellsynth.simulate.fit.fit_size_gradient`) so that simulated volumes give the same
counts in the same slabs. The real volume is a crop of a larger tissue, whose faces cut cells;
a simulated volume's faces do not (its cells' centres all lie inside), so the simulated volume
is the real one grown by ``--margin-um`` on every side, with the same centre (the gradient's
origin), and is measured in the real volume's place. Comparing the simulated held-out part
with the real one then extrapolates the trend (say so where it is reported).

Usage::

    python scripts/fit_size_gradient.py LABELS --preset NAME [--voxel-size Z Y X] [--axis y]
        [--fit-fraction 0.75] --slab-um 8.125 [--margin-um 6] [--rounds 10] [--samples 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from cellsynth import dataset, io
from cellsynth.simulate.fit import fit_size_gradient


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labels", type=Path, help="real label volume (.h5 dataset 'label', .tif, ...)")
    parser.add_argument("--preset", required=True, help="membrane preset to start from (name or .yaml)")
    parser.add_argument("--voxel-size", type=float, nargs=3, help="voxel size in µm where the file records none")
    parser.add_argument("--axis", choices=("z", "y", "x"), default="y", help="axis of the gradient (default y)")
    parser.add_argument("--fit-fraction", type=float, default=0.75,
                        help="fit on this first fraction along the axis; the rest is never read (default 0.75)")
    parser.add_argument("--slab-um", type=float, required=True, help="slab thickness in µm (e.g. the held-out part's)")
    parser.add_argument("--margin-um", type=float, default=6.0,
                        help="simulate the real volume grown by this on every side (µm, default 6)")
    parser.add_argument("--rounds", type=int, default=10, help="fit rounds (default 10)")
    parser.add_argument("--samples", type=int, default=2, help="volumes simulated per round (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    args = parser.parse_args()

    labels, voxel = io.read_volume(args.labels, "label")
    voxel = tuple(voxel or args.voxel_size)
    axis = "zyx".index(args.axis)
    shape = np.shape(labels)
    stop = int(round(args.fit_fraction * shape[axis]))
    real = np.ascontiguousarray(np.asarray(labels)[tuple(slice(0, stop) if a == axis else slice(None)
                                                         for a in range(3))])  # the held-out rest is not read
    preset = dataset.load_preset(args.preset)
    margin = [int(round(args.margin_um / v)) for v in preset["voxel_size"]]
    grown = tuple(n + 2 * m for n, m in zip(shape, margin))
    region = tuple(slice(m, m + (stop if a == axis else n)) for a, (n, m) in enumerate(zip(shape, margin)))
    print(f"simulated volume {grown} voxels; the real part is its region {region}", file=sys.stderr)

    def progress(index: int, record: dict) -> None:
        print(f"round {index + 1}/{args.rounds}: cell size {record['cell_size_um']:.4g}, gradient "
              f"{record['size_gradient']:+.5f} -> mean log count {record['mean_log_count']:.4f}, "
              f"slope {record['slope']:+.5f}", file=sys.stderr, flush=True)

    fit = fit_size_gradient(real, voxel, grown, tuple(preset["voxel_size"]),
                            dataset.simulate_arguments({k: v for k, v in preset["simulate"].items() if k != "margin"}),
                            axis=axis, slab_um=args.slab_um,
                            region=region, rounds=args.rounds, samples=args.samples, seed=args.seed,
                            callback=progress)
    print(fit.report())
    values = dataset.preset_values(fit.parameters)
    print(f"simulate: cell_size: {values['cell_size']}, size_gradient: {values['size_gradient']}")


if __name__ == "__main__":
    main()
