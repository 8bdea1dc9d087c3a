"""Segmentation scores: tolerance IoU vs brute force, class targets, instance matching."""

import itertools

import numpy as np
import pytest

from cellsynth.errors import CellsynthError
from cellsynth.evaluate import segmentation as S


def _brute_tolerance_iou(truth, pred, tol):
    t, p = np.argwhere(truth), np.argwhere(pred)
    if not len(t) and not len(p):
        return 1.0
    def near(points, others):
        if not len(others):
            return np.zeros(len(points), bool)
        d = np.sqrt(((points[:, None, :] - others[None, :, :]) ** 2).sum(-1))
        return (d <= tol).any(1)
    tp = near(p, t).sum() if len(p) else 0
    fp = len(p) - tp
    fn = (~near(t, p)).sum() if len(t) else 0
    return tp / (tp + fp + fn)


@pytest.mark.parametrize("tol", [0, 1, 2, 5])
def test_tolerance_iou_equals_brute_force(rng, tol):
    for _ in range(4):
        shape = tuple(rng.integers(5, 12, 3))
        truth = rng.random(shape) > 0.93
        pred = np.roll(truth, rng.integers(-2, 3), axis=int(rng.integers(0, 3))) | (rng.random(shape) > 0.97)
        assert S.tolerance_iou(truth, pred, tol) == pytest.approx(_brute_tolerance_iou(truth, pred, tol))


def test_tolerance_iou_edge_cases():
    empty = np.zeros((4, 4, 4), bool)
    one = empty.copy()
    one[1, 1, 1] = True
    assert S.tolerance_iou(empty, empty, 1) == 1.0
    assert S.tolerance_iou(one, empty, 1) == 0.0
    shifted = np.roll(one, 1, axis=2)
    assert S.tolerance_iou(one, shifted, 0) == 0.0
    assert S.tolerance_iou(one, shifted, 1) == 1.0
    with pytest.raises(CellsynthError):
        S.tolerance_iou(one, one[:-1], 1)


def test_iou_matrix_and_matching_equal_brute_force(rng):
    truth = rng.integers(0, 5, (6, 7, 8))
    pred = np.where(rng.random(truth.shape) > 0.2, truth, rng.integers(0, 6, truth.shape))
    iou, t_ids, p_ids = S.iou_matrix(truth, pred)
    for i, a in enumerate(t_ids):
        for j, b in enumerate(p_ids):
            inter = np.sum((truth == a) & (pred == b))
            union = np.sum((truth == a) | (pred == b))
            assert iou[i, j] == pytest.approx(inter / union)
    # Hungarian matching = best permutation by brute force on this small problem
    m = S.match_instances(truth, pred, 0.5)
    best = max(sum(iou[i, perm[i]] for i in range(len(t_ids)))
               for perm in itertools.permutations(range(len(p_ids)), len(t_ids)))
    assert m["average_iou"] * len(t_ids) == pytest.approx(best)
    same = S.match_instances(truth, truth)
    assert same["f1"] == 1.0 and same["matched_iou"] == 1.0


def test_class_targets_and_multiclass_scores():
    labels = np.zeros((10, 12, 12), np.uint16)
    labels[2:8, 2:6, 2:10] = 1
    labels[2:8, 6:10, 2:10] = 2
    t = S.class_targets(labels, centroid_radius=1)
    assert t["background"].sum() == (labels == 0).sum()
    assert t["membrane"][4, 5, 5] and t["membrane"][4, 6, 5] and not t["membrane"][4, 3, 5]
    assert t["membrane"][2, 3, 5]  # touches background
    assert t["centroid"].sum() == 2 * 7  # two 6-neighbourhood balls
    probs = {k: v.astype(float) for k, v in t.items()}
    assert S.multiclass_scores(t, probs) == {"background": 1.0, "membrane": 1.0, "centroid": 1.0}
    moved = dict(probs, centroid=np.roll(probs["centroid"], 3, axis=2))
    scores = S.multiclass_scores(t, moved)
    assert scores["centroid"] == 1.0  # within the 5-voxel tolerance
    assert S.multiclass_scores(t, moved, tolerances={"background": 1, "membrane": 1, "centroid": 0})["centroid"] == 0


def test_instances_from_perfect_class_maps_recover_cells():
    from cellsynth.evaluate.segmenter import instances_from_classes

    labels = np.zeros((16, 24, 24), np.uint16)
    labels[2:14, 2:12, 2:22] = 1
    labels[2:14, 12:22, 2:22] = 2
    t = S.class_targets(labels, centroid_radius=2)
    recovered = instances_from_classes({k: v.astype(np.float32) for k, v in t.items()})
    m = S.match_instances(labels, recovered)
    assert m["f1"] == 1.0 and m["matched_iou"] > 0.9


def test_segmenter_trains_and_predicts_shapes(rng):
    torch = pytest.importorskip("torch")
    from cellsynth.evaluate.segmenter import predict_classes, train_segmenter

    torch.set_num_threads(1)
    labels = np.zeros((12, 20, 20), np.uint16)
    labels[:, :10] = 1
    labels[:, 10:] = 2
    image = S.class_targets(labels)["membrane"].astype(np.float32) + 0.1 * rng.random(labels.shape)
    net = train_segmenter([image], [labels], steps=3, patch=(8, 16, 16), width=4, depth=1, progress=False)
    again = train_segmenter([image], [labels], steps=3, patch=(8, 16, 16), width=4, depth=1, progress=False)
    probs = predict_classes(net, image)  # 12x20x20 is not a multiple of the patch: padded and cropped
    assert set(probs) == set(S.CLASSES)
    assert all(p.shape == labels.shape and np.all((p >= 0) & (p <= 1)) for p in probs.values())
    np.testing.assert_array_equal(probs["membrane"], predict_classes(again, image)["membrane"])  # seeded
    with pytest.raises(CellsynthError, match="smaller than the training patch"):
        train_segmenter([image], [labels], steps=1, patch=(16, 32, 32))
