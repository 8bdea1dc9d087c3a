"""Simulated versus real cells: nucleus sizes and sphericity, membrane cell sizes.

Real label volumes come from ../shared/data (see its README for sources and licences):
GoNuclear Arabidopsis ovule nuclei (Vijayan et al. 2024), Platynereis nuclei masks
(Ozpolat et al., voxel size unknown: 1 assumed, sizes in voxels), PlantSeg lateral root and
ovule membranes (Wolny et al. 2020; the lateral root's voxel size is not recorded: 1
assumed). Cells touching the volume border are cut by the crop and are left out.

Simulated samples are measured the same way: once with the `cellsynth simulate` defaults
(the paper's nuclei setting r ~ N(9, 1) µm), and once matched to the real volume (its
shape, voxel size, mean and sd of the radius or its mean cell diameter as --cell-size).

Measures per cell: volume-equivalent radius (nuclei) or diameter (cells) in µm, and
sphericity pi^(1/3) (6 V)^(2/3) / A of the marching-cubes surface (A, and V from the same
mesh) at the volume's own voxel size -- so voxelisation affects real and simulated alike.

Usage: python benchmarks/compare_real.py [DATA_DIR]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.measure import marching_cubes

from cellsynth.io import read_volume
from cellsynth.render.calibration import cell_diameter_um
from cellsynth.simulate.pipeline import simulate_sample

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SEEDS = (0, 1)


def cell_stats(
    labels: np.ndarray, voxel: tuple[float, float, float], interior: bool = True,
) -> dict[str, np.ndarray]:
    """Volume-equivalent diameter (µm) and sphericity per cell (``interior``: not at the border)."""
    labels = np.asarray(labels).astype(np.int64)
    border = np.unique(np.concatenate([np.moveaxis(labels, a, 0)[e].ravel() for a in range(3) for e in (0, -1)]))
    diameters, sphericity = [], []
    for index, box in enumerate(ndimage.find_objects(labels)):
        label = index + 1
        if box is None or (interior and label in border):
            continue
        cell = np.pad(labels[box] == label, 1)
        if cell.sum() < 8:
            continue
        verts, faces, _, _ = marching_cubes(cell.astype(np.float32), 0.5, spacing=voxel)
        tri = verts[faces]
        area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum()
        volume = abs(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum()) / 6
        diameters.append((6 * cell.sum() * np.prod(voxel) / np.pi) ** (1 / 3))
        sphericity.append(np.pi ** (1 / 3) * (6 * volume) ** (2 / 3) / area)
    return {"diameter": np.asarray(diameters), "sphericity": np.asarray(sphericity)}


def merge(stats: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([s[k] for s in stats]) for k in stats[0]}


def row(name: str, stats: dict[str, np.ndarray], unit: str, radius: bool) -> str:
    size = stats["diameter"] / (2 if radius else 1)
    if size.size == 0:
        return f"{name:58s} {0:5d}   (no cell away from the border)"
    return (f"{name:58s} {size.size:5d} {size.mean():8.2f} ± {size.std():5.2f} {unit:3s} "
            f"{stats['sphericity'].mean():8.3f} ± {stats['sphericity'].std():5.3f}")


def simulate(kind: str, shape, voxel, **params) -> list[np.ndarray]:
    """Label volumes of ``SEEDS`` simulated samples."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [simulate_sample(kind, shape, voxel, np.random.default_rng(seed), progress=False, **params).labels
                for seed in SEEDS]


def simulated(kind: str, shape, voxel, **params) -> dict[str, np.ndarray]:
    return merge([cell_stats(labels, voxel) for labels in simulate(kind, shape, voxel, **params)])


def membrane_row(name: str, volumes: list[np.ndarray], voxel, unit: str) -> str:
    stats = merge([cell_stats(labels, voxel, interior=False) for labels in volumes])
    chord = np.mean([cell_diameter_um(labels, np.asarray(voxel), "membranes") for labels in volumes])
    return (f"{name:58s} {stats['diameter'].size:5d} {chord:8.2f} {unit:3s}"
            f"{stats['diameter'].mean():8.2f} ± {stats['diameter'].std():5.2f} "
            f"{stats['sphericity'].mean():7.3f} ± {stats['sphericity'].std():5.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=DATA, help="folder of the real data (../shared/data)")
    data = parser.parse_args().data
    header = f"{'':58s} {'n':>5s} {'size (mean ± sd)':>20s} {'sphericity':>16s}"

    print("NUCLEI: volume-equivalent radius, sphericity (cells touching the border left out)")
    print(header)
    nuclei = [("Arabidopsis ovule (GoNuclear)", "nuclei/arabidopsis_ovule_nuclei_1135.h5", None),
              ("Platynereis (voxel size unknown: voxels)", "masks_only/platynereis_nuclei_labels_256x256x103.tif",
               (1.0, 1.0, 1.0))]
    for name, file, assumed in nuclei:
        labels, voxel = read_volume(data / file, dataset="label")
        voxel = tuple(voxel or assumed)
        real = cell_stats(labels, voxel)
        unit = "µm" if assumed is None else "vx"
        print(row(f"real: {name}", real, unit, radius=True))
        radius = real["diameter"] / 2
        sim = simulated("nuclei", labels.shape, voxel, organism="box", radius_um=float(radius.mean()),
                        radius_std_um=float(radius.std()), placement="uniform")
        print(row("  simulated, matched radius/sd/voxel, gamma 5, order 20", sim, unit, radius=True))
    sim = simulated("nuclei", (64, 128, 128), (1.0, 1.0, 1.0))
    print(row("simulated, CLI defaults (r ~ N(9, 1) µm, gamma 5, order 20)", sim, "µm", radius=True))
    for gamma in (1.0, 2.0, 3.0):
        sim = simulated("nuclei", (64, 128, 128), (1.0, 1.0, 1.0), smoothness=gamma)
        print(row(f"simulated, CLI defaults but gamma {gamma:g}", sim, "µm", radius=True))

    print("\nMEMBRANES: all cells (the real crops cut every cell): chord-based diameter (unbiased by the cuts),")
    print("volume-equivalent diameter and sphericity of the (partly cut) cells; simulated in the same shape and voxel")
    print(f"{'':58s} {'n':>5s} {'chord d':>11s} {'eq. d (mean ± sd)':>17s} {'sphericity':>15s}")
    membranes = [("lateral root (PlantSeg; voxel size unknown: voxels)", "membranes/lateral_root_membranes_train.h5",
                  (1.0, 1.0, 1.0)),
                 ("Arabidopsis ovule (PlantSeg)", "membranes/arabidopsis_ovule_membranes.h5", None)]
    for name, file, assumed in membranes:
        labels, voxel = read_volume(data / file, dataset="label")
        voxel = tuple(voxel or assumed)
        unit = "µm" if assumed is None else "vx"
        print(membrane_row(f"real: {name}", [labels], voxel, unit))
        size = cell_diameter_um(labels, np.asarray(voxel), "membranes")
        for placement in ("layered", "uniform"):
            volumes = simulate("membranes", labels.shape, voxel, organism="box", cell_size_um=size, placement=placement)
            print(membrane_row(f"  simulated, --cell-size {size:.2f} (real chord d), {placement}", volumes, voxel, unit))
    volumes = simulate("membranes", (64, 128, 128), (1.0, 1.0, 1.0))
    print(membrane_row("simulated, CLI defaults (cell size 10 µm, ellipsoid)", volumes, (1.0, 1.0, 1.0), "µm"))


if __name__ == "__main__":
    main()
