"""`cellsynth dataset` end to end and its error paths."""

from __future__ import annotations

import json
import time

import pytest
import yaml
from test_dataset import TINY

from cellsynth import dataset
from cellsynth.cli import main


@pytest.fixture
def preset_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def test_list_presets(capsys):
    assert main(["dataset", "--list-presets"]) == 0
    out = capsys.readouterr().out
    for name in dataset.preset_names():
        assert name in out
    assert "nuclei" in out and "membranes" in out and "µm" in out


def test_end_to_end_with_overrides(tmp_path, preset_file, capsys):
    out = tmp_path / "ds"
    code = main(["dataset", "--preset", str(preset_file), "--count", "3", "--out", str(out), "--workers", "1",
                 "--seed", "3", "--alpha", "20,200", "--radius", "2.5", "--split", "0.34,0.33,0.33"])
    assert code == 0, capsys.readouterr().err
    assert "3 samples made" in capsys.readouterr().out
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["parameters"]["synthesize"]["alpha"] == [20.0, 200.0]
    assert manifest["parameters"]["simulate"]["radius"] == 2.5 and manifest["parameters"]["seed"] == 3
    assert [s["state"] for s in manifest["samples"]] == ["done"] * 3
    assert sorted(s["split"] for s in manifest["samples"]) == ["test", "train", "val"]
    assert (out / "splits.csv").read_text().splitlines()[0] == "name,split"
    sample = json.loads((out / "samples/sample_0002/sample.json").read_text())
    assert sample["synthesis"]["images"] == {"20": "image_alpha20.tif", "200": "image_alpha200.tif"}
    assert (out / "samples/sample_0002/image_alpha200.tif").is_file()
    readme = (out / "README.md").read_text()
    assert "load_dataset" in readme and "napari" in readme and "spawn_key" in readme

    # the README's recipe makes the same data set again
    copy = tmp_path / "copy"
    assert main(["dataset", "--preset", str(out / "dataset.json"), "--count", "3", "--seed", "3",
                 "--workers", "1", "--out", str(copy)]) == 0
    for name in ("sample_0000", "sample_0002"):
        for f in (out / "samples" / name).iterdir():
            assert f.read_bytes() == (copy / "samples" / name / f.name).read_bytes()

    # --resume without parameters completes; with other parameters it is refused
    assert main(["dataset", "--resume", "--out", str(out), "--workers", "1"]) == 0
    assert "0 samples made, 3 already there" in capsys.readouterr().out
    assert main(["dataset", "--preset", str(preset_file), "--count", "3", "--out", str(out), "--seed", "3"]) == 2
    assert "other parameters" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--preset", "no_such_preset", "--count", "2"], "unknown preset 'no_such_preset'"),
    (["--preset", "nuclei", "--count", "0"], "argument --count: value must be at least 1"),
    (["--preset", "nuclei", "--count", "-3"], "argument --count: value must be at least 1"),
    (["--preset", "nuclei", "--count", "2", "--workers", "0"], "argument --workers: value must be at least 1"),
    (["--count", "2"], "give --preset"),
    (["--resume", "--radius", "3"], "leave out the other parameters"),
    (["--preset", "nuclei", "--count", "2", "--set", "simulate.radious=3"], "unknown simulate parameters radious"),
    (["--preset", "nuclei", "--count", "2", "--set", "oops"], "--set takes KEY=VALUE"),
    (["--preset", "nuclei", "--count", "2", "--split", "0.9,0.2,0"], "split fractions"),
    (["--preset", "nuclei", "--count", "2", "--alpha", "10,ten"], "alpha must be positive numbers"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, message):
    assert main(["dataset", "--out", str(tmp_path / "ds"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_unreachable_scheduler_says_so_quickly(tmp_path, preset_file, capsys):
    start = time.monotonic()
    code = main(["dataset", "--preset", str(preset_file), "--count", "1", "--out", str(tmp_path / "ds"),
                 "--scheduler", "tcp://127.0.0.1:9", "--scheduler-timeout", "2"])
    assert code == 2 and time.monotonic() - start < 30
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err


def test_corrupt_manifest_and_failures_exit_2(tmp_path, preset_file, capsys, monkeypatch):
    out = tmp_path / "ds"
    assert main(["dataset", "--preset", str(preset_file), "--count", "1", "--out", str(out), "--workers", "1"]) == 0
    (out / "dataset.json").write_text('{"format": "cellsynth-dataset", "parameters": ')
    assert main(["dataset", "--resume", "--out", str(out), "--workers", "1"]) == 2
    assert "dataset.json is not valid JSON" in capsys.readouterr().err

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    good = tmp_path / "good"
    assert main(["dataset", "--preset", str(preset_file), "--count", "1", "--out", str(good), "--workers", "1"]) == 0
    monkeypatch.setattr("cellsynth.dataset.executors.make_sample", broken)
    assert main(["dataset", "--resume", "--count", "3", "--out", str(good), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "sample_0001: RuntimeError: boom" in err and "2 samples failed" in err
    assert main(["dataset", "--preset", str(preset_file), "--count", "2", "--out", str(tmp_path / "b"),
                 "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no sample could be made" in err and "sample_0000: RuntimeError: boom" in err
    assert not (tmp_path / "b").exists()
