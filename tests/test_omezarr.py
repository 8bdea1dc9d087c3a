"""OME-Zarr samples: one image with its label layers, NGFF 0.4 and 0.5, pyramids, checked with
ome-zarr-py's reader and the ome-zarr-models validators of the specification."""

import hashlib
import json

import numpy as np
import pytest
import zarr
from skimage.measure import block_reduce

from cellsynth import io, omezarr
from cellsynth.cli import main

VOXEL = (1.0, 0.5, 0.5)


def _nodes(path):
    """ome-zarr-py's view of a store: {node path relative to it: node}."""
    reader, ome_io = pytest.importorskip("ome_zarr.reader"), pytest.importorskip("ome_zarr.io")
    nodes = reader.Reader(ome_io.parse_url(str(path)))()
    return {str(node.zarr.path).rstrip("/").removeprefix(str(path).rstrip("/")).lstrip("/"): node for node in nodes}


def _validate(path, ngff):
    """The ome-zarr-models validator of the image (and of its labels) for the NGFF version."""
    models = pytest.importorskip(f"ome_zarr_models.v0{ngff[-1]}")
    return models.Image.from_zarr(zarr.open_group(str(path), mode="r"))


def _sample(rng, shape=(10, 40, 36)):
    labels = np.zeros(shape, np.uint16)
    labels[2:6, 5:20, 4:16], labels[5:9, 22:35, 18:30] = 1, 2
    image = rng.random(shape).astype(np.float32)
    return io.Sample(labels=labels, mask=(labels > 0).astype(np.uint8), foreground=np.ones(shape, np.uint8),
                     voxel_size=VOXEL, positions={"label": np.array([1, 2])}, metadata={"kind": "nuclei"}, image=image)


def test_pyramid_halves_the_finest_axes_until_the_sides_are_small():
    levels = omezarr.pyramid_shapes((40, 1100, 700), (2.0, 0.5, 0.5))
    assert [shape for shape, _ in levels] == [(40, 1100, 700), (40, 550, 350), (40, 275, 175), (20, 138, 88)]
    assert [voxel for _, voxel in levels][-1] == (4.0, 4.0, 4.0)
    assert omezarr.pyramid_shapes((64, 192, 192), (1.0, 1.0, 1.0)) == [((64, 192, 192), (1.0, 1.0, 1.0))]


@pytest.mark.parametrize("slab_bytes", [64 * 2**20, 4096])  # one block per level, or many chunk rows
def test_pyramid_levels_are_block_means_for_images_and_samples_for_labels(tmp_path, rng, monkeypatch, slab_bytes):
    monkeypatch.setattr(omezarr, "_SLAB_BYTES", slab_bytes)
    image = rng.integers(0, 60000, (6, 600, 300)).astype(np.uint16)
    group = omezarr.write_image(tmp_path / "i.ome.zarr", image, (1.0, 0.25, 0.5))
    reference = block_reduce(image.astype(np.float64), (1, 2, 1), np.mean)  # y is the finest axis
    np.testing.assert_array_equal(group["1"][...], np.clip(np.rint(reference), 0, 65535).astype(np.uint16))
    labels = rng.integers(0, 5, (6, 600, 300)).astype(np.uint16)
    label_group = omezarr.write_image(tmp_path / "l.ome.zarr", labels, (1.0, 0.25, 0.5), label=True)
    np.testing.assert_array_equal(label_group["2"][...], labels[:, ::4, ::2])


@pytest.mark.parametrize("ngff", ["0.4", "0.5"])
def test_zarr_sample_is_one_image_with_label_layers(tmp_path, rng, ngff):
    sample = _sample(rng)
    io.write_sample(tmp_path / "s", sample, file_format="zarr", ngff=ngff)
    store = tmp_path / "s" / io.SAMPLE_ZARR
    assert (store / (".zattrs" if ngff == "0.4" else "zarr.json")).is_file()
    assert omezarr.label_names(store) == ["labels", "mask", "foreground"]
    nodes = _nodes(store)
    assert np.array_equal(np.asarray(nodes[""].data[0]), np.round(sample.image * 65535).astype(np.uint16))
    for name in ("labels", "mask", "foreground"):
        node = nodes[f"labels/{name}"]
        assert any(type(spec).__name__ == "Label" for spec in node.specs)  # shown as a label layer
        assert np.array_equal(np.asarray(node.data[0]), getattr(sample, name))
        assert node.metadata["coordinateTransformations"][0] == [{"type": "scale", "scale": list(VOXEL)}]
    image = _validate(store, ngff)
    assert image.labels is not None
    meta = json.loads((tmp_path / "s" / "sample.json").read_text())
    assert meta["ngff"] == ngff and meta["files"]["mask"] == "sample.ome.zarr/labels/mask"
    back = io.read_sample(tmp_path / "s")
    assert np.array_equal(back.labels, sample.labels) and back.voxel_size == VOXEL


