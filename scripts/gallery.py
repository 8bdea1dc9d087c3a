"""Make the README gallery: slices of simulated masks and synthetic images next to real data.

For every preset one sample is generated exactly as ``cellsynth dataset`` makes it (seed 0),
once per model (by default the preset's default model and the physics renderer: the same
masks, so the images can be compared); presets that mimic a real volume family are shown
beside a slice of that real volume (``../shared/data``, see its README for sources and
licences). Writes ``docs/gallery/<preset>.png``.

Usage::

    python scripts/gallery.py [--out docs/gallery] [--data ../shared/data] [--presets nuclei membranes ...]
                              [--models default physics]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from cellsynth import dataset, io
from cellsynth.render.registry import default_model_name

ROOT = Path(__file__).resolve().parents[1]
REAL = {  # preset -> real volume of that family (HDF5 with raw and label)
    "arabidopsis_ovule_nuclei": "nuclei/arabidopsis_ovule_nuclei_1135.h5",
    "arabidopsis_ovule_membranes": "membranes/arabidopsis_ovule_membranes.h5",
    "lateral_root_membranes": "membranes/lateral_root_membranes_train.h5",
}


def label_colors(labels: np.ndarray) -> np.ndarray:
    """RGB image of an instance label slice: a fixed random colour per label, black background."""
    rng = np.random.default_rng(0)
    palette = np.concatenate([[[0, 0, 0]], 0.25 + 0.75 * rng.random((int(labels.max()) + 1, 3))])
    return palette[labels.astype(np.int64)]


def normalized(image: np.ndarray) -> np.ndarray:
    """Stretch an image slice from its 1st to 99.9th percentile to [0, 1]."""
    lo, hi = np.percentile(image, (1, 99.9))
    return np.clip((image - lo) / max(hi - lo, 1e-12), 0, 1)


def make_one(preset: str, model: str, root: Path) -> dataset.SyntheticDataset:
    """One sample of ``preset`` rendered by ``model``, as ``cellsynth dataset`` makes it."""
    params = dataset.apply_overrides(dataset.load_preset(preset), {"synthesize.model": model})
    report = dataset.generate_dataset(root, params, 1, seed=0, workers=1, progress=False)
    if report.failed:
        raise RuntimeError(f"{preset}: {report.failed[0]}")
    return dataset.load_dataset(root)


def panels_for(preset: str, data: Path, work: Path,
               models: list[str]) -> list[tuple[str, np.ndarray, tuple[float, float]]]:
    """(title, 2D image or RGB, (height, width) in µm) for each panel of one preset's row."""
    sets = [make_one(preset, model, work / f"{preset}-{model}") for model in models]
    ds = sets[0]
    sample = ds[0]
    z = sample.labels.shape[0] // 2
    vz, vy, vx = ds.voxel_size
    extent = (sample.labels.shape[1] * vy, sample.labels.shape[2] * vx)
    panels = []
    if preset in REAL and (data / REAL[preset]).is_file():
        raw, voxel = io.read_h5(data / REAL[preset], "raw")
        labels, _ = io.read_h5(data / REAL[preset], "label")
        voxel = voxel or ds.voxel_size
        rz = raw.shape[0] // 2
        real_extent = (raw.shape[1] * voxel[1], raw.shape[2] * voxel[2])
        panels += [("real image", normalized(raw[rz].astype(np.float32)), real_extent),
                   ("real labels", label_colors(labels[rz]), real_extent)]
    panels.append(("simulated labels", label_colors(sample.labels[z]), extent))
    for model, synthetic in zip(models, sets):
        panels.append((f"synthetic: {model} (alpha {ds.alphas[0]:g})", normalized(synthetic.image(0)[z]), extent))
    return panels


def main(argv: list[str] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gallery")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--presets", nargs="+", default=dataset.preset_names())
    parser.add_argument("--models", nargs="+", default=["default", "physics"],
                        help="synthesis models, one image panel each (default: the kind's best built-in model)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        for preset in args.presets:
            kind = dataset.load_preset(preset)["kind"]
            models = list(dict.fromkeys(default_model_name(kind) if m == "default" else m for m in args.models))
            panels = panels_for(preset, args.data, Path(work), models)
            fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), squeeze=False)
            for ax, (title, picture, (height, width)) in zip(axes[0], panels):
                ax.imshow(picture, cmap="gray", extent=(0, width, height, 0), interpolation="nearest")
                ax.set_title(title, fontsize=10)
                ax.set_xlabel("x (µm)", fontsize=8)
                ax.tick_params(labelsize=7)
            axes[0][0].set_ylabel("y (µm)", fontsize=8)
            fig.suptitle(f"preset {preset}: centre xy slice", fontsize=11)
            fig.tight_layout()
            path = args.out / f"{preset}.png"
            with io.atomic_path(path) as tmp:
                fig.savefig(tmp, dpi=72, format="png", bbox_inches="tight")
            plt.close(fig)
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
