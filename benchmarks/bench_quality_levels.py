"""Quality levels (alpha, Eq. 1) as depth decay: physics and a generator on an organism with a surface.

The paper's Fig. 14 renders one mask at several alphas; small alpha saturates the positional
map, so the specimen looks deeper (darker, blurrier) towards its inside. The family presets
are tissue crops (organism ``box``, positional map 1 everywhere), where alpha changes
nothing. This script simulates the family preset's cells in an ellipsoidal organism that
fills the volume's middle (so its surface is in view), renders it at each alpha with physics
and with a generator, and prints the mean intensity inside the structure per depth band
(distance to the organism surface, µm) and the decay from the outermost to the innermost band.

    python benchmarks/bench_quality_levels.py --preset arabidopsis_ovule_nuclei \\
        --model src/cellsynth/models/arabidopsis_ovule_nuclei.pt --png levels.png
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from cellsynth import dataset
from cellsynth.conditioning import signed_distance_um
from cellsynth.dataset.presets import simulate_arguments
from cellsynth.intensity import normalize_percentiles
from cellsynth.simulate.pipeline import simulate_sample
from cellsynth.synthesis import synthesize_image


def depth_bands(image: np.ndarray, mask: np.ndarray, depth: np.ndarray, edges: np.ndarray) -> list[float]:
    """Mean of ``image`` inside ``mask`` per band of ``depth`` (µm) between consecutive ``edges``."""
    return [float(image[(mask > 0) & (depth >= a) & (depth < b)].mean()) for a, b in zip(edges[:-1], edges[1:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", required=True, help="a family preset (its cells, voxel size and shape)")
    parser.add_argument("--model", help="a generator file (default: physics only)")
    parser.add_argument("--alphas", type=float, nargs="+", default=[10.0, 100.0, 1000.0])
    parser.add_argument("--png", help="also write xz centre slices (rows: models, columns: alphas)")
    args = parser.parse_args()
    preset = dataset.load_preset(args.preset)
    kind, shape, voxel = preset["kind"], tuple(preset["shape"]), tuple(preset["voxel_size"])
    extent = np.array(shape) * np.array(voxel)
    simulate = {**preset["simulate"], "organism": "ellipsoid"}
    simulate.pop("count", None)  # as many cells as fit the ellipsoid
    sample = simulate_sample(kind, shape, voxel, np.random.default_rng(0), progress=False,
                             **simulate_arguments(simulate), semi_axes_um=tuple(0.45 * extent))
    depth = signed_distance_um(sample.foreground, voxel)
    edges = np.linspace(0, float(depth.max()), 5)
    print(f"{args.preset} cells in an ellipsoid of semi-axes {np.round(0.45 * extent, 1)} µm; depth bands "
          f"{np.round(edges, 1)} µm; mean in structure per band (normalized image), outer / inner band")
    models = {"physics": "physics", **({"generator": args.model} if args.model else {})}
    slices = {}
    for name, model in models.items():
        for alpha in args.alphas:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                image = synthesize_image(sample.mask, sample.foreground, voxel, model=model, kind=kind, alpha=alpha,
                                         progress=False)
            image = normalize_percentiles(image)
            bands = depth_bands(image, sample.mask, depth, edges)
            note = "  (extrapolated: the positional map leaves the trained range)" if caught else ""
            print(f"{name:10} alpha {alpha:7g}: " + " ".join(f"{b:.3f}" for b in bands)
                  + f"  outer/inner {bands[0] / max(bands[-1], 1e-6):.2f}{note}")
            slices[(name, alpha)] = image[:, shape[1] // 2]
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(len(models), len(args.alphas), squeeze=False,
                                 figsize=(3 * len(args.alphas), 1.2 + 3 * len(models) * extent[0] / extent[2]))
        for (name, alpha), plane in slices.items():
            ax = axes[list(models).index(name), args.alphas.index(alpha)]
            ax.imshow(plane, cmap="gray", vmin=0, vmax=1, extent=(0, extent[2], extent[0], 0))
            ax.set_title(f"{name}, alpha {alpha:g} µm", fontsize=8)
            ax.set_xlabel("x (µm)", fontsize=7)
            ax.set_ylabel("z (µm)", fontsize=7)
        fig.tight_layout()
        fig.savefig(args.png, dpi=100)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