def test_cli_zarr_sample_then_synthesis_keeps_the_labels(tmp_path):
    folder = tmp_path / "z"
    assert main(["simulate", "membranes", "--out", str(folder), "--shape", "12", "40", "40", "--cell-size", "8",
                 "--format", "zarr", "--ngff", "0.5"]) == 0
    store = folder / io.SAMPLE_ZARR
    labels = io.read_sample(folder).labels
    assert "image" not in json.loads((folder / "sample.json").read_text())["files"]  # no image yet
    _validate(store, "0.5")
    assert main(["synthesize", str(folder), "--model", "physics", "--seed", "1"]) == 0
    first = io.read_sample(folder)
    assert json.loads((folder / "sample.json").read_text())["files"]["image"] == io.SAMPLE_ZARR
    assert np.array_equal(first.labels, labels) and 0 < first.image.mean() < 1
    assert main(["synthesize", str(folder), "--model", "physics", "--seed", "2"]) == 2  # exists
    assert main(["synthesize", str(folder), "--model", "physics", "--seed", "2", "--overwrite"]) == 0
    second = io.read_sample(folder)
    assert not np.array_equal(second.image, first.image) and np.array_equal(second.labels, labels)
    nodes = _nodes(store)
    assert np.array_equal(np.asarray(nodes[""].data[0]), np.round(second.image * 65535).astype(np.uint16))
    assert set(nodes) >= {"", "labels/labels", "labels/mask", "labels/foreground"}
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    _validate(store, "0.5")


def _tree_digest(folder):
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


def test_same_seed_same_bytes_in_zarr_samples(tmp_path):
    args = ["simulate", "nuclei", "--shape", "10", "32", "32", "--radius", "3", "--format", "zarr", "--seed", "4"]
    for run in ("a", "b"):
        assert main([*args, "--out", str(tmp_path / run / "s")]) == 0
        assert main(["synthesize", str(tmp_path / run / "s"), "--model", "physics"]) == 0
    store = lambda run: tmp_path / run / "s" / io.SAMPLE_ZARR  # noqa: E731  (sample.json records timings)
    assert _tree_digest(store("a")) == _tree_digest(store("b"))
    assert omezarr.ome_attributes(zarr.open_group(str(store("a"))))["multiscales"][0]["name"] == "s"


def test_standalone_zarr_image_with_pyramid(tmp_path, rng):
    labels = np.zeros((6, 520, 40), np.uint16)
    labels[2:4, 100:400, 10:30] = 1
    io.write_tiff(tmp_path / "labels.tif", labels, VOXEL)
    out = tmp_path / "image.ome.zarr"
    assert main(["synthesize", str(tmp_path / "labels.tif"), "--kind", "nuclei", "--out", str(out),
                 "--model", "physics", "--ngff", "0.5"]) == 0
    node = _nodes(out)[""]
    assert [tuple(level.shape) for level in node.data] == [(6, 520, 40), (6, 260, 20), (3, 130, 10)]
    assert node.metadata["coordinateTransformations"][2] == [{"type": "scale", "scale": [2.0, 2.0, 2.0]}]
    _validate(out, "0.5")


def test_sample_folders_of_separate_ngff_images_still_read_and_synthesise(tmp_path, rng):
    """Sample folders written before the labels moved into the image: one NGFF 0.4 image per volume."""
    sample, folder = _sample(rng), tmp_path / "old"
    folder.mkdir()
    files = {}
    for name in ("labels", "mask", "foreground"):
        group = zarr.open_group(str(folder / f"{name}.ome.zarr"), mode="w", zarr_format=2)
        group.attrs["multiscales"] = [{"version": "0.4", "name": name, "axes": [
            {"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"], "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": list(VOXEL)}]}]}]
        group.create_array("0", shape=sample.labels.shape, dtype=getattr(sample, name).dtype, fill_value=0)[...] = \
            getattr(sample, name)
        files[name] = f"{name}.ome.zarr"
    io.write_positions(folder / "positions.csv", sample.positions)
    io.write_json(folder / "sample.json", {"kind": "nuclei", "voxel_size_um": list(VOXEL), "format": "zarr",
                                           "files": {**files, "positions": "positions.csv"}})
    assert np.array_equal(io.read_sample(folder).mask, sample.mask)
    assert main(["synthesize", str(folder), "--model", "physics"]) == 0
    assert json.loads((folder / "sample.json").read_text())["files"]["image"] == "image.ome.zarr"
    assert io.read_sample(folder).image.shape == sample.labels.shape
