"""The napari plugin's reader, writer and sample data, in a real (hidden) napari viewer.

These tests need napari and a Qt binding (the ``test`` extra installs them) and run headless:
Qt's offscreen platform (tests/conftest.py) on the X display that pytest-xvfb starts, which
gives vispy its OpenGL context. They skip only where napari is not installed.
"""

import json

import numpy as np
import pytest
import tifffile

pytest.importorskip("napari")

from cellsynth import io  # noqa: E402
from cellsynth.cli import main  # noqa: E402
from cellsynth.napari import layers as napari_layers  # noqa: E402
from cellsynth.napari.reader import get_reader  # noqa: E402

VOXEL = (1.0, 0.5, 0.5)


@pytest.fixture(scope="module")
def sample_folder(tmp_path_factory):
    """A nuclei sample folder with its image, made by the commands."""
    folder = tmp_path_factory.mktemp("napari") / "s1"
    assert main(["simulate", "nuclei", "--shape", "12", "40", "40", "--voxel-size", *map(str, VOXEL), "--radius", "3",
                 "--seed", "2", "--out", str(folder)]) == 0
    assert main(["synthesize", str(folder), "--model", "physics", "--seed", "2"]) == 0
    return folder


def test_the_manifest_declares_every_contribution():
    import npe2

    manifest = npe2.PluginManifest.from_distribution("cellsynth")
    contributions = manifest.contributions
    assert [r.command for r in contributions.readers] == ["cellsynth.get_reader"]
    assert contributions.readers[0].accepts_directories
    assert [w.display_name for w in contributions.widgets] == ["Synthesize", "Compare"]
    assert {s.key for s in contributions.sample_data} == {"nuclei", "membranes"}
    assert contributions.writers[0].layer_types == ["labels+", "image*"]
    for command in contributions.commands:  # every python_name resolves
        module, name = command.python_name.split(":")
        assert getattr(__import__(module, fromlist=[name]), name)


def test_reader_opens_a_sample_folder_at_its_voxel_size(make_napari_viewer, sample_folder):
    viewer = make_napari_viewer()
    layers = viewer.open(sample_folder, plugin="cellsynth")
    assert [(layer.name, type(layer).__name__) for layer in layers] == [
        ("s1 labels", "Labels"), ("s1 mask", "Labels"), ("s1 foreground", "Labels"), ("s1 image", "Image")]
    for layer in layers:
        np.testing.assert_allclose(layer.scale, VOXEL)
        assert [str(u) for u in layer.units] == ["micrometer"] * 3
    for layer, name in zip(layers, ("labels", "mask", "foreground")):
        np.testing.assert_array_equal(layer.data, tifffile.imread(sample_folder / f"{name}.tif"))
    stored = tifffile.imread(sample_folder / "image.tif")
    np.testing.assert_array_equal(np.rint(layers[3].data * 65535).astype(np.uint16), stored)
    image = stored / 65535.0
    np.testing.assert_allclose(layers[3].contrast_limits, np.percentile(image, [1, 99.9]), rtol=1e-5)
    meta = layers[0].metadata["cellsynth"]
    recorded = json.loads((sample_folder / "sample.json").read_text())
    assert meta["volume"] == "labels" and meta["sample"]["kind"] == "nuclei" and meta["sample"]["seed"] == 2
    assert meta["sample"]["parameters"] == recorded["parameters"]
    assert meta["positions"]["label"] == io.read_positions(sample_folder / "positions.csv")["label"].tolist()


def test_reader_declines_what_is_not_cellsynth_data(tmp_path, sample_folder):
    assert get_reader(str(tmp_path)) is None
    assert get_reader(str(sample_folder / "labels.tif")) is None
    assert get_reader([str(sample_folder), str(tmp_path)]) is None
    assert get_reader(str(sample_folder)) is not None


def test_reader_stacks_a_dataset_and_opens_one_sample(make_napari_viewer, tmp_path):
    from cellsynth.dataset import apply_overrides, generate_dataset, load_dataset, load_preset

    parameters = apply_overrides(load_preset("nuclei"), {"shape": [8, 32, 32], "voxel_size": list(VOXEL),
                                                         "simulate.radius": 3.0, "synthesize.model": "physics",
                                                         "synthesize.alpha": "20,200"})
    generate_dataset(tmp_path / "ds", parameters, 3, workers=1, progress=False)
    dataset = load_dataset(tmp_path / "ds")
    viewer = make_napari_viewer()
    layers = viewer.open(tmp_path / "ds", plugin="cellsynth")
    assert [layer.name for layer in layers] == ["ds labels", "ds mask", "ds foreground", "ds image_alpha20",
                                                "ds image_alpha200"]
    for layer in layers:
        assert layer.data.shape == (3, 8, 32, 32)
        np.testing.assert_allclose(layer.scale, (1.0, *VOXEL))
        assert layer.metadata["cellsynth"]["samples"] == dataset.names
    for i in range(3):
        np.testing.assert_array_equal(np.asarray(layers[0].data[i]), dataset[i].labels)
        np.testing.assert_array_equal(np.asarray(layers[4].data[i]), dataset.image(i, 200))
    one = napari_layers.dataset_layers(tmp_path / "ds", sample=2)
    np.testing.assert_array_equal(one[0][0], dataset[2].labels)
    assert one[0][1]["metadata"]["cellsynth"]["sample"]["dataset"]["index"] == 2
    with pytest.raises(io.CellsynthError, match="choose an index from 0 to 2"):
        napari_layers.dataset_layers(tmp_path / "ds", sample=3)


