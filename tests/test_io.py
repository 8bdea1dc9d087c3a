"""Round trips and failure paths of cellsynth.io."""

import json
import os

import numpy as np
import pytest

from cellsynth import io
from cellsynth.errors import CellsynthError


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.uint32])
def test_tiff_round_trip_keeps_voxel_size(tmp_path, rng, dtype):
    array = (rng.random((5, 7, 9)) * 200).astype(dtype)
    io.write_tiff(tmp_path / "v.tif", array, (2.0, 0.5, 0.25))
    back, voxel = io.read_tiff(tmp_path / "v.tif")
    np.testing.assert_array_equal(back, array)
    assert back.dtype == array.dtype
    np.testing.assert_allclose(voxel, (2.0, 0.5, 0.25), rtol=1e-6)


def test_zarr_round_trip_and_ngff_metadata(tmp_path, rng):
    array = rng.integers(0, 9, (4, 6, 8)).astype(np.uint16)
    io.write_zarr(tmp_path / "v.ome.zarr", array, (1.5, 0.3, 0.3))
    back, voxel = io.read_volume(tmp_path / "v.ome.zarr")
    np.testing.assert_array_equal(back, array)
    assert voxel == (1.5, 0.3, 0.3)
    attrs = json.loads((tmp_path / "v.ome.zarr" / ".zattrs").read_text())
    assert attrs["multiscales"][0]["version"] == "0.4"


def test_h5_reads_raw_label_and_voxel_size(tmp_path):
    import h5py

    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["raw"] = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
        f["raw"].attrs["element_size_um"] = (0.3, 0.1, 0.1)
        f["label"] = np.ones((2, 3, 4), np.uint16)
    raw, voxel = io.read_h5(tmp_path / "a.h5")
    assert raw.shape == (2, 3, 4) and voxel == pytest.approx((0.3, 0.1, 0.1))
    label, voxel = io.read_h5(tmp_path / "a.h5", "label")
    assert label.sum() == 24 and voxel is None
    with pytest.raises(CellsynthError, match="no dataset"):
        io.read_h5(tmp_path / "a.h5", "nope")


def test_missing_and_corrupt_files_give_clear_errors(tmp_path):
    with pytest.raises(CellsynthError, match="not found"):
        io.read_volume(tmp_path / "missing.tif")
    (tmp_path / "bad.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(CellsynthError, match="cannot read TIFF"):
        io.read_volume(tmp_path / "bad.tif")
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(CellsynthError, match="not valid JSON"):
        io.read_json(tmp_path / "bad.json")


def test_nan_volume_is_refused(tmp_path):
    array = np.zeros((2, 2, 2), np.float32)
    array[0, 0, 0] = np.nan
    with pytest.raises(CellsynthError, match="NaN"):
        io.write_tiff(tmp_path / "n.tif", array, (1, 1, 1))
    assert not (tmp_path / "n.tif").exists()


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with io.atomic_path(tmp_path / "x.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_is_a_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CellsynthError, match="cannot write"):
        io.write_tiff(blocker / "sub" / "v.tif", np.zeros((1, 2, 2), np.uint8), (1, 1, 1))


def _sample(rng):
    labels = rng.integers(0, 4, (3, 5, 6)).astype(np.uint16)
    return io.Sample(labels=labels, mask=(labels > 0).astype(np.uint8), foreground=np.ones_like(labels, np.uint8),
                     voxel_size=(1.0, 0.5, 0.5), positions={"label": np.array([1, 2]), "z_um": np.array([0.5, 1.25])},
                     metadata={"kind": "nuclei", "seed": 3})


@pytest.mark.parametrize("file_format", ["tif", "zarr"])
def test_sample_folder_round_trip(tmp_path, rng, file_format):
    sample = _sample(rng)
    io.write_sample(tmp_path / "s", sample, file_format=file_format)
    back = io.read_sample(tmp_path / "s")
    np.testing.assert_array_equal(back.labels, sample.labels)
    np.testing.assert_array_equal(back.mask, sample.mask)
    assert back.voxel_size == (1.0, 0.5, 0.5)
    np.testing.assert_allclose(back.positions["z_um"], [0.5, 1.25])
    assert back.metadata["seed"] == 3 and back.metadata["format"] == file_format


def test_sample_folder_refuses_overwrite(tmp_path, rng):
    io.write_sample(tmp_path / "s", _sample(rng))
    with pytest.raises(CellsynthError, match="--overwrite"):
        io.write_sample(tmp_path / "s", _sample(rng))
    io.write_sample(tmp_path / "s", _sample(rng), overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_incomplete_sample_folder_is_not_read(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "labels.tif").write_bytes(b"")
    with pytest.raises(CellsynthError, match="not a sample folder"):
        io.read_sample(tmp_path / "s")


def test_sample_folder_with_named_images_is_one_atomic_unit(tmp_path, rng):
    """Extra images (quality levels) go into the same folder and its files table; the
    finished folder has the usual permissions, and nothing temporary is left."""
    sample = _sample(rng)
    images = {"image_alpha10": rng.random((3, 5, 6)), "image_alpha100": rng.random((3, 5, 6)).astype(np.float32)}
    io.write_sample(tmp_path / "s", sample, images=images)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]
    meta = json.loads((tmp_path / "s" / "sample.json").read_text())
    assert list(meta["files"]) == ["labels", "mask", "foreground", "positions", "image_alpha10", "image_alpha100"]
    for name, image in images.items():
        back, voxel = io.read_volume(tmp_path / "s" / meta["files"][name])
        assert back.dtype == np.uint16 and voxel == pytest.approx((1.0, 0.5, 0.5))
        np.testing.assert_array_equal(back, io.image_to_uint16(image))
    umask = os.umask(0o022)
    os.umask(umask)
    assert (tmp_path / "s").stat().st_mode & 0o777 == 0o777 & ~umask


def test_image_to_uint16_rounds_half_to_even_and_clips():
    image = np.array([-0.5, 0.0, 0.5 / 65535, 1.5 / 65535, 0.25, 1.0, 2.0, np.float32(0.1)], np.float32)
    expected = np.round(np.clip(image, 0.0, 1.0) * 65535.0).astype(np.uint16)  # the definition
    np.testing.assert_array_equal(io.image_to_uint16(image), expected)
    assert io.image_to_uint16(image).tolist()[:4] == [0, 0, 0, 2]
    original = image.copy()
    io.image_to_uint16(image)
    np.testing.assert_array_equal(image, original)  # the input is not modified


def test_in_place_write_skips_the_temporary_name(tmp_path, rng, monkeypatch):
    """atomic=False writes the file itself: for files inside a folder that is already temporary."""
    def no_temporary(*args, **kwargs):
        raise AssertionError("atomic_path used")

    monkeypatch.setattr(io, "atomic_path", no_temporary)
    array = rng.integers(0, 9, (2, 3, 4)).astype(np.uint8)
    io.write_volume(tmp_path / "v.tif", array, (1, 1, 1), atomic=False)
    io.write_json(tmp_path / "m.json", {"a": 1}, atomic=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "v.tif"]
    np.testing.assert_array_equal(io.read_volume(tmp_path / "v.tif")[0], array)
    with pytest.raises(AssertionError, match="atomic_path used"):
        io.write_volume(tmp_path / "w.tif", array, (1, 1, 1))
