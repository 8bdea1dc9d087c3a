"""Reference scores on the held-out parts the shipped generators are judged on.

    python scripts/heldout_references.py [DATA_DIR]     # default: ../shared/data beside the checkout

For each real volume and its held-out part (the recipes' ``holdout`` of y, as in
``scripts/train_shipped.py``) this prints, with the physics renderer's scores beside them:

- **real training part**: the histogram (W1) and spectrum distances from the real
  training part of the same volume to its held-out part. A generator that reproduced the
  training data's intensities exactly would score about this.
- **blur of mask**: ZNCC of the structure mask blurred by a Gaussian (sigma 1 voxel in xy,
  the same µm in z), the structure a smooth mask-only predictor reaches.
- **oracle** (nuclei): every nucleus and the background painted with their true mean
  intensity in the real image, then blurred; then the same with independent Gaussian noise
  of the real image's noise level (estimated from differences of x-neighbours). No
  mask-conditioned model knows the true means, so its ZNCC stays below the first line;
  one that reproduces the real noise stays near the second.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import yaml
from scipy import ndimage

from cellsynth.conditioning import organism_from_labels
from cellsynth.evaluate.metrics import (
    histogram_distance,
    paired_metrics,
    spectrum_distance,
    zncc,
)
from cellsynth.gan.data import find_pairs, read_pair, split_regions
from cellsynth.simulate.annotations import structure_mask
from cellsynth.synthesis import synthesize_image

ROOT = Path(__file__).resolve().parents[1]


def blurred(volume: np.ndarray, voxel: tuple[float, float, float]) -> np.ndarray:
    """Gaussian blur of sigma 1 voxel in xy and the same length in z."""
    return ndimage.gaussian_filter(volume.astype(np.float32), (voxel[2] / voxel[0], 1.0, 1.0))


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data"
    print(f"{'volume':34} {'reference':22} {'zncc':>6} {'W1':>6} {'spectrum':>8}")
    for kind in ("nuclei", "membranes"):
        config = yaml.safe_load((ROOT / "configs" / f"{kind}.yaml").read_text())
        voxel_default = tuple(config["voxel_size"]) if config.get("voxel_size") else None
        for name, image_file, label_file in find_pairs([data / kind]):
            raw, labels, voxel = read_pair(image_file, label_file, voxel_default)
            train, held = split_regions(raw.shape, config["holdout"], config["holdout_axis"])
            real = raw.astype(np.float32)
            mask = structure_mask(labels, kind, voxel)
            foreground = organism_from_labels(labels, voxel)
            physics = synthesize_image(mask, foreground, voxel, model="physics", kind=kind, alpha=config["alpha"],
                                       beta=config["beta"], seed=0, progress=False)
            rows = [("physics renderer", paired_metrics(real[held], physics[held], voxel_size=voxel)),
                    ("real training part", {"histogram_distance": histogram_distance(real[train], real[held]),
                                            "spectrum_distance": spectrum_distance(real[train], real[held], voxel)}),
                    ("blur of mask", {"zncc": zncc(real[held], blurred(mask, voxel)[held])})]
            if kind == "nuclei":
                painted = blurred(ndimage.mean(real, labels, np.arange(labels.max() + 1))[labels], voxel)
                noise = np.sqrt(np.var(np.diff(real[held], axis=2)) / 2)
                noisy = painted + np.random.default_rng(0).normal(0.0, noise, painted.shape).astype(np.float32)
                rows += [("oracle", paired_metrics(real[held], painted[held], voxel_size=voxel)),
                         ("oracle + real noise", paired_metrics(real[held], noisy[held], voxel_size=voxel))]
            for label, scores in rows:
                cells = [f"{scores[k]:6.3f}" if k in scores else f"{'':>6}" for k in ("zncc", "histogram_distance")]
                spectrum = f"{scores['spectrum_distance']:8.3f}" if "spectrum_distance" in scores else ""
                print(f"{name:34} {label:22} {' '.join(cells)} {spectrum}")


if __name__ == "__main__":
    main()
