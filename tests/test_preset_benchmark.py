"""The benchmark from simulated preset samples, and the rule that picks a family's default."""

import numpy as np
import pytest

from cellsynth import dataset
from cellsynth.errors import CellsynthError
from cellsynth.evaluate.preset_benchmark import UNCALIBRATED, benchmark_preset, choose_default, render_preset
from cellsynth.evaluate.realism import FLOOR, RealismVolume

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _row(w1, spectrum, kid, ratio):
    return {"histogram_w1": w1, "spectrum": spectrum, "kid": kid, "cnr_ratio": ratio}


def test_default_wins_three_of_four_and_physics_takes_ties():
    rows = {FLOOR: _row(0, 0, 0, 1), "physics": _row(0.1, 0.5, 9.0, 1.1), "a": _row(0.05, 0.2, 3.0, 0.2),
            "b": _row(0.2, 0.9, 20.0, 1.0)}
    assert choose_default(rows, ["physics", "a", "b"]) == "a"  # a loses only on CNR
    rows["a"] = _row(0.05, 0.2, 30.0, 0.2)  # now two wins, two losses against physics
    assert choose_default(rows, ["physics", "a"]) == "physics"
    rows["b"] = _row(0.01, 0.1, 29.0, 0.2)  # better than a on three measures, equal on CNR
    assert choose_default(rows, ["a", "b"]) == "b"
    assert choose_default({"x": _row(0.1, 0.1, 1.0, None)}, ["x", "missing"]) == "x"
    with pytest.raises(CellsynthError, match="no candidate"):
        choose_default(rows, ["missing"])


def test_render_preset_uses_the_preset_renderer_only_for_physics():
    preset = dataset.apply_overrides(dataset.load_preset("nuclei"), {"shape": [24, 48, 48], "voxel_size": [1, 0.5, 0.5],
                                                                     "simulate.radius": 3.0})
    preset["renderer"] = {"psf_sigma_um": [4.0, 3.0, 3.0], "gain": 1e-3, "read_noise_adu": 0.0}
    sets = render_preset(preset, ["physics", UNCALIBRATED], count=1)
    calibrated, uncalibrated = sets["physics"][0].image, sets[UNCALIBRATED][0].image
    assert calibrated.shape == uncalibrated.shape == (24, 48, 48)
    # the wide PSF and the noise-free camera make the calibrated image far smoother
    assert np.abs(np.diff(calibrated, axis=2)).mean() < 0.2 * np.abs(np.diff(uncalibrated, axis=2)).mean()
    assert sets["physics"][0].structure.any()
    real = [RealismVolume(uncalibrated, preset["voxel_size"])]
    result = benchmark_preset(preset, real, ["physics", UNCALIBRATED], count=1)
    assert result["rows"][UNCALIBRATED]["spectrum"] < result["rows"]["physics"]["spectrum"]
    with pytest.raises(CellsynthError, match="count"):
        render_preset(preset, ["physics"], count=0)
