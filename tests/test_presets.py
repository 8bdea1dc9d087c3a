"""Shipped data set presets: they load, validate, run, and hold the measured real-data values."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from cellsynth import dataset, io
from cellsynth.errors import CellsynthError

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = {"nuclei", "membranes", "arabidopsis_ovule_nuclei", "arabidopsis_ovule_membranes",
            "lateral_root_membranes", "platynereis_nuclei"}


def test_required_presets_are_shipped():
    assert REQUIRED <= set(dataset.preset_names())


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_presets_load_and_validate(name):
    preset = dataset.load_preset(name)
    assert preset["kind"] in ("nuclei", "membranes") and len(preset["shape"]) == 3
    assert preset["description"] and preset["synthesize"]["alpha"]
    assert set(preset["simulate"]) <= set(dataset.simulate_keys())


def test_paper_nuclei_preset_follows_the_paper():
    preset = dataset.load_preset("nuclei")
    assert preset["voxel_size"] == [1.0, 1.0, 1.0]  # radius in µm == radius in voxels
    sim = preset["simulate"]
    assert (sim["radius"], sim["radius_std"], sim["smoothness"]) == (9.0, 1.0, 5.0)


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_preset_parameters_are_accepted_by_the_simulation(name):
    """Each preset simulates (on a smaller volume, so the test stays fast)."""
    from cellsynth.simulate.pipeline import simulate_sample

    preset = dataset.load_preset(name)
    shape = tuple(min(s, 48) for s in preset["shape"])
    simulate = dataset.simulate_arguments(preset["simulate"])
    if "count" in simulate:  # scale the cell count with the volume
        simulate["count"] = max(1, int(simulate["count"] * np.prod(shape) / np.prod(preset["shape"])))
    sample = simulate_sample(preset["kind"], shape, tuple(preset["voxel_size"]), np.random.default_rng(0), **simulate)
    assert sample.labels.shape == shape and sample.labels.max() >= 1


def test_unknown_and_invalid_keys_are_refused(tmp_path):
    good = yaml.safe_load((ROOT / "src/cellsynth/presets/nuclei.yaml").read_text())
    cases = {
        "unknown keys colour": {**good, "colour": "red"},
        "unknown simulate parameters radious": {**good, "simulate": {**good["simulate"], "radious": 3}},
        "unknown synthesize parameters gain": {**good, "synthesize": {**good["synthesize"], "gain": 2}},
        "kind must be nuclei or membranes": {**good, "kind": "cells"},
        "shape must be three positive integers": {**good, "shape": [0, 10, 10]},
        "voxel size must be three positive": {**good, "voxel_size": [1, -1, 1]},
        "alpha must be positive": {**good, "synthesize": {"alpha": [-1]}},
    }
    for message, data in cases.items():
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(data))
        with pytest.raises(CellsynthError, match=message):
            dataset.load_preset(path)
    with pytest.raises(CellsynthError, match="unknown preset 'nucleii'; choose one of"):
        dataset.load_preset("nucleii")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(CellsynthError, match="must be a mapping"):
        dataset.load_preset(tmp_path / "list.yaml")


def test_overrides_apply_and_validate():
    preset = dataset.load_preset("nuclei")
    changed = dataset.apply_overrides(preset, {"shape": [8, 16, 16], "simulate.radius": 4.0,
                                               "synthesize.alpha": "10,500"})
    assert changed["shape"] == [8, 16, 16] and changed["simulate"]["radius"] == 4.0
    assert changed["synthesize"]["alpha"] == [10.0, 500.0]
    assert preset["simulate"]["radius"] == 9.0  # the preset itself is untouched
    for bad in ({"simulate.radious": 1}, {"render.alpha": 1}, {"a.b.c": 1}):
        with pytest.raises(CellsynthError):
            dataset.apply_overrides(preset, bad)


def _measure_module():
    spec = importlib.util.spec_from_file_location("measure_presets", ROOT / "scripts" / "measure_presets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _measured_comment(name: str, key: str) -> float:
    text = (ROOT / "src/cellsynth/presets" / f"{name}.yaml").read_text()
    match = re.search(rf"measured {key}[^\n]*?([0-9.]+)", text)
    assert match, f"{name}.yaml records no measured {key}"
    return float(match.group(1))


@pytest.mark.parametrize("name, file", [
    ("arabidopsis_ovule_nuclei", "nuclei/arabidopsis_ovule_nuclei_1135.h5"),
    ("platynereis_nuclei", "masks_only/platynereis_nuclei_labels_256x256x103.tif"),
    ("arabidopsis_ovule_membranes", "membranes/arabidopsis_ovule_membranes.h5"),
    ("lateral_root_membranes", "membranes/lateral_root_membranes_train.h5"),
])
def test_real_family_presets_match_the_real_labels(shared_data, name, file):
    """The preset records the file's voxel size and the sizes measure_presets finds, and a
    sample simulated with it has the real cell size (and nuclei density) within 10-15%."""
    from cellsynth.simulate.pipeline import simulate_sample

    measure = _measure_module().measure
    labels, voxel = io.read_volume(shared_data / file, "label")
    preset = dataset.load_preset(name)
    if voxel is not None:
        assert preset["voxel_size"] == pytest.approx(voxel, rel=1e-6)
    voxel = tuple(preset["voxel_size"])
    real = measure(labels, voxel)
    sample = simulate_sample(preset["kind"], preset["shape"], voxel, np.random.default_rng(0), progress=False,
                             **dataset.simulate_arguments(preset["simulate"]))
    simulated = measure(sample.labels, voxel)
    if preset["kind"] == "nuclei":
        assert preset["simulate"]["radius"] == pytest.approx(real["interior_diameter_um_mean"] / 2, rel=0.01)
        assert preset["simulate"]["radius_std"] == pytest.approx(real["interior_diameter_um_std"] / 2, rel=0.01)
        assert _measured_comment(name, "density") == pytest.approx(real["cells_per_1000_um3"], rel=0.01)
        assert simulated["interior_diameter_um_mean"] == pytest.approx(real["interior_diameter_um_mean"], rel=0.1)
        assert simulated["cells_per_1000_um3"] == pytest.approx(real["cells_per_1000_um3"], rel=0.15)
    else:
        assert _measured_comment(name, "cell size") == pytest.approx(real["chord_diameter_um"], rel=0.01)
        assert simulated["chord_diameter_um"] == pytest.approx(real["chord_diameter_um"], rel=0.1)


def test_chord_estimate_recovers_known_cell_size():
    """On a regular grid of cubes of side a, the chord estimate gives 1.5 a exactly, and
    the interior equivalent diameter is that of the cube."""
    a = 8
    grid = np.arange(64) // a
    labels = (grid[:, None, None] * 64 + grid[None, :, None] * 8 + grid[None, None, :] + 1).astype(np.int32)
    stats = _measure_module().measure(labels, (1.0, 1.0, 1.0))
    changes_per_um = 7 * 64 * 64 * 3 / (3 * labels.size)
    assert stats["chord_diameter_um"] == pytest.approx(1.5 / changes_per_um, rel=1e-4)
    assert stats["interior_diameter_um_mean"] == pytest.approx((6 * a**3 / np.pi) ** (1 / 3), rel=1e-4)
    assert stats["interior_cells"] == 6 ** 3 and stats["cells"] == 8 ** 3
