"""The napari plugin's Synthesize and Compare widgets, in a real (hidden) napari viewer.

The work runs in napari worker threads; the tests wait for the workers' signals with
pytest-qt's ``qtbot``. They skip only where napari is not installed (see test_napari_plugin.py).
"""

import functools
import os
import threading

import numpy as np
import pytest
import tifffile

pytest.importorskip("napari")

from napari.utils.notifications import notification_manager  # noqa: E402

from cellsynth import io  # noqa: E402
from cellsynth.cli import main  # noqa: E402
from cellsynth.napari import synthesize_widget as sw  # noqa: E402
from cellsynth.napari.compare_widget import CompareWidget, compare_images  # noqa: E402
from cellsynth.napari.synthesize_widget import SynthesizeWidget  # noqa: E402

WAIT_MS = 120_000
SHAPE, VOXEL = (12, 40, 40), (1.0, 0.5, 0.5)


@pytest.fixture
def widget(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = SynthesizeWidget(viewer)
    widget.kind.value = "nuclei"
    widget.shape.value, widget.voxel_size.value = SHAPE, VOXEL
    widget.radius.value, widget.seed.value, widget.model.value = 3.0, 5, "physics"
    with widget.alpha.changed.blocked():
        widget.alpha.value = 50.0
    return widget


@pytest.fixture
def errors():
    """The error notifications napari shows while the test runs."""
    shown = []

    def record(notification):
        shown.append(str(notification.message))

    notification_manager.notification_ready.connect(record)
    yield shown
    notification_manager.notification_ready.disconnect(record)


def _run(qtbot, widget, start):
    """Start a widget's work and wait until its worker has finished. (The widget connects to
    the worker before starting it; a test connecting afterwards could miss a fast worker's
    signals, so the wait is on the widget's state.)"""
    worker = start()
    assert worker is not None
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)
    return worker


def test_synthesize_gives_the_bytes_of_the_commands(qtbot, widget, tmp_path):
    _run(qtbot, widget, widget.run)
    viewer = widget.viewer
    assert [layer.name for layer in viewer.layers] == [
        "synthesized labels", "synthesized mask", "synthesized foreground", "synthesized image"]
    for layer in viewer.layers:
        np.testing.assert_allclose(layer.scale, VOXEL)
    assert widget.progress.value == widget.progress.max == 2
    widget.folder.value = tmp_path / "widget"
    _run(qtbot, widget, widget.save)

    cli = tmp_path / "cli"
    assert main(["simulate", "nuclei", "--shape", *map(str, SHAPE), "--voxel-size", *map(str, VOXEL),
                 "--radius", "3", "--seed", "5", "--out", str(cli)]) == 0
    assert main(["synthesize", str(cli), "--model", "physics", "--alpha", "50", "--seed", "5"]) == 0
    for name in ("labels", "mask", "foreground", "image"):
        assert (tmp_path / "widget" / f"{name}.tif").read_bytes() == (cli / f"{name}.tif").read_bytes(), name
    np.testing.assert_array_equal(viewer.layers["synthesized labels"].data, tifffile.imread(cli / "labels.tif"))
    saved = io.read_sample(tmp_path / "widget")
    assert saved.metadata["seed"] == 5 and saved.metadata["synthesis"]["alpha"] == 50.0


def test_a_renderer_file_gives_the_bytes_of_synthesize_with_it(qtbot, widget, tmp_path, errors):
    from cellsynth.dataset import load_preset
    from cellsynth.render.renderer_file import write_renderer

    renderer = tmp_path / "renderer.yaml"
    write_renderer(renderer, {"psf_sigma_um": [1.5, 0.4, 0.4], "signal_photons": 3.0}, kind="nuclei")
    assert not widget.renderer_file.native.isHidden()  # shown for physics
    widget.renderer_file.value = tmp_path / "missing.yaml"
    assert widget.run() is None and "missing.yaml" in errors[-1] and "not found" in errors[-1]
    widget.renderer_file.value = renderer
    _run(qtbot, widget, widget.run)
    widget.folder.value = tmp_path / "widget"
    _run(qtbot, widget, widget.save)

    cli = tmp_path / "cli"
    assert main(["simulate", "nuclei", "--shape", *map(str, SHAPE), "--voxel-size", *map(str, VOXEL),
                 "--radius", "3", "--seed", "5", "--out", str(cli)]) == 0
    assert main(["synthesize", str(cli), "--model", "physics", "--renderer", str(renderer), "--alpha", "50",
                 "--seed", "5"]) == 0
    assert (tmp_path / "widget" / "image.tif").read_bytes() == (cli / "image.tif").read_bytes()
    plain = tmp_path / "plain"
    assert main(["simulate", "nuclei", "--shape", *map(str, SHAPE), "--voxel-size", *map(str, VOXEL),
                 "--radius", "3", "--seed", "5", "--out", str(plain)]) == 0
    assert main(["synthesize", str(plain), "--model", "physics", "--alpha", "50", "--seed", "5"]) == 0
    assert (plain / "image.tif").read_bytes() != (cli / "image.tif").read_bytes()  # the file counts

    widget.model.value = "shipped generator"
    assert widget.renderer_file.native.isHidden()
    widget.model.value = "default"
    with widget.alpha.changed.blocked():  # (a preset's alpha would render the last sample again)
        widget.preset.value = "arabidopsis_ovule_nuclei"  # its calibrated renderer and family, as `dataset` has
    preset = load_preset("arabidopsis_ovule_nuclei")
    request = widget.read_request()
    assert request.family == preset["family"] and request.renderer == preset["renderer"]


