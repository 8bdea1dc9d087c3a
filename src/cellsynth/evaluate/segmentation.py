"""Segmentation-based utility scores (section 4.3, Fig. 13 of Eschweiler et al. 2021).

- :func:`class_targets`: the three classes of the paper's multi-class segmenter from
  instance labels: background, membrane (cell boundaries) and centroids;
- :func:`tolerance_iou`: IoU that accepts predictions within a distance of the truth
  (1 voxel for background and membranes, 5 voxels for centroids in the paper);
- :func:`multiclass_scores`: probability maps thresholded at 0.1 / 0.4 / 0.2 and scored
  with those tolerances;
- :func:`match_instances`: one-to-one matching of instances (Hungarian, on IoU) with
  detection F1, matched IoU and the average IoU over ground-truth instances.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import ndimage

from cellsynth.errors import CellsynthError

CLASSES = ("background", "membrane", "centroid")
THRESHOLDS = {"background": 0.1, "membrane": 0.4, "centroid": 0.2}
"""Probability thresholds of the paper (t_background, t_membrane, t_centroid)."""
TOLERANCES = {"background": 1, "membrane": 1, "centroid": 5}
"""Allowed misplacement in voxels (paper: 1, 1 and 5)."""


def _ball(radius: int) -> np.ndarray:
    grid = np.ogrid[tuple(slice(-radius, radius + 1) for _ in range(3))]
    return sum(g * g for g in grid) <= radius * radius


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Voxels within Euclidean distance ``radius`` (voxels) of ``mask``."""
    if radius <= 0 or not mask.any():
        return mask
    import edt

    return edt.edt(np.ascontiguousarray(~mask), black_border=False) <= radius


def tolerance_iou(truth: np.ndarray, prediction: np.ndarray, tolerance: int = 0) -> float:
    """IoU of two binary masks, forgiving misplacements up to ``tolerance`` voxels.

    A predicted voxel counts as correct if a true voxel lies within ``tolerance``
    (Euclidean, in voxels); a true voxel counts as found if a predicted voxel lies within
    ``tolerance``. With ``tp_p`` correct predicted voxels, ``fp`` the other predicted
    voxels, and ``fn`` the true voxels not found::

        IoU = tp_p / (tp_p + fp + fn)

    which is the plain IoU for ``tolerance = 0``. Distances come from one exact Euclidean
    distance transform per mask (``edt``), so the cost does not grow with the tolerance.

    Returns
    -------
    float
        In [0, 1]; 1 when both masks are empty.
    """
    truth, prediction = np.asarray(truth) != 0, np.asarray(prediction) != 0
    if truth.shape != prediction.shape:
        raise CellsynthError(f"truth {truth.shape} and prediction {prediction.shape} differ in shape")
    if not truth.any() and not prediction.any():
        return 1.0
    near_truth = _dilate(truth, tolerance)
    near_prediction = _dilate(prediction, tolerance)
    tp = int(np.count_nonzero(prediction & near_truth))
    fp = int(np.count_nonzero(prediction & ~near_truth))
    fn = int(np.count_nonzero(truth & ~near_prediction))
    return tp / (tp + fp + fn)


def class_targets(labels: np.ndarray, *, centroid_radius: int = 2) -> dict[str, np.ndarray]:
    """Background, membrane and centroid masks from instance labels.

    membrane: labelled voxels with a 6-neighbour of another value (cell boundaries);
    centroid: a ball of ``centroid_radius`` voxels around each label's centre of mass;
    background: voxels with label 0.

    Returns
    -------
    dict
        ``{"background", "membrane", "centroid"}`` -> bool arrays.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise CellsynthError(f"labels must be 3D, got shape {labels.shape}")
    boundary = np.zeros(labels.shape, dtype=bool)
    for axis in range(3):
        differs = np.diff(labels, axis=axis) != 0
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        boundary[tuple(lo)] |= differs
        boundary[tuple(hi)] |= differs
    boundary &= labels > 0
    centroid = np.zeros(labels.shape, dtype=bool)
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if len(ids):
        centres = np.round(ndimage.center_of_mass(np.ones(labels.shape), labels, ids)).astype(int)
        centroid[tuple(np.clip(centres, 0, np.asarray(labels.shape) - 1).T)] = True
        centroid = _dilate(centroid, centroid_radius)
    return {"background": labels == 0, "membrane": boundary, "centroid": centroid}


def multiclass_scores(truth: Mapping[str, np.ndarray], probabilities: Mapping[str, np.ndarray], *,
                      thresholds: Mapping[str, float] = THRESHOLDS,
                      tolerances: Mapping[str, int] = TOLERANCES) -> dict[str, float]:
    """The paper's per-class IoU: threshold each probability map, then :func:`tolerance_iou`.

    Parameters
    ----------
    truth
        ``{class: bool mask}`` (see :func:`class_targets`).
    probabilities
        ``{class: probability map in [0, 1]}`` of the same shapes.
    """
    scores = {}
    for name in CLASSES:
        if name not in truth or name not in probabilities:
            raise CellsynthError(f"missing class {name!r}; give {', '.join(CLASSES)}")
        scores[name] = tolerance_iou(truth[name], np.asarray(probabilities[name]) > thresholds[name], tolerances[name])
    return scores


def iou_matrix(truth: np.ndarray, prediction: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU of every true instance with every predicted one, from one contingency table.

    Returns
    -------
    iou, truth_ids, prediction_ids
        (n_true, n_pred) IoU matrix and the label values of its rows and columns.
    """
    truth, prediction = np.asarray(truth), np.asarray(prediction)
    if truth.shape != prediction.shape:
        raise CellsynthError(f"truth {truth.shape} and prediction {prediction.shape} differ in shape")
    t_ids, t = np.unique(truth, return_inverse=True)
    p_ids, p = np.unique(prediction, return_inverse=True)
    nt, np_ = len(t_ids), len(p_ids)
    inter = np.bincount(t.ravel() * np_ + p.ravel(), minlength=nt * np_).reshape(nt, np_)
    size_t, size_p = inter.sum(axis=1), inter.sum(axis=0)
    keep_t, keep_p = t_ids > 0, p_ids > 0
    inter = inter[keep_t][:, keep_p]
    union = size_t[keep_t][:, None] + size_p[keep_p][None, :] - inter
    return inter / np.maximum(union, 1), t_ids[keep_t], p_ids[keep_p]


def match_instances(truth: np.ndarray, prediction: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """Match instances one to one (Hungarian on IoU) and score them.

    Returns
    -------
    dict
        ``tp``, ``fp``, ``fn`` (a match needs IoU >= ``threshold``), ``precision``,
        ``recall``, ``f1``, ``matched_iou`` (mean IoU of the matches) and
        ``average_iou`` (mean over true instances of the IoU of their assigned partner,
        0 for unmatched: the paper's instance score).
    """
    from scipy.optimize import linear_sum_assignment

    iou, t_ids, p_ids = iou_matrix(truth, prediction)
    rows, cols = linear_sum_assignment(-iou) if iou.size else (np.zeros(0, int), np.zeros(0, int))
    good = iou[rows, cols] >= threshold
    tp = int(good.sum())
    fp, fn = len(p_ids) - tp, len(t_ids) - tp
    return {
        "tp": tp, "fp": fp, "fn": fn,
        "precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1),
        "f1": 2 * tp / max(2 * tp + fp + fn, 1),
        "matched_iou": float(iou[rows, cols][good].mean()) if tp else 0.0,
        "average_iou": float(iou[rows, cols].sum() / len(t_ids)) if len(t_ids) else float(len(p_ids) == 0),
    }
