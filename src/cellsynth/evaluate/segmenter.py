"""A small baseline segmenter to measure the utility of synthetic data (Fig. 13).

A 3D U-Net (:class:`cellsynth.gan.networks.UNetGenerator` with one input channel and
three sigmoid outputs) predicts the paper's three class maps (background, membrane,
centroid; :func:`cellsynth.evaluate.segmentation.class_targets`) from a normalized
image. Instances come from a seeded watershed: seeds are the connected parts of the
thresholded centroid map, the relief is the membrane map, and voxels whose background
probability exceeds 0.5 stay unlabelled.

This is a baseline for comparing training sets (Syn2Real, Real2Real, Mix), not a
state-of-the-art segmenter. Torch is imported inside the functions only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from cellsynth.errors import CellsynthError
from cellsynth.evaluate.segmentation import CLASSES, THRESHOLDS, class_targets
from cellsynth.intensity import normalize_percentiles
from cellsynth.progress import progress_bar


def _targets(labels: np.ndarray) -> np.ndarray:
    t = class_targets(labels)
    return np.stack([t[name] for name in CLASSES]).astype(np.float32)


def train_segmenter(images: Sequence[np.ndarray], labels: Sequence[np.ndarray], *, steps: int = 200,
                    patch: Sequence[int] = (16, 64, 64), batch: int = 2, width: int = 8, depth: int = 2,
                    lr: float = 2e-3, seed: int = 0, progress: bool | None = None) -> Any:
    """Train the baseline segmenter on (image, instance labels) pairs.

    Parameters
    ----------
    images, labels
        Raw images (any intensity range; each is percentile-normalized) and their
        instance labels, pairwise of equal shape, each at least ``patch``.
    steps
        Optimiser steps (Adam), each on ``batch`` random patches with random flips.
    patch
        Training patch (z, y, x); sides multiples of ``2**depth``.
    width, depth
        U-Net size.
    lr
        Learning rate.
    seed
        Seed of the patch sampling and the initial weights.
    progress
        Progress bar: None (default) on a terminal only, True always, False never.

    Returns
    -------
    torch.nn.Module
        The trained network (in eval mode).
    """
    import torch

    from cellsynth.gan.networks import UNetGenerator

    if len(images) != len(labels) or not images:
        raise CellsynthError("give as many label volumes as images (at least one)")
    patch = tuple(int(p) for p in patch)
    data = []
    for image, lab in zip(images, labels):
        if np.shape(image) != np.shape(lab):
            raise CellsynthError(f"image {np.shape(image)} and labels {np.shape(lab)} differ in shape")
        if any(s < p for s, p in zip(np.shape(image), patch)):
            raise CellsynthError(f"volume {np.shape(image)} is smaller than the training patch {patch}")
        data.append((normalize_percentiles(image), _targets(np.asarray(lab))))
    fractions = np.mean([t.reshape(3, -1).mean(axis=1) for _, t in data], axis=0)
    pos_weight = torch.tensor(np.clip((1 - fractions) / np.maximum(fractions, 1e-6), 1.0, 20.0), dtype=torch.float32)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    net = UNetGenerator(in_channels=1, width=width, depth=depth, out_channels=len(CLASSES))
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    for _ in progress_bar(range(steps), progress=progress, desc="training segmenter"):
        xs, ys = [], []
        for _ in range(batch):
            image, target = data[rng.integers(len(data))]
            corner = [rng.integers(0, s - p + 1) for s, p in zip(image.shape, patch)]
            window = tuple(slice(c, c + p) for c, p in zip(corner, patch))
            x, y = image[window], target[(slice(None),) + window]
            for axis in (0, 1, 2):
                if rng.random() < 0.5:
                    x, y = np.flip(x, axis), np.flip(y, axis + 1)
            xs.append(np.ascontiguousarray(x)[None])
            ys.append(np.ascontiguousarray(y))
        x, y = torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))
        p = net(x).clamp(1e-6, 1 - 1e-6)
        weight = 1.0 + y * (pos_weight.view(1, -1, 1, 1, 1) - 1.0)
        loss = torch.nn.functional.binary_cross_entropy(p, y, weight=weight)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return net.eval()


def predict_classes(net: Any, image: np.ndarray) -> dict[str, np.ndarray]:
    """Class probability maps of a whole volume (padded to the network's size multiple).

    Returns
    -------
    dict
        ``{"background", "membrane", "centroid"}`` -> float32 maps in [0, 1].
    """
    import torch

    norm = normalize_percentiles(image)
    m = net.size_multiple
    pad = [(0, (-s) % m) for s in norm.shape]
    padded = np.pad(norm, pad, mode="reflect")
    with torch.no_grad():
        out = net(torch.from_numpy(padded)[None, None])[0].numpy()
    crop = tuple(slice(0, s) for s in norm.shape)
    return {name: out[i][crop].astype(np.float32) for i, name in enumerate(CLASSES)}


def instances_from_classes(probabilities: dict[str, np.ndarray], *, centroid_threshold: float = THRESHOLDS["centroid"],
                           background_threshold: float = 0.5) -> np.ndarray:
    """Seeded watershed on the membrane map from the thresholded centroid map.

    Voxels with background probability above ``background_threshold`` stay 0.
    """
    from skimage.segmentation import watershed

    from cellsynth.io import label_dtype

    seeds, n = ndimage.label(probabilities["centroid"] > centroid_threshold)
    inside = probabilities["background"] <= background_threshold
    labels = watershed(probabilities["membrane"], seeds, mask=inside)
    return labels.astype(label_dtype(n))
