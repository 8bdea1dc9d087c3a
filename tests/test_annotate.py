"""Automatic annotation: known blobs are found, sample folders feed the simulator."""

import numpy as np
import pytest
from scipy import ndimage

from cellsynth import io
from cellsynth.annotate import annotate_membranes, annotate_nuclei, detect_nuclei, log_response
from cellsynth.cli import main
from cellsynth.errors import CellsynthError
from cellsynth.evaluate.segmentation import match_instances

VOXEL = (0.5, 0.25, 0.25)  # anisotropic


def _blobs(rng, shape=(32, 64, 64), n=6, radius=(2.0, 3.0)):
    """Bright balls of known centres (µm) and radii (µm) on a noisy background."""
    voxel = np.asarray(VOXEL)
    grid = np.stack(np.meshgrid(*[np.arange(s) * v for s, v in zip(shape, voxel)], indexing="ij"), -1)
    labels = np.zeros(shape, np.uint16)
    centres, radii = [], []
    extent = np.asarray(shape) * voxel
    while len(centres) < n:
        r = rng.uniform(*radius)
        c = rng.uniform(r + 0.5, extent - r - 0.5)
        if all(np.linalg.norm(c - c2) > r + r2 + 1.5 for c2, r2 in zip(centres, radii)):
            centres.append(c)
            radii.append(r)
            labels[np.linalg.norm(grid - c, axis=-1) <= r] = len(centres)
    image = ndimage.gaussian_filter((labels > 0).astype(np.float32), 0.6) * rng.uniform(0.6, 1.0)
    image += 0.08 * rng.standard_normal(shape).astype(np.float32)
    return image, labels, np.asarray(centres), np.asarray(radii)


def test_log_response_peaks_at_blob_radius():
    """The scale-normalized response of a ball peaks near its radius, in µm, on any grid."""
    voxel = np.asarray(VOXEL)
    shape = (40, 80, 80)
    grid = np.stack(np.meshgrid(*[np.arange(s) * v for s, v in zip(shape, voxel)], indexing="ij"), -1)
    centre = np.asarray(shape) * voxel / 2
    ball = (np.linalg.norm(grid - centre, axis=-1) <= 3.0).astype(np.float32)
    idx = tuple((np.asarray(shape) // 2))
    radii = np.linspace(1.5, 5.0, 15)
    responses = [log_response(ball, voxel, r)[idx] for r in radii]
    assert abs(radii[int(np.argmax(responses))] - 3.0) <= 0.5


def test_annotate_nuclei_finds_known_blobs(rng):
    image, labels, centres, radii = _blobs(rng)
    sample = annotate_nuclei(image, VOXEL, radius_um=(1.5, 3.5))
    assert sample.labels.max() == len(centres)
    found = np.stack([sample.positions[f"{a}_um"] for a in "zyx"], 1)
    for c, r in zip(centres, radii):
        d = np.linalg.norm(found - c, axis=1)
        j = int(np.argmin(d))
        assert d[j] < 0.5  # centroid within half a µm
        assert abs(sample.positions["radius_um"][j] - r) < 0.4  # equivalent radius close to the true one
    m = match_instances(labels, sample.labels)
    assert m["f1"] == 1.0 and m["matched_iou"] > 0.75
    np.testing.assert_array_equal(sample.mask, (sample.labels > 0).astype(np.uint8))
    px = np.stack([sample.positions[f"{a}_px"] for a in "zyx"], 1)
    np.testing.assert_allclose(px * np.asarray(VOXEL), found, rtol=1e-6)


def test_detect_nuclei_threshold_and_empty(rng):
    noise = 0.05 * rng.standard_normal((24, 48, 48)).astype(np.float32)
    positions, _ = detect_nuclei(noise, VOXEL, radius_um=(1.5, 3.0), threshold=0.2)
    assert len(positions) == 0


def test_annotate_membranes_recovers_cells(rng):
    """A grid of 4x6x6 µm box cells with bright walls is segmented into its cells."""
    shape = (32, 72, 72)
    cells = np.zeros(shape, np.uint16)
    k = 0
    for z in range(2):
        for y in range(3):
            for x in range(3):
                k += 1
                cells[z * 16:(z + 1) * 16, y * 24:(y + 1) * 24, x * 24:(x + 1) * 24] = k
    walls = np.zeros(shape, bool)
    for axis in range(3):
        walls |= np.diff(cells, axis=axis, prepend=cells.take([0], axis=axis)) != 0
    image = ndimage.gaussian_filter(walls.astype(np.float32), 0.7) + 0.03 * rng.standard_normal(shape)
    sample = annotate_membranes(image, (0.25, 0.25, 0.25), cut_to_foreground=False)
    m = match_instances(cells, sample.labels)
    assert m["f1"] >= 0.9 and m["matched_iou"] > 0.8


def test_annotate_cli_end_to_end_feeds_positions(tmp_path, rng):
    image, _, centres, _ = _blobs(rng)
    io.write_tiff(tmp_path / "img.tif", image.astype(np.float32), VOXEL)
    out = tmp_path / "ann"
    assert main(["annotate", str(tmp_path / "img.tif"), "--kind", "nuclei", "--out", str(out),
                 "--radius", "1.5", "3.5"]) == 0
    sample = io.read_sample(out)
    assert sample.labels.max() == len(centres)
    assert set(sample.positions) >= {"label", "z_um", "y_um", "x_um", "z_px", "y_px", "x_px"}
    from cellsynth.simulate.positions import positions_from_csv

    points = positions_from_csv(out / "positions.csv", VOXEL, image.shape)
    assert points.shape == (len(centres), 3)
    assert main(["annotate", str(tmp_path / "img.tif"), "--out", str(out)]) == 2  # exists, no --overwrite
    assert main(["annotate", str(tmp_path / "missing.tif"), "--out", str(tmp_path / "x")]) == 2
    assert main(["annotate", str(tmp_path / "img.tif"), "--kind", "membranes", "--min-distance", "2",
                 "--out", str(tmp_path / "m")]) == 2  # a nuclei option
    assert not (tmp_path / "m").exists()


def test_membrane_seed_depth_decides_whether_a_faint_wall_splits_a_cell(rng):
    """Two cells behind a bright wall; the left one has a faint inner wall (0.1) in it."""
    image = 0.002 * rng.standard_normal((16, 32, 64)).astype(np.float32)
    image[:, :, 32] = 1.0  # the real wall
    image[:, :, 16] = 0.1  # a faint wall, e.g. texture inside one cell; about 0.04 after smoothing
    count = lambda depth: int(annotate_membranes(image, (0.25, 0.25, 0.25), seed_depth=depth, smoothing_um=0.25,
                                                 cut_to_foreground=False).labels.max())
    assert count(0.05) == 2
    assert count(0.01) == 3
    with pytest.raises(CellsynthError, match="seed depth"):
        count(0.0)


def test_cli_defaults_are_the_packages():
    from cellsynth import annotate
    from cellsynth.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["annotate", "image.tif"])
    assert args.threshold == annotate.DEFAULT_NUCLEUS_THRESHOLD and args.level == annotate.DEFAULT_NUCLEUS_LEVEL
    assert tuple(args.radius) == annotate.DEFAULT_NUCLEUS_RADIUS_UM
