"""`cellsynth measure` end to end: statistics, comparison, preset fit and bad input."""

import json

import numpy as np
import pytest
import yaml

from cellsynth import io
from cellsynth.cli import main
from cellsynth.cli.measure import parse_crop
from cellsynth.dataset import load_preset
from cellsynth.errors import CellsynthError


@pytest.fixture
def sample(tmp_path):
    out = tmp_path / "sample"
    assert main(["simulate", "membranes", "--shape", "24", "32", "32", "--organism", "box", "--cell-size", "8",
                 "--packing", "cells", "--elongation", "2", "--flatness", "0.5", "--out", str(out)]) == 0
    return out


def test_measure_prints_the_statistics_of_a_sample(sample, capsys):
    assert main(["measure", str(sample), "--kind", "membranes", "--no-sphericity"]) == 0
    out = capsys.readouterr().out
    for key in ("cells", "volume_cv", "elongation_median", "neighbours_mean"):
        assert key in out
    labels, _ = io.read_volume(sample / "labels.tif")
    assert out.splitlines()[1].split()[-1] == str(len(np.unique(labels[labels > 0])))


def test_measure_compare_writes_statistics_and_histograms(sample, tmp_path, capsys):
    real = tmp_path / "real.h5"
    labels, voxel = io.read_volume(sample / "labels.tif")
    import h5py

    with h5py.File(real, "w") as f:
        f["label"] = labels[:, :16, :16]
        f["label"].attrs["element_size_um"] = voxel
    out = tmp_path / "report"
    assert main(["measure", str(sample), "--kind", "membranes", "--compare", str(real), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "difference" in printed and "crop 24.0 x 16.0 x 16.0 µm" in printed
    result = json.loads((out / "statistics.json").read_text())
    assert result["comparison"]["volumes"]["real"] == 1
    assert (out / "histograms.png").stat().st_size > 1000
    # a second run refuses to overwrite
    assert main(["measure", str(sample), "--kind", "membranes", "--compare", str(real), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_measure_fit_writes_a_preset_that_loads(sample, tmp_path, capsys):
    preset = tmp_path / "base.yaml"
    preset.write_text(yaml.safe_dump({"kind": "membranes", "shape": [24, 32, 32], "voxel_size": [1, 1, 1],
                                      "simulate": {"organism": "box", "cell_size": 11.0}}))
    out = tmp_path / "fitted.yaml"
    assert main(["measure", str(sample), "--kind", "membranes", "--fit", str(preset), "--preset-out", str(out),
                 "--rounds", "2", "--samples", "1"]) == 0
    text = out.read_text()
    assert text.startswith("# Tissue parameters fitted with `cellsynth measure ")
    fitted = load_preset(out)
    assert fitted["simulate"]["packing"] == "cells"
    assert {"cell_size", "weight_spread", "elongation", "flatness"} <= set(fitted["simulate"])
    assert "round 2/2" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--kind", "membranes", "--fit", "membranes"], "--preset-out"),
    (["--kind", "membranes", "--preset-out", "x.yaml"], "--fit"),
    (["--kind", "membranes", "--crop", ":", "a:b", ":"], "three slices"),
    (["--kind", "nuclei", "--fit", "membranes", "--preset-out", "x.yaml"], "not nuclei"),
    (["--kind", "membranes", "--crops", "0"], "--crops"),
])
def test_measure_bad_options_are_one_line_errors(sample, argv, message, capsys):
    assert main(["measure", str(sample), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_measure_needs_a_voxel_size(tmp_path, capsys):
    np.save(tmp_path / "labels.npy", np.ones((4, 4, 4), np.uint16))
    assert main(["measure", str(tmp_path / "labels.npy"), "--kind", "nuclei"]) == 2
    assert "--voxel-size" in capsys.readouterr().err
    assert main(["measure", str(tmp_path / "labels.npy"), "--kind", "nuclei", "--voxel-size", "1", "1", "1"]) == 0
    assert main(["measure", str(tmp_path), "--kind", "nuclei"]) == 2
    assert "labels.tif" in capsys.readouterr().err


def test_parse_crop():
    assert parse_crop(None) is None
    assert parse_crop([":", "0:150", "10:"]) == (slice(None), slice(0, 150), slice(10, None))
    with pytest.raises(CellsynthError):
        parse_crop(["1", ":", ":"])
