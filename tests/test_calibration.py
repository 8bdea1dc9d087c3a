"""Calibration of the physics renderer: each estimate against a known answer, the whole fit
on an image the renderer itself made, renderer files, and the command's failure paths."""

import math

import numpy as np
import pytest
import yaml
from scipy import ndimage

from cellsynth import io
from cellsynth.cli import main
from cellsynth.errors import CellsynthError
from cellsynth.render import calibration as C
from cellsynth.render.physics import PhysicsRenderer
from cellsynth.render.renderer_file import read_renderer, renderer_parameters, write_renderer
from cellsynth.synthesis import synthesize_image

pytestmark = pytest.mark.usefixtures("torch_one_thread")

VOXEL = (0.5, 0.25, 0.25)


def _nuclei_labels(rng, shape=(24, 72, 72), count=14, radius_um=1.6):
    labels = np.zeros(shape, np.uint16)
    grid = np.stack(np.meshgrid(*[np.arange(s) * v for s, v in zip(shape, VOXEL)], indexing="ij"), -1)
    extent = np.asarray(shape) * VOXEL
    for label in range(1, count + 1):
        centre = rng.uniform(radius_um, extent - radius_um)
        labels[np.linalg.norm(grid - centre, axis=-1) < radius_um] = label
    return labels


def test_noise_line_of_poisson_gaussian_noise(rng):
    shape = (24, 64, 64)
    signal = 0.5 + 300 * np.linspace(0, 1, shape[0])[:, None, None] ** 2 * (1 + 0.2 * np.sin(np.arange(shape[2]) / 5))
    gain, read = 2.0, 3.0  # ADU per photon, ADU
    image = gain * rng.poisson(np.broadcast_to(signal, shape)) + rng.normal(0, read, shape)
    noise = C.noise_model(image, np.ones(shape, bool))
    # variance = gain^2 photons + read^2 = gain * mean + read^2
    assert noise["gain"] == pytest.approx(gain, rel=0.05)
    assert noise["intercept"] == pytest.approx(read**2, abs=2.0)


def test_psf_fit_recovers_anisotropic_widths(rng):
    labels = _nuclei_labels(rng)
    sigma = np.array([0.9, 0.35, 0.3])
    image = ndimage.gaussian_filter((labels > 0).astype(float), sigma / VOXEL, mode="nearest") * 50 + 10
    image += rng.normal(0, 0.5, image.shape)
    fitted, loss = C.fit_psf(image, labels > 0, VOXEL)
    np.testing.assert_allclose(fitted, sigma, rtol=0.03)
    assert 0 <= loss < 0.3  # noise and the crop edges leave some energy unexplained; a wrong mask leaves most


def test_levels_recover_per_cell_brightness(rng):
    labels = _nuclei_labels(rng, count=8)
    ids = np.unique(labels)[1:]
    brightness = np.zeros(labels.max() + 1)
    brightness[ids] = rng.uniform(0.5, 1.5, ids.size)
    brightness[ids] /= np.average(brightness[ids], weights=np.bincount(labels.ravel())[ids])
    sigma = np.array([0.8, 0.3, 0.3])
    image = 7.0 + 40.0 * ndimage.gaussian_filter(brightness[labels] * (labels > 0), sigma / VOXEL, mode="nearest",
                                                 truncate=3.0)
    levels = C.fit_levels(image, np.ones(image.shape, bool), labels > 0, labels.astype(np.int64), sigma,
                          np.asarray(VOXEL), rounds=12)
    assert levels["beta0"] == pytest.approx(7.0, abs=0.05) and levels["beta1"] == pytest.approx(40.0, rel=0.01)
    np.testing.assert_allclose(levels["brightness"], brightness[levels["ids"]], rtol=0.02)