def test_changing_alpha_renders_again_without_simulating(qtbot, widget, monkeypatch):
    from cellsynth.simulate import pipeline
    from cellsynth.synthesis import synthesize_image

    calls = []
    real_simulate = pipeline.simulate_sample

    @functools.wraps(real_simulate)
    def counting(*args, **kwargs):
        calls.append(1)
        return real_simulate(*args, **kwargs)

    monkeypatch.setattr(pipeline, "simulate_sample", counting)
    _run(qtbot, widget, widget.run)
    labels_before = widget.viewer.layers["synthesized labels"].data.copy()
    image_before = widget.viewer.layers["synthesized image"].data
    widget.alpha.value = 5.0
    assert widget.worker is not None  # rendering again
    qtbot.waitUntil(lambda: widget.worker is None, timeout=WAIT_MS)
    assert calls == [1]
    image = widget.viewer.layers["synthesized image"].data
    sample = widget.sample
    expected = synthesize_image(sample.mask, sample.foreground, VOXEL, model="physics", kind="nuclei", alpha=5.0,
                                seed=5, progress=False)
    np.testing.assert_array_equal(image, expected)
    assert not np.array_equal(image, image_before)
    np.testing.assert_array_equal(widget.viewer.layers["synthesized labels"].data, labels_before)
    assert widget.request.alpha == 5.0 and sample.metadata["synthesis"]["alpha"] == 5.0


def test_a_cancelled_run_leaves_no_folder_and_no_layer(qtbot, widget, tmp_path, monkeypatch):
    release = threading.Event()
    render = sw._render_image
    monkeypatch.setattr(sw, "_render_image", lambda *a: release.wait(WAIT_MS / 1000) and render(*a))
    widget.folder.value = tmp_path / "out"
    widget.save_after_run.value = True
    worker = widget.run()
    qtbot.waitUntil(lambda: widget.progress.value == 1, timeout=WAIT_MS)  # simulated; now rendering (held)
    with qtbot.waitSignal(worker.finished, timeout=WAIT_MS):
        widget.cancel()
        release.set()
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a temporary one
    assert len(widget.viewer.layers) == 0
    assert widget.status.value == "cancelled" and widget.run_button.enabled

    # the same run, not cancelled, writes the whole folder
    _run(qtbot, widget, widget.run)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "foreground.tif", "image.tif", "labels.tif", "log.json", "mask.tif", "positions.csv", "sample.json"]


def test_bad_input_shows_a_notification_and_changes_no_layer(qtbot, widget, tmp_path, errors, monkeypatch):
    widget.viewer.add_image(np.zeros((4, 8, 8)), name="mine")
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    side = int(np.cbrt(memory)) + 1  # a volume of as many voxels as bytes of memory
    widget.shape.value = (side, side, side)
    assert widget.run() is None
    assert "memory" in errors[-1] or "voxels" in errors[-1]
    assert "smaller" in errors[-1]
    widget.shape.value = SHAPE
    widget.model.value = "generator file"
    widget.model_file.value = tmp_path / "missing.pt"
    assert widget.run() is None
    assert "missing.pt" in errors[-1] and "not found" in errors[-1]
    widget.model.value = "physics"
    widget.radius.value = 500.0  # no nucleus fits: the simulation's own checks refuse it up front
    assert widget.run() is None
    assert "do not fit" in errors[-1]
    widget.radius.value = 3.0

    def failing_render(*_):  # a failure while the worker renders (e.g. the renderer runs out of memory)
        raise io.CellsynthError("the renderer failed")

    monkeypatch.setattr(sw, "_render_image", failing_render)
    _run(qtbot, widget, widget.run)
    assert errors[-1] == "cellsynth: the renderer failed"
    assert [layer.name for layer in widget.viewer.layers] == ["mine"]
    assert widget.status.value == "failed"
    assert widget.save() is None and "nothing to save" in errors[-1]


