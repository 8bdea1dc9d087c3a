"""`cellsynth synthesize` end to end, and synthesize_image's input checks."""

import json

import numpy as np
import pytest
import torch

from cellsynth import io
from cellsynth.cli import main
from cellsynth.errors import CellsynthError
from cellsynth.synthesis import synthesize_image

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture
def sample(tmp_path):
    """A small simulated nuclei sample folder made by `cellsynth simulate`."""
    folder = tmp_path / "sample"
    assert main(["simulate", "nuclei", "--out", str(folder), "--shape", "16", "48", "48",
                 "--voxel-size", "1", "0.5", "0.5", "--radius", "3", "--seed", "2"]) == 0
    return folder


def _error(capsys):
    err = capsys.readouterr().err
    assert err.startswith("cellsynth: error:") and "Traceback" not in err and err.count("\n") == 1
    return err


def test_sample_folder_end_to_end(sample):
    assert main(["synthesize", str(sample), "--model", "physics", "--alpha", "50", "--seed", "3"]) == 0
    meta = json.loads((sample / "sample.json").read_text())
    assert meta["files"]["image"] == "image.tif"
    assert meta["synthesis"]["alpha"] == 50 and meta["synthesis"]["model"]["model"] == "physics"
    assert meta["synthesis"]["seed"] == 3 and meta["synthesis"]["redundancy"] >= 1
    image, voxel = io.read_volume(sample / "image.tif")
    assert image.dtype == np.uint16 and image.shape == (16, 48, 48) and voxel == pytest.approx((1, 0.5, 0.5))
    loaded = io.read_sample(sample)
    assert loaded.image.dtype == np.float32 and 0 < loaded.image.mean() < 1
    # the same seed reproduces the image whatever the tiling (crop >= the model's halo: exact)
    assert main(["synthesize", str(sample), "--model", "physics", "--alpha", "50", "--seed", "3",
                 "--overwrite", "--batch-size", "1", "--patch", "12", "24", "24"]) == 0
    again = io.read_volume(sample / "image.tif")[0].astype(int)
    assert json.loads((sample / "sample.json").read_text())["synthesis"]["patches"] > 1
    assert np.abs(again - image).max() <= 1  # uint16 levels: float rounding only


def test_labels_file_to_zarr_keeps_voxel_size(sample, tmp_path):
    out = tmp_path / "image.ome.zarr"
    assert main(["synthesize", str(sample / "labels.tif"), "--kind", "membranes", "--out", str(out),
                 "--dtype", "float32", "--model", "physics"]) == 0
    image, voxel = io.read_volume(out)
    assert image.dtype == np.float32 and image.shape == (16, 48, 48) and voxel == pytest.approx((1, 0.5, 0.5))
    record = json.loads((tmp_path / "image.ome.zarr.json").read_text())
    assert record["kind"] == "membranes" and record["config"]["dtype"] == "float32"


def test_labels_file_with_foreground_file(sample, tmp_path):
    out = tmp_path / "image.tif"
    assert main(["synthesize", str(sample / "labels.tif"), "--kind", "nuclei", "--out", str(out),
                 "--foreground", str(sample / "foreground.tif")]) == 0
    assert io.read_volume(out)[0].shape == (16, 48, 48)


def test_a_tissue_crop_renders_the_same_from_its_sample_folder_and_its_labels_file(tmp_path):
    """One organism definition: a box sample's labels file gets the box back, so the same image."""
    folder = tmp_path / "box"
    assert main(["simulate", "nuclei", "--out", str(folder), "--shape", "20", "48", "48", "--voxel-size",
                 "1", "0.5", "0.5", "--organism", "box", "--radius", "2", "--cell-size", "9", "--seed", "4"]) == 0
    out = tmp_path / "from_labels.tif"
    common = ["--kind", "nuclei", "--model", "physics", "--seed", "1"]
    assert main(["synthesize", str(folder / "labels.tif"), "--out", str(out), *common]) == 0
    assert main(["synthesize", str(folder), "--out", str(tmp_path / "from_sample.tif"), *common]) == 0
    np.testing.assert_array_equal(io.read_volume(out)[0], io.read_volume(tmp_path / "from_sample.tif")[0])


def test_error_paths(sample, tmp_path, capsys):
    labels = str(sample / "labels.tif")
    out = str(tmp_path / "x.tif")
    cases = [
        (["synthesize", labels, "--out", out], "--kind"),
        (["synthesize", labels, "--kind", "nuclei", "--out", out, "--model", str(tmp_path / "none.pt")], "not found"),
        (["synthesize", labels, "--kind", "nuclei", "--out", out, "--patch", "8", "16", "16",
          "--overlap", "4", "4", "4", "--crop", "2", "2", "2"], "smaller than the patch"),
        (["synthesize", labels, "--kind", "nuclei", "--out", str(tmp_path / "x.png")], ".tif or .ome.zarr"),
        (["synthesize", labels, "--kind", "nuclei", "--out", out, "--voxel-size", "2", "2", "2"], "does not match"),
        (["synthesize", str(sample), "--kind", "membranes"], "nuclei sample"),
        (["synthesize", str(tmp_path), "--out", out], "not a sample folder"),
        (["synthesize", labels, "--kind", "nuclei", "--out", out, "--device", "gpu7"], "device"),
    ]
    wrong = tmp_path / "wrong_fg.tif"
    io.write_tiff(wrong, np.ones((16, 48, 40), np.uint8), (1, 0.5, 0.5))
    cases.append((["synthesize", labels, "--kind", "nuclei", "--out", out, "--foreground", str(wrong)], "same shape"))
    other_grid = tmp_path / "fg_voxel.tif"
    io.write_tiff(other_grid, np.ones((16, 48, 48), np.uint8), (2, 0.5, 0.5))
    cases.append((["synthesize", labels, "--kind", "nuclei", "--out", out, "--foreground", str(other_grid)],
                  "voxel size"))
    not_binary = tmp_path / "fg255.tif"
    io.write_tiff(not_binary, np.full((16, 48, 48), 255, np.uint8), (1, 0.5, 0.5))
    cases.append((["synthesize", labels, "--kind", "nuclei", "--out", out, "--foreground", str(not_binary)],
                  "binary"))
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full((4, 8, 8), np.nan, np.float32))
    cases.append((["synthesize", str(nan), "--kind", "nuclei", "--out", out, "--voxel-size", "1", "1", "1"], "NaN"))
    for argv, message in cases:
        assert main(argv) == 2, argv
        assert message in _error(capsys), argv
    assert not (tmp_path / "x.tif").exists()
    assert not list(tmp_path.glob(".x.tif*"))  # no temporary left behind