def test_amplitude_solver_and_diameter():
    assert C.solve_amplitude(lambda a: 2 * a, 1.0) == pytest.approx(0.5, abs=1e-6)
    assert C.solve_amplitude(lambda a: a, 10.0) == 4.0 and C.solve_amplitude(lambda a: a, 0.0) == 0.0
    cube = np.zeros((20, 20, 20), np.uint16)
    cube[5:15, 5:15, 5:15] = 1  # 1000 voxels of 1 µm^3: diameter (6000 / pi)^(1/3)
    assert C.cell_diameter_um(cube, np.ones(3), "nuclei") == pytest.approx((6000 / math.pi) ** (1 / 3))
    slabs = np.repeat(np.arange(1, 11), 4)[None, None, :].repeat(4, 0).repeat(4, 1).astype(np.uint16)
    # cells 4 µm long along x, unbounded along z and y: 9 changes per 39 µm of line along x only
    expected = 1.5 * (4 * 4 * 39 + 2 * 3 * 4 * 40) / (9 * 16)
    assert C.cell_diameter_um(slabs, np.ones(3), "membranes") == pytest.approx(expected)


def _rendered(rng, params, seed=3):
    labels = _nuclei_labels(rng, shape=(32, 96, 96), count=30, radius_um=1.8)
    image = synthesize_image((labels > 0).astype(np.uint8), np.ones(labels.shape, np.uint8), VOXEL,
                             model=PhysicsRenderer(VOXEL, seed=seed, **params), kind="nuclei", progress=False)
    return np.round(image * params["white_adu"]).astype(np.uint16), labels


def test_calibration_recovers_a_rendered_microscope(rng):
    truth = {"psf_sigma_um": [0.8, 0.3, 0.3], "depth_blur_um": 0.0, "attenuation": 0.0, "brightness_variation": 0.3,
             "texture": 0.0, "autofluorescence": 0.2, "signal_photons": 60.0, "background_photons": 0.0,
             "gain": 4.0, "read_noise_adu": 2.0, "offset_adu": 0.0, "white_adu": 1000.0}
    image, labels = _rendered(rng, truth)
    result = C.calibrate_renderer(image, labels, VOXEL, "nuclei", holdout=0.25, progress=False)
    p = result.parameters
    np.testing.assert_allclose(p["psf_sigma_um"], truth["psf_sigma_um"], rtol=0.1)
    assert p["gain"] == pytest.approx(truth["gain"], rel=0.15)
    assert p["gain"] * p["signal_photons"] == pytest.approx(truth["gain"] * truth["signal_photons"], rel=0.05)
    assert p["autofluorescence"] == pytest.approx(truth["autofluorescence"], abs=0.05)
    assert result.membrane_thickness_um is None
    for part in ("fitted", "held_out"):  # the fit beats the defaults on the benchmark
        rows = result.scores[part]
        assert rows["calibrated"]["spectrum"] < rows["defaults"]["spectrum"]
        assert rows["calibrated"]["histogram_w1"] < rows["defaults"]["histogram_w1"]
    assert any("background_photons" in note for note in result.notes)


def test_calibration_refuses_bad_input(rng):
    image, labels = _rendered(rng, {"white_adu": 300.0})
    with pytest.raises(CellsynthError, match="differ in shape"):
        C.calibrate_renderer(image, labels[:, :-1], VOXEL, "nuclei", progress=False)
    with pytest.raises(CellsynthError, match="no structure"):
        C.calibrate_renderer(image, np.zeros_like(labels), VOXEL, "nuclei", progress=False)
    shuffled = rng.permutation(image.ravel()).reshape(image.shape)  # the labels do not belong to it
    with pytest.raises(CellsynthError, match="not visible"):
        C.calibrate_renderer(shuffled, labels, VOXEL, "nuclei", progress=False)
    with pytest.raises(CellsynthError, match="unknown kind"):
        C.calibrate_renderer(image, labels, VOXEL, "cells", progress=False)


def test_renderer_file_round_trip_and_errors(tmp_path):
    params = {"psf_sigma_um": [0.5, 0.2, 0.2], "gain": 2.0, "texture": 0.1}
    write_renderer(tmp_path / "r.yaml", params, kind="membranes", membrane_thickness_um=0.75, header="made by a test",
                   extra={"notes": ["a note"]})
    text = (tmp_path / "r.yaml").read_text()
    assert text.startswith("# made by a test\n")
    record = read_renderer(tmp_path / "r.yaml")
    assert record["membrane_thickness_um"] == 0.75 and record["notes"] == ["a note"]
    assert renderer_parameters(tmp_path / "r.yaml") == params
    assert renderer_parameters({"gain": 3}) == {"gain": 3}
    with pytest.raises(CellsynthError, match="unknown physics parameters exposure"):
        renderer_parameters({"exposure": 3})
    with pytest.raises(CellsynthError, match="not found"):
        read_renderer(tmp_path / "missing.yaml")
    (tmp_path / "other.yaml").write_text(yaml.safe_dump({"gain": 2}))
    with pytest.raises(CellsynthError, match="not a renderer file"):
        read_renderer(tmp_path / "other.yaml")
    with pytest.raises(CellsynthError, match="gain must be positive"):
        write_renderer(tmp_path / "bad.yaml", {"gain": -1}, kind="nuclei")
    assert not (tmp_path / "bad.yaml").exists()


