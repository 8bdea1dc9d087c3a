"""`cellsynth evaluate` end to end."""

import json

import h5py
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


def _write_dataset(root, images, mask, model):
    fg = np.ones(mask.shape, np.uint8)
    for i, image in enumerate(images):
        io.write_sample(root / "samples" / f"sample_{i:04d}",
                        io.Sample(labels=mask.astype(np.uint16), mask=mask, foreground=fg, voxel_size=VOXEL,
                                  image=np.clip(image, 0, 1)))
    io.write_json(root / "dataset.json", {"format": "cellsynth-dataset", "samples": [
        {"name": f"sample_{i:04d}"} for i in range(len(images))], "parameters": {
        "kind": "nuclei", "synthesize": {"model": model}, "simulate": {}}})


def test_evaluate_cli_unpaired(tmp_path, rng, capsys):
    shape = (20, 36, 40)
    labels = np.zeros(shape, np.uint16)
    labels[5:15, 10:25, 10:30] = 1
    mask = (labels > 0).astype(np.uint8)
    bright = [(0.2 + 0.5 * mask + 0.05 * rng.normal(size=shape)).astype(np.float32) for _ in range(2)]
    faint = [(0.2 + 0.1 * mask + 0.05 * rng.normal(size=shape)).astype(np.float32) for _ in range(2)]
    _write_dataset(tmp_path / "a", bright, mask, "physics")
    _write_dataset(tmp_path / "b", faint, mask, "nuclei")
    real = (0.2 + 0.5 * mask + 0.05 * rng.normal(size=shape)).astype(np.float32)
    with h5py.File(tmp_path / "real.h5", "w") as h5:
        h5["raw"], h5["label"] = real, labels
        h5["raw"].attrs["element_size_um"] = VOXEL
    assert main(["evaluate", "--dataset", str(tmp_path / "a"), str(tmp_path / "b"), "--real",
                 str(tmp_path / "real.h5"), "--patches", "16", "--report", str(tmp_path / "rep")]) == 0
    data = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    rows = data["rows"]
    assert list(rows) == ["floor (real vs real)", "physics", "nuclei"]
    assert abs(rows["physics"]["cnr_ratio"] - 1) < 0.2 and rows["nuclei"]["cnr_ratio"] < 0.4
    assert (tmp_path / "rep" / "montage.png").is_file()
    out = capsys.readouterr().out
    assert "floor (real vs real)" in out and "real CNR" in out
    # errors: a labels list that does not match, a real file without voxel size
    io.write_tiff(tmp_path / "r.tif", real, VOXEL)
    np.save(tmp_path / "r.npy", real)
    for extra, message in [(["--real", str(tmp_path / "r.tif"), "--real-labels", str(tmp_path / "r.tif"),
                             str(tmp_path / "r.tif")], "one labels file per real image"),
                           (["--real", str(tmp_path / "r.npy")], "records no voxel size"),
                           (["--real", str(tmp_path / "r.tif"), "--raw"], "--raw applies")]:
        assert main(["evaluate", "--dataset", str(tmp_path / "a"), *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