def test_reader_opens_ome_zarr_images_and_zarr_samples(make_napari_viewer, tmp_path, sample_folder):
    image = tifffile.imread(sample_folder / "image.tif")
    io.write_zarr(tmp_path / "image.ome.zarr", image, (2.0, 0.25, 0.25))
    zarr_sample = tmp_path / "zs"
    assert main(["simulate", "membranes", "--shape", "10", "32", "32", "--cell-size", "6", "--format", "zarr",
                 "--out", str(zarr_sample)]) == 0
    viewer = make_napari_viewer()
    (layer,) = viewer.open(tmp_path / "image.ome.zarr", plugin="cellsynth")
    np.testing.assert_allclose(layer.scale, (2.0, 0.25, 0.25))
    np.testing.assert_array_equal(np.asarray(layer.data), image)
    assert main(["synthesize", str(zarr_sample), "--model", "physics"]) == 0
    layers = viewer.open(zarr_sample / io.SAMPLE_ZARR, plugin="cellsynth")  # the sample's image opens the sample
    expected = io.read_sample(zarr_sample)
    assert [layer.metadata["cellsynth"]["volume"] for layer in layers] == ["labels", "mask", "foreground", "image"]
    for layer, name in zip(layers, ("labels", "mask", "foreground", "image")):
        stored = getattr(expected, name)
        stored = np.rint(stored * 65535).astype(np.uint16) if name == "image" else stored  # zarr stays uint16
        np.testing.assert_array_equal(np.asarray(layer.data), stored)
        np.testing.assert_allclose(layer.scale, (1.0, 1.0, 1.0))


def test_writer_saves_layers_back_as_the_same_sample(make_napari_viewer, tmp_path, sample_folder):
    viewer = make_napari_viewer()
    viewer.open(sample_folder, plugin="cellsynth")
    written = viewer.layers.save(str(tmp_path / "copy"), plugin="cellsynth")
    assert written == [str(tmp_path / "copy")]
    for name in ("labels", "mask", "foreground", "image"):
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "copy" / f"{name}.tif"),
                                      tifffile.imread(sample_folder / f"{name}.tif"))
    copy = io.read_sample(tmp_path / "copy")
    assert copy.voxel_size == VOXEL
    assert (tmp_path / "copy" / "positions.csv").read_text() == (sample_folder / "positions.csv").read_text()
    assert copy.metadata["parameters"] == json.loads((sample_folder / "sample.json").read_text())["parameters"]

    # edited labels: the mask and foreground layers are saved as they are, positions follow the labels
    labels = viewer.layers["s1 labels"]
    labels.data = np.where(labels.data == 1, 0, labels.data).astype(labels.data.dtype)
    viewer.layers.selection = {labels, viewer.layers["s1 image"]}
    viewer.layers.save(str(tmp_path / "edited"), selected=True, plugin="cellsynth")
    edited = io.read_sample(tmp_path / "edited")
    np.testing.assert_array_equal(edited.labels, labels.data)
    assert 1 not in edited.positions["label"].tolist()
    np.testing.assert_array_equal(edited.mask, (labels.data > 0).astype(np.uint8))  # nuclei: mask = labels > 0
    assert edited.image is not None


def test_writer_refuses_what_is_no_sample(tmp_path, sample_folder):
    from cellsynth.napari.writer import write_sample_folder

    labels = tifffile.imread(sample_folder / "labels.tif")
    plain = (labels, {"name": "painted", "scale": VOXEL}, "labels")
    with pytest.raises(io.CellsynthError, match="records no kind"):
        write_sample_folder(str(tmp_path / "a"), [plain])
    with pytest.raises(io.CellsynthError, match="needs a labels layer"):
        write_sample_folder(str(tmp_path / "b"), [(labels * 1.0, {"name": "img"}, "image")])
    with pytest.raises(io.CellsynthError, match="float in \\[0, 1\\]"):
        write_sample_folder(str(tmp_path / "c"), [plain, (labels * 1.0, {"name": "img", "scale": VOXEL}, "image")])
    with pytest.raises(io.CellsynthError, match="has scale"):
        write_sample_folder(str(tmp_path / "d"), [plain, (labels / labels.max(), {"scale": (1, 1, 1)}, "image")])
    with pytest.raises(io.CellsynthError, match="already exists"):
        write_sample_folder(str(sample_folder), napari_layers.sample_layers(sample_folder))
    assert not list(tmp_path.iterdir())  # nothing half-written


@pytest.mark.parametrize("key, kind", [("nuclei", "nuclei"), ("membranes", "membranes")])
def test_sample_data_is_made_on_the_fly(make_napari_viewer, key, kind):
    from cellsynth.simulate.annotations import structure_mask

    viewer = make_napari_viewer()
    layers = viewer.open_sample("cellsynth", key)
    assert [type(layer).__name__ for layer in layers] == ["Labels", "Labels", "Labels", "Image"]
    labels, mask, foreground, image = (layer.data for layer in layers)
    for layer in layers:
        np.testing.assert_allclose(layer.scale, (1.0, 0.5, 0.5))
    assert labels.shape == (32, 128, 128) and labels.max() >= 5
    np.testing.assert_array_equal(mask, structure_mask(labels, kind, (1.0, 0.5, 0.5)))
    assert foreground[labels > 0].all()
    assert 0.0 <= image.min() < image.max() <= 1.0
    assert layers[0].metadata["cellsynth"]["sample"]["kind"] == kind
