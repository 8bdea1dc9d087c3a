"""Shipped data set presets: they load, validate, run, and hold the measured real-data values."""

from __future__ import annotations

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


# preset: (file, region the fit did not read or read, statistics with their tolerance)
REAL_FAMILIES = {
    # cells: the preset is fitted to the ovule-like labels, whose crops of this size hold 23 % more
    # cells than the ovule crop (docs/tissue.md); the paper's Eq. 3 preset is +100 %
    "arabidopsis_ovule_membranes": ("membranes/arabidopsis_ovule_membranes.h5", np.s_[:, :, :],
                                    {"cells": 0.5, "elongation_median_all": 0.2, "volume_cv_all": 0.25}),
    # volume CV: over single simulated crops of this size its standard deviation is about 20 %
    "lateral_root_membranes": ("membranes/lateral_root_membranes_train.h5", np.s_[:, :150, :],
                               {"cells": 0.2, "elongation_median_all": 0.15, "volume_cv_all": 0.3}),
    "arabidopsis_ovule_nuclei": ("nuclei/arabidopsis_ovule_nuclei_1135.h5", np.s_[:, :75, :],
                                 {"radius_mean_um": 0.1, "sphericity_median": 0.05}),
    "platynereis_nuclei": ("masks_only/platynereis_nuclei_labels_256x256x103.tif", np.s_[:, :, :192],
                           {"radius_mean_um": 0.15, "sphericity_median": 0.05}),
}


@pytest.mark.parametrize("name", sorted(REAL_FAMILIES))
def test_real_family_presets_match_the_real_labels(shared_data, name):
    """The preset records the real file's voxel size, and a sample simulated with it has the
    real labels' tissue statistics (crop for crop) within a tolerance."""
    from cellsynth.evaluate.tissue import compare_tissue
    from cellsynth.simulate.pipeline import simulate_sample

    file, region, tolerances = REAL_FAMILIES[name]
    labels, voxel = io.read_volume(shared_data / file, "label")
    preset = dataset.load_preset(name)
    if voxel is not None:
        assert preset["voxel_size"] == pytest.approx(voxel, rel=1e-6)
    voxel = tuple(preset["voxel_size"])
    real = np.ascontiguousarray(labels[region])
    membranes = preset["kind"] == "membranes"
    # the presets fitted in place cut their samples from tissue 8 µm wider (margin), so that faces cut cells as
    # in the real crop; membranes: samples of the real region's size, two; nuclei: crops of the preset's shape
    assert preset["simulate"].get("margin") == (None if name == "platynereis_nuclei" else 8)
    shape = real.shape if membranes else preset["shape"]
    samples = [simulate_sample(preset["kind"], shape, voxel, np.random.default_rng(seed), progress=False,
                               **dataset.simulate_arguments(preset["simulate"])).labels
               for seed in ((0, 1) if membranes else (0,))]
    comparison = compare_tissue([(real, voxel)], [(s, voxel) for s in samples], preset["kind"],
                                sphericity=not membranes)
    for statistic, tolerance in tolerances.items():
        assert abs(comparison.relative_difference[statistic]) <= tolerance, (statistic, comparison.table())


def test_presets_say_how_their_tissue_was_fitted():
    for name in REAL_FAMILIES:
        text = (ROOT / "src/cellsynth/presets" / f"{name}.yaml").read_text()
        assert "cellsynth measure" in text and "--fit " + name in text
