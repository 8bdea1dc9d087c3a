"""Fitting tissue parameters: simulated tissue fitted back to itself."""

import numpy as np
import pytest

from cellsynth.errors import CellsynthError
from cellsynth.evaluate.tissue import STATISTICS, measure_cells
from cellsynth.simulate.fit import (
    MEMBRANE_CROP_TARGETS,
    MEMBRANE_TARGETS,
    choose_targets,
    fit_size_gradient,
    fit_tissue,
)
from cellsynth.simulate.pipeline import simulate_sample


def test_membrane_tissue_is_fitted_back_to_its_own_parameters():
    truth = {"organism": "box", "packing": "cells", "cell_size_um": 7.0, "weight_spread": 0.3, "elongation": 2.2,
             "flatness": 0.5, "stretch": [0.8, 1.0, 1.0]}
    real = simulate_sample("membranes", (32, 48, 48), (1, 1, 1), np.random.default_rng(100), progress=False, **truth)
    start = {"organism": "box", "cell_size_um": 10.0}
    fit = fit_tissue([(real.labels, (1, 1, 1))], "membranes", (32, 48, 48), (1, 1, 1), start, rounds=8, samples=1,
                     only=["cell_size_um", "weight_spread", "elongation", "flatness", "stretch"])
    p = fit.parameters
    assert p["packing"] == "cells"
    assert p["cell_size_um"] == pytest.approx(7.0, rel=0.1)
    assert p["elongation"] == pytest.approx(2.2, rel=0.15)
    assert p["weight_spread"] == pytest.approx(0.3, abs=0.1)
    assert p["stretch"][0] / p["stretch"][2] == pytest.approx(0.8, rel=0.1)
    assert {t.parameter for t in fit.targets} == {"cell_size_um", "weight_spread", "elongation", "flatness",
                                                   "stretch.z", "stretch.y"}
    assert "cell_size_um" in fit.report() and len(fit.history) == 8


def test_nuclei_are_fitted_back_to_their_own_parameters():
    truth = {"organism": "box", "placement": "uniform", "count": 40, "cell_size_um": 8.0, "radius_um": 2.5,
             "radius_std_um": 0.25, "elongation": 1.4, "orientation": [1.0, 0.0, 0.0], "sh_order": 8}
    voxel = (0.5, 0.25, 0.25)
    real = simulate_sample("nuclei", (48, 96, 96), voxel, np.random.default_rng(3), progress=False, **truth)
    start = {**truth, "count": 20, "radius_um": 3.5, "radius_std_um": 0.5, "elongation": 1.0, "cell_size_um": 11.0}
    fit = fit_tissue([(real.labels, voxel)], "nuclei", (48, 96, 96), voxel, start, rounds=8, samples=1)
    p = fit.parameters
    assert p["radius_um"] == pytest.approx(2.5, rel=0.08)
    assert p["elongation"] == pytest.approx(1.4, rel=0.12)
    assert p["count"] == pytest.approx(40, rel=0.2)
    assert np.allclose(p["orientation"], [1, 0, 0], atol=0.1)  # the real nuclei are aligned along z


def test_targets_follow_what_the_labels_hold():
    small = np.arange(1, 9, dtype=np.uint16).reshape(2, 2, 2).repeat(4, 0).repeat(4, 1).repeat(4, 2)
    tables = [measure_cells(small, (1, 1, 1), sphericity=False)]  # every cell touches the border
    assert choose_targets("membranes", tables) == list(MEMBRANE_CROP_TARGETS)


def test_both_fits_whole_cell_size_and_orientation_with_cut_cell_shape():
    small = np.arange(1, 9, dtype=np.uint16).reshape(2, 2, 2).repeat(4, 0).repeat(4, 1).repeat(4, 2)
    targets = choose_targets("membranes", [measure_cells(small, (1, 1, 1), sphericity=False)], "both")
    pairs = {t.parameter: t.statistic for t in targets}
    assert pairs["cell_size_um"] == "volume_mean_um3"
    assert pairs["orientation_bias.z"] == "long_axis_z" and pairs["orientation_bias.y"] == "long_axis_y"
    assert pairs["elongation"] == "elongation_median_all" and pairs["weight_spread"] == "volume_cv_all"
    assert len(pairs) == len(targets) == 9  # one statistic per parameter
    whole = {k for k, v in pairs.items() if STATISTICS[v][1] == "interior"}
    assert whole == {"cell_size_um", "orientation_bias.z", "orientation_bias.y"}

    truth = {"organism": "box", "packing": "cells", "cell_size_um": 6.0, "elongation": 2.0, "flatness": 0.5}
    real = simulate_sample("membranes", (32, 40, 40), (1, 1, 1), np.random.default_rng(7), progress=False, **truth)
    fit = fit_tissue([(real.labels, (1, 1, 1))], "membranes", (32, 40, 40), (1, 1, 1), truth, statistics="both",
                     crop_um=(16, 20, 20), rounds=1, samples=1, crops=2, only=["cell_size_um", "elongation"])
    assert set(fit.comparisons) == {"whole", "crops"}
    assert fit.by_crop == {"volume_mean_um3": False, "elongation_median_all": True}
    assert "(whole volumes)" in fit.report() and "(crops)" in fit.report()
    with pytest.raises(CellsynthError, match="must be one of"):
        choose_targets("membranes", [measure_cells(small, (1, 1, 1), sphericity=False)], "some")


def test_size_gradient_is_fitted_back_to_its_own_value():
    truth = {"organism": "box", "packing": "cells", "cell_size_um": 6.0, "size_gradient": [0.0, 0.02, 0.0]}
    real = simulate_sample("membranes", (20, 96, 20), (1, 1, 1), np.random.default_rng(100), progress=False,
                           **truth).labels
    start = {"organism": "box", "packing": "cells", "cell_size_um": 8.0}
    fit = fit_size_gradient(real[:, :72], (1, 1, 1), (20, 96, 20), (1, 1, 1), start, axis=1, slab_um=12.0,
                            region=(slice(None), slice(0, 72), slice(None)), rounds=8, samples=1, seed=1)
    p = fit.parameters
    assert p["size_gradient"][0] == p["size_gradient"][2] == 0.0
    assert p["size_gradient"][1] == pytest.approx(0.02, abs=0.008)
    assert p["cell_size_um"] == pytest.approx(6.0, rel=0.12)
    assert fit.simulated[0] == pytest.approx(fit.real[0], abs=0.1) and len(fit.history) == 8
    assert "size gradient" in fit.report()


def test_fit_refuses_bad_input():
    with pytest.raises(CellsynthError, match="kind"):
        fit_tissue([(np.ones((8, 8, 8), np.uint8), (1, 1, 1))], "cells", (8, 8, 8), (1, 1, 1), {})
    with pytest.raises(CellsynthError, match="at least one real"):
        fit_tissue([], "membranes", (8, 8, 8), (1, 1, 1), {})
    with pytest.raises(CellsynthError, match="no volume_cv_all"):
        fit_tissue([(np.zeros((8, 8, 8), np.uint8), (1, 1, 1))], "membranes", (8, 8, 8), (1, 1, 1), {})
    labels = np.arange(1, 9, dtype=np.uint16).reshape(2, 2, 2).repeat(4, 0).repeat(4, 1).repeat(4, 2)
    with pytest.raises(CellsynthError, match="cannot fit radius_um"):
        fit_tissue([(labels, (1, 1, 1))], "membranes", (8, 8, 8), (1, 1, 1), {}, only=["radius_um"])