def test_existing_output_needs_overwrite(sample, capsys):
    assert main(["synthesize", str(sample), "--model", "physics"]) == 0
    capsys.readouterr()
    assert main(["synthesize", str(sample), "--model", "physics"]) == 2
    assert "--overwrite" in _error(capsys)


def test_synthesize_image_checks_inputs():
    mask = np.zeros((4, 8, 8), np.uint8)
    mask[1:3, 2:6, 2:6] = 1
    with pytest.raises(CellsynthError, match="same shape"):
        synthesize_image(mask, mask[:3], (1, 1, 1), progress=False)
    with pytest.raises(CellsynthError, match="binary"):
        synthesize_image(mask * 2, mask, (1, 1, 1), progress=False)
    with pytest.raises(CellsynthError, match="NaN"):
        synthesize_image(np.full(mask.shape, np.nan, np.float32), mask, (1, 1, 1), progress=False)
    with pytest.raises(CellsynthError, match="empty"):
        synthesize_image(mask, np.zeros_like(mask), (1, 1, 1), progress=False)
    with pytest.raises(CellsynthError, match="voxel size"):
        synthesize_image(mask, mask, (1, -1, 1), progress=False)
    with pytest.raises(CellsynthError, match="alpha"):
        synthesize_image(mask, mask, (1, 1, 1), alpha=-5, progress=False)
    with pytest.raises(CellsynthError, match="kind"):
        synthesize_image(mask, mask, (1, 1, 1), kind="actin", progress=False)


def test_zarr_sample_gets_a_zarr_image(tmp_path):
    folder = tmp_path / "zsample"
    assert main(["simulate", "nuclei", "--out", str(folder), "--shape", "12", "32", "32", "--voxel-size", "1", "0.5",
                 "0.5", "--radius", "3", "--format", "zarr"]) == 0
    assert main(["synthesize", str(folder), "--model", "physics"]) == 0
    assert json.loads((folder / "sample.json").read_text())["files"]["image"] == "sample.ome.zarr"
    image = io.read_sample(folder).image
    assert image.shape == (12, 32, 32) and 0 < image.mean() < 1


def test_generator_checkpoint_is_used_and_its_kind_checked(sample, tmp_path, capsys):
    from cellsynth.gan.checkpoints import GENERATOR_FORMAT
    from cellsynth.gan.networks import UNetGenerator

    torch.manual_seed(0)
    net = UNetGenerator(width=2, depth=2)
    path = tmp_path / "generator.pt"
    torch.save({"format": GENERATOR_FORMAT, "version": 1, "kind": "nuclei", "network": net.config,
                "state_dict": net.state_dict(), "step": 0, "alpha": 100.0, "beta": 100.0}, path)
    assert main(["synthesize", str(sample), "--model", str(path), "--patch", "8", "32", "32"]) == 0
    meta = json.loads((sample / "sample.json").read_text())["synthesis"]
    assert meta["model"]["kind"] == "nuclei" and meta["patches"] > 1
    image = io.read_volume(sample / "image.tif")[0]
    assert image.shape == (16, 48, 48) and image.std() > 0
    capsys.readouterr()
    assert main(["synthesize", str(sample / "labels.tif"), "--kind", "membranes", "--out", str(tmp_path / "m.tif"),
                 "--model", str(path)]) == 2
    assert "nuclei model" in _error(capsys)


def test_missing_input_says_not_found(tmp_path, capsys):
    assert main(["synthesize", str(tmp_path / "nope.tif"), "--kind", "nuclei", "--out", str(tmp_path / "o.tif")]) == 2
    assert "input not found" in capsys.readouterr().err
    assert main(["synthesize", str(tmp_path / "nope")]) == 2
    assert "input not found" in capsys.readouterr().err


def test_same_seed_same_bytes_including_the_records(sample, tmp_path, monkeypatch):
    """The image and its JSON record (a labels file) and the sample.json of a sample folder are
    the same bytes for the same seed: the time a run took goes to the terminal only."""
    labels = str(sample / "labels.tif")
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        monkeypatch.chdir(tmp_path / run)
        copy = tmp_path / run / "sample"
        copy.mkdir()
        for f in sample.iterdir():
            (copy / f.name).write_bytes(f.read_bytes())
        assert main(["synthesize", labels, "--kind", "nuclei", "--model", "physics", "--out", "image.tif"]) == 0
        assert main(["synthesize", "sample", "--model", "physics"]) == 0
    for name in ("image.tif", "image.tif.json", "sample/sample.json", "sample/image.tif"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert "seconds" not in (tmp_path / "a" / "image.tif.json").read_text()
