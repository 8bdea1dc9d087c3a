"""`cellsynth evaluate` end to end."""

import json

import numpy as np
from scipy import ndimage

from cellsynth import io
from cellsynth.cli import main

VOXEL = (0.5, 0.2, 0.2)


def _write_pair(tmp_path, rng, shape=(20, 36, 40)):
    real = ndimage.gaussian_filter(rng.random(shape), 1.0).astype(np.float32)
    synthetic = (0.8 * real + 0.2 * ndimage.gaussian_filter(rng.random(shape), 1.0)).astype(np.float32)
    io.write_tiff(tmp_path / "real.tif", real, VOXEL)
    io.write_tiff(tmp_path / "syn.tif", synthetic, VOXEL)
    return real, synthetic


def test_evaluate_cli_paired(tmp_path, rng, capsys):
    _write_pair(tmp_path, rng)
    mask = np.zeros((20, 36, 40), np.uint8)
    mask[:, 5:30, 5:35] = 1
    io.write_tiff(tmp_path / "mask.tif", mask, VOXEL)
    rep = tmp_path / "rep"
    assert main(["evaluate", "--real", str(tmp_path / "real.tif"), "--synthetic", str(tmp_path / "syn.tif"),
                 "--mask", str(tmp_path / "mask.tif"), "--report", str(rep)]) == 0
    data = json.loads((rep / "metrics.json").read_text())
    assert {"nrmse", "ssim", "zncc", "histogram_distance", "spectrum_distance", "kid"} <= set(data)
    assert 0 < data["ssim"] < 1 and 0 < data["zncc"] < 1
    assert (rep / "report.html").is_file() and (rep / "slices.png").is_file()
    assert json.loads((rep / "config.json").read_text())["mask"].endswith("mask.tif")
    assert '"ssim"' in capsys.readouterr().out


def test_evaluate_cli_errors(tmp_path, rng, capsys):
    real, _ = _write_pair(tmp_path, rng)
    io.write_tiff(tmp_path / "small.tif", real[:, :20], VOXEL)
    io.write_tiff(tmp_path / "const.tif", np.ones_like(real), VOXEL)
    io.write_tiff(tmp_path / "empty.tif", np.zeros(real.shape, np.uint8), VOXEL)
    r, s = str(tmp_path / "real.tif"), str(tmp_path / "syn.tif")
    cases = [
        (["--synthetic", str(tmp_path / "small.tif")], "differ in shape"),
        (["--synthetic", str(tmp_path / "const.tif")], "constant"),
        (["--synthetic", s, "--mask", str(tmp_path / "empty.tif")], "no voxels"),
        ([], "exactly one of"),
        (["--synthetic", s, "--dataset", str(tmp_path)], "exactly one of"),
        (["--dataset", str(tmp_path / "none")], "not a data set"),
    ]
    for extra, message in cases:
        assert main(["evaluate", "--real", r, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and "nan" not in err.lower()


def test_evaluate_cli_dataset(tmp_path, rng, capsys):
    real, synthetic = _write_pair(tmp_path, rng)
    fg = np.ones(real.shape, np.uint8)
    for i in range(2):
        io.write_sample(tmp_path / "ds" / "samples" / f"sample_{i:04d}",
                        io.Sample(labels=fg.astype(np.uint16), mask=fg, foreground=fg, voxel_size=VOXEL,
                                  image=np.clip(synthetic, 0, 1)))
    reals = tmp_path / "reals"
    reals.mkdir()
    io.write_tiff(reals / "a.tif", real, VOXEL)
    assert main(["evaluate", "--dataset", str(tmp_path / "ds"), "--real", str(reals),
                 "--report", str(tmp_path / "rep")]) == 0
    data = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert data["n_synthetic"] == 2 and data["n_real"] == 1