def test_calibrate_command_and_renderer_use(tmp_path, rng, capsys):
    import h5py

    image, labels = _rendered(rng, {"white_adu": 1000.0, "signal_photons": 80.0, "gain": 3.0})
    with h5py.File(tmp_path / "real.h5", "w") as h5:
        h5["raw"], h5["label"] = image, labels
        h5["raw"].attrs["element_size_um"] = VOXEL
    out = tmp_path / "renderer.yaml"
    assert main(["calibrate", str(tmp_path / "real.h5"), "--kind", "nuclei", "--out", str(out)]) == 0
    record = read_renderer(out)
    assert "cellsynth calibrate" in out.read_text().splitlines()[1]
    assert record["kind"] == "nuclei" and set(record["scores"]) == {"fitted", "held_out"}
    assert "psf_sigma_um" in capsys.readouterr().out
    # the renderer renders a labels file, and is refused for a generator
    io.write_tiff(tmp_path / "labels.tif", labels, VOXEL)
    assert main(["synthesize", str(tmp_path / "labels.tif"), "--kind", "nuclei", "--model", "physics", "--renderer",
                 str(out), "--out", str(tmp_path / "image.tif")]) == 0
    written, _ = io.read_volume(tmp_path / "image.tif")
    assert written.shape == labels.shape and written.max() > 0
    assert main(["synthesize", str(tmp_path / "labels.tif"), "--kind", "nuclei", "--renderer", str(out),
                 "--out", str(tmp_path / "other.tif")]) == 2
    assert "add --model physics" in capsys.readouterr().err
    # bad input: one line, exit 2, no file written
    np.save(tmp_path / "real.npy", image)
    io.write_tiff(tmp_path / "short.tif", labels[:, :-1], VOXEL)
    io.write_tiff(tmp_path / "real.tif", image, VOXEL)
    cases = [
        (["calibrate", str(tmp_path / "real.npy"), "--kind", "nuclei", "--labels", str(tmp_path / "labels.tif")],
         "records no voxel size"),
        (["calibrate", str(tmp_path / "real.tif"), "--kind", "nuclei"], "cellsynth annotate"),
        (["calibrate", str(tmp_path / "real.tif"), "--kind", "nuclei", "--labels", str(tmp_path / "short.tif")],
         "differ in shape"),
    ]
    for argv, message in cases:
        target = tmp_path / "new.yaml"
        assert main([*argv, "--out", str(target)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert not target.exists()
    assert main(["calibrate", str(tmp_path / "real.h5"), "--kind", "nuclei", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_a_fit_that_does_not_converge_is_one_line_and_writes_nothing(tmp_path, rng, capsys, monkeypatch):
    image, labels = _rendered(rng, {"white_adu": 300.0})
    io.write_tiff(tmp_path / "real.tif", image, VOXEL)
    io.write_tiff(tmp_path / "labels.tif", labels, VOXEL)
    stopped = C.optimize.OptimizeResult(x=np.array([0.6, 0.2, 0.2]), fun=1.0, success=False,
                                        message="Maximum number of iterations has been exceeded.")
    monkeypatch.setattr(C.optimize, "minimize", lambda *a, **k: stopped)
    target = tmp_path / "renderer.yaml"
    assert main(["calibrate", str(tmp_path / "real.tif"), "--kind", "nuclei", "--labels", str(tmp_path / "labels.tif"),
                 "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert "did not converge" in err and "Maximum number of iterations" in err and len(err.strip().splitlines()) == 1
    assert not target.exists()


def test_preset_renderer_key(tmp_path):
    from cellsynth import dataset

    preset = dataset.load_preset("nuclei")
    preset["renderer"] = {"psf_sigma_um": [2.0, 1.0, 1.0], "gain": 3.0}
    checked = dataset.validate_parameters(preset)
    assert checked["renderer"] == {"psf_sigma_um": [2.0, 1.0, 1.0], "gain": 3.0}
    with pytest.raises(CellsynthError, match="unknown physics parameters"):
        dataset.validate_parameters({**preset, "renderer": {"exposure": 1}})
    write_renderer(tmp_path / "r.yaml", {"gain": 5.0}, kind="nuclei")
    path = tmp_path / "preset.yaml"
    path.write_text(yaml.safe_dump({**{k: v for k, v in preset.items() if k != "renderer"}, "renderer": "r.yaml"}))
    assert dataset.load_preset(path)["renderer"] == {"gain": 5.0}  # a file beside the preset


def test_refinement_on_simulated_masks_undoes_an_overestimated_spread(rng, monkeypatch):
    # the "real" image: nuclei rendered with a small brightness spread; the labels' fit gave four times as
    # much (as labels that miss the real boundaries do). Renders of other, simulated masks of the same
    # tissue must bring it back down; the signal level, which is right, must stay.
    from cellsynth.evaluate.realism import realism_volume

    truth = {"psf_sigma_um": [0.8, 0.3, 0.3], "depth_blur_um": 0.0, "attenuation": 0.0, "brightness_variation": 0.25,
             "brightness_scale_um": 4.0, "texture": 0.0, "autofluorescence": 0.1, "autofluorescence_variation": 0.0,
             "autofluorescence_scale_um": 4.0, "tissue_texture": 0.0, "signal_photons": 200.0,
             "background_photons": 0.0, "gain": 1.0, "read_noise_adu": 1.0, "offset_adu": 0.0, "white_adu": 400.0}
    # the spread and the level only (the other candidates are the same search, and take time)
    monkeypatch.setattr(C, "REFINED", {k: C.REFINED[k] for k in ("brightness_variation", "signal_photons")})
    image, labels = _rendered(rng, truth)
    real = realism_volume(image, VOXEL, kind="nuclei", labels=labels)
    masks = [_nuclei_labels(rng, shape=(32, 96, 96), count=30, radius_um=1.8) > 0]
    refined, scores = C.refine_on_simulated({**truth, "brightness_variation": 1.0}, real, "nuclei", masks, seed=5)
    assert refined == truth
    assert len(scores) == 8 and min(scores.values()) < 0.5 * max(scores.values())  # 5 spreads, 3 more levels
    with pytest.raises(CellsynthError, match="at least one simulated mask"):
        C.refine_on_simulated(truth, real, "nuclei", [])


def test_refinement_on_simulated_masks_widens_an_underestimated_axial_psf(rng, monkeypatch):
    # the labels' fit gave half the real PSF width along z (wall thickness and PSF trade off there); renders of
    # simulated masks must find the real width among the axial candidates and leave y and x as they were
    from cellsynth.evaluate.realism import realism_volume

    truth = {"psf_sigma_um": [1.2, 0.3, 0.3], "depth_blur_um": 0.0, "attenuation": 0.0, "brightness_variation": 0.0,
             "texture": 0.0, "autofluorescence": 0.1, "signal_photons": 200.0, "background_photons": 0.0,
             "gain": 1.0, "read_noise_adu": 1.0, "offset_adu": 0.0, "white_adu": 400.0}
    monkeypatch.setattr(C, "REFINED", {"psf_sigma_um": C.REFINED["psf_sigma_um"]})
    image, labels = _rendered(rng, truth)
    real = realism_volume(image, VOXEL, kind="nuclei", labels=labels)
    masks = [_nuclei_labels(rng, shape=(32, 96, 96), count=30, radius_um=1.8) > 0]
    refined, scores = C.refine_on_simulated({**truth, "psf_sigma_um": [0.6, 0.3, 0.3]}, real, "nuclei", masks,
                                            seed=5)
    assert refined["psf_sigma_um"] == [1.2, 0.3, 0.3]
    assert sorted(scores) == sorted(f"psf_sigma_um {z:.4g} 0.3 0.3" for z in (0.6, 0.45, 0.75, 0.9, 1.2))


def test_refinement_takes_back_a_change_that_a_later_one_made_unnecessary(monkeypatch):
    # the search itself, on a known score: dye texture helps only while the tissue has none, and tissue texture
    # helps more. Round 1 takes both; round 2 must compare the dye texture with the labels' value (0) again and
    # go back to it, since with tissue texture it no longer lowers the score
    from cellsynth.evaluate import realism

    def fake_score(values):
        return 1.0 - 0.1 * (values["texture"] == 1.0) * (values["tissue_texture"] == 0.0) \
            - 0.3 * (values["tissue_texture"] == 1.0)

    monkeypatch.setattr(C, "REFINED", {k: C.REFINED[k] for k in ("texture", "tissue_texture")})
    monkeypatch.setattr(C, "_render", lambda mask, voxel, kind, values, seed: dict(values))
    monkeypatch.setattr(realism, "realism_volume", lambda image, voxel, mask=None: image)
    monkeypatch.setattr(realism, "realism_benchmark",
                        lambda sets, real, **kw: {"rows": {"candidate": sets["candidate"][0]}})
    monkeypatch.setattr(C, "simulated_score", fake_score)
    real = realism.RealismVolume(np.zeros((4, 4, 4)), (1.0, 1.0, 1.0))
    start = {"psf_sigma_um": [1.0, 1.0, 1.0], "texture": 0.0, "tissue_texture": 0.0}
    refined, scores = C.refine_on_simulated(start, real, "nuclei", [np.ones((4, 4, 4))])
    assert (refined["texture"], refined["tissue_texture"]) == (0.0, 1.0)
    assert min(scores.values()) == pytest.approx(0.7)


@pytest.mark.parametrize("name", ["arabidopsis_ovule_membranes", "lateral_root_membranes", "arabidopsis_ovule_nuclei"])
def test_preset_renderer_does_not_saturate_simulated_tissue(name):
    # the real volumes clip 0.11 % (ovule membranes), 0 % and 0 % of their voxels at white. Fitted on the
    # real labels alone, the ovule membranes' renderer clipped 3.0 % of this sample (white areas where walls
    # meet); refined on simulated masks (calibration step 8) 1.4 %
    from cellsynth import dataset
    from cellsynth.simulate.annotations import structure_mask

    preset = dataset.load_preset(name)
    voxel = tuple(preset["voxel_size"])
    labels = C.preset_labels(preset, voxel, count=1)[0]
    mask = structure_mask(labels, preset["kind"], voxel,
                          membrane_thickness_um=preset["simulate"].get("membrane_thickness") or 1.0)
    image = C._render(mask, np.asarray(voxel), preset["kind"], preset["renderer"], seed=0)
    assert (image >= 1.0).mean() < 0.025


def test_calibrate_command_refines_on_a_preset(tmp_path, rng, capsys, monkeypatch):
    import h5py

    monkeypatch.setattr(C, "REFINED", {k: C.REFINED[k] for k in ("brightness_variation", "signal_photons")})
    image, labels = _rendered(rng, {"white_adu": 1000.0, "signal_photons": 80.0, "gain": 3.0})
    with h5py.File(tmp_path / "real.h5", "w") as h5:
        h5["raw"], h5["label"] = image, labels
        h5["raw"].attrs["element_size_um"] = VOXEL
    preset = {"kind": "nuclei", "shape": [24, 64, 64], "voxel_size": list(VOXEL),
              "simulate": {"organism": "box", "placement": "uniform", "count": 12, "radius": 1.8, "radius_std": 0.1},
              "synthesize": {"model": "physics", "alpha": [100], "beta": 100}}
    (tmp_path / "preset.yaml").write_text(yaml.safe_dump(preset))
    out = tmp_path / "renderer.yaml"
    assert main(["calibrate", str(tmp_path / "real.h5"), "--kind", "nuclei", "--preset", str(tmp_path / "preset.yaml"),
                 "--simulated-count", "1", "--out", str(out)]) == 0
    record = read_renderer(out)
    assert any(note.startswith("refined on 1 simulated masks") for note in record["notes"])
    assert record["fit"]["simulated_losses"] and "--preset" in out.read_text().splitlines()[1]
    capsys.readouterr()
    # a preset of the other kind: one line, nothing written
    target = tmp_path / "other.yaml"
    assert main(["calibrate", str(tmp_path / "real.h5"), "--kind", "nuclei", "--preset", "membranes",
                 "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert "simulates membranes, not nuclei" in err and len(err.strip().splitlines()) == 1 and not target.exists()