def test_a_preset_fills_the_fields_and_keeps_its_other_settings(widget):
    from cellsynth.dataset import load_preset

    widget.preset.value = "membranes"
    assert widget.kind.value == "membranes"
    assert tuple(widget.shape.value) == (64, 192, 192)
    assert widget.cell_size.value == 14.0 and not widget.radius.visible
    request = widget.read_request()
    assert request.simulate["semi_axes_um"] == [60.0, 86.0, 86.0]
    assert request.simulate["membrane_thickness_um"] == 1.0 and request.simulate["cell_size_um"] == 14.0
    widget.preset.value = sw.CUSTOM
    assert "semi_axes_um" not in widget.read_request().simulate
    widget.preset.value = "arabidopsis_ovule_nuclei"  # values with many decimals are kept exactly
    preset = load_preset("arabidopsis_ovule_nuclei")
    request = widget.read_request()
    assert request.voxel_size == tuple(preset["voxel_size"]) and request.shape == tuple(preset["shape"])
    assert request.simulate["radius_um"] == preset["simulate"]["radius"]
    assert request.simulate["radius_std_um"] == preset["simulate"]["radius_std"]


def test_compare_gives_the_realism_benchmark_and_the_paired_scores(qtbot, make_napari_viewer):
    from cellsynth.evaluate import metrics
    from cellsynth.evaluate.realism import FLOOR, realism_benchmark, realism_volume
    from cellsynth.simulate.pipeline import simulate_sample
    from cellsynth.synthesis import synthesize_image

    sample = simulate_sample("nuclei", (16, 48, 48), VOXEL, np.random.default_rng(0), radius_um=3.0, progress=False)
    real = synthesize_image(sample.mask, sample.foreground, VOXEL, model="physics", seed=1, progress=False)
    synthetic = synthesize_image(sample.mask, sample.foreground, VOXEL, model="physics", alpha=10.0, seed=2,
                                 progress=False)
    viewer = make_napari_viewer()
    viewer.add_image(real, name="real", scale=VOXEL)
    viewer.add_labels(sample.labels, name="labels", scale=VOXEL)
    viewer.add_image(synthetic, name="synthetic", scale=VOXEL)
    viewer.add_labels(sample.mask, name="mask", scale=VOXEL)
    widget = CompareWidget(viewer)
    widget.real.value, widget.synthetic.value = "real", "synthetic"
    widget.real_labels.value, widget.synthetic_mask.value = "labels", "mask"
    _run(qtbot, widget, widget.compare)
    expected = realism_benchmark({"synthetic": [realism_volume(synthetic, VOXEL, mask=sample.mask)]},
                                 [realism_volume(real, VOXEL, kind="nuclei", labels=sample.labels)])
    scores = widget.result["scores"]
    for name in ("histogram_w1", "spectrum", "kid", "cnr", "cnr_ratio"):
        assert scores[name] == pytest.approx(expected["rows"]["synthetic"][name])
    assert widget.result["floor"]["spectrum"] == pytest.approx(expected["rows"][FLOOR]["spectrum"])
    assert "zncc" not in scores and "floor" in widget.table.value and len(widget._figure.axes) == 2

    widget.paired.value = True
    _run(qtbot, widget, widget.compare)
    assert widget.result["scores"]["zncc"] == pytest.approx(metrics.zncc(real, synthetic))
    assert widget.result["scores"]["ssim"] == pytest.approx(metrics.ssim(real, synthetic))
    assert "zncc" in widget.table.value


def test_compare_refuses_mismatched_inputs(make_napari_viewer, errors):
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).random((12, 32, 32)), name="real", scale=VOXEL)
    viewer.add_image(np.random.default_rng(1).random((12, 32, 32)), name="other", scale=(2.0, 1.0, 1.0))
    viewer.add_labels(np.zeros((4, 8, 8), np.uint8), name="small")
    widget = CompareWidget(viewer)
    widget.real.value, widget.synthetic.value = "real", "other"
    widget.real_labels.value = "small"
    assert widget.compare() is None and "not on the grid" in errors[-1]
    widget.real_labels.value = "(none)"
    widget.paired.value = True
    assert widget.compare() is None and "need the real labels" in errors[-1]
    with pytest.raises(io.CellsynthError, match="one shape and voxel size"):
        compare_images(viewer.layers["real"].data, viewer.layers["other"].data, VOXEL, (2.0, 1.0, 1.0),
                       real_labels=np.ones((12, 32, 32), np.uint16), paired=True)
