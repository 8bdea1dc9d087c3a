"""The one volume reader refuses damaged, misnamed and misshaped files with one clear error,
before it allocates what a file claims."""

import h5py
import numpy as np
import pytest
import tifffile

from cellsynth import io
from cellsynth.errors import CellsynthError

VOLUME = (np.arange(16 * 32 * 32) % 1000).astype(np.uint16).reshape(16, 32, 32)


@pytest.mark.parametrize("writer", [
    dict(imagej=True, metadata={"axes": "ZYX"}), dict(ome=True, metadata={"axes": "ZYX"}), dict(),
    dict(compression="zlib")])
def test_every_cut_of_a_tiff_is_refused(tmp_path, writer):
    """A file cut anywhere (a copy that stopped): today's tifffile reads a lone first plane of
    many of them without an exception; each one is refused as damaged or truncated."""
    path = tmp_path / "full.tif"
    tifffile.imwrite(path, VOLUME, **writer)
    data = path.read_bytes()
    np.testing.assert_array_equal(io.read_volume(path)[0], VOLUME)
    cut = tmp_path / "cut.tif"
    for size in range(0, len(data), max(1, len(data) // 150)):
        cut.write_bytes(data[:size])
        with pytest.raises(CellsynthError, match="cut.tif"):
            io.read_volume(cut)


def test_2d_images_are_refused_and_single_planes_of_volumes_are_not(tmp_path):
    tifffile.imwrite(tmp_path / "plain.tif", VOLUME[0])
    tifffile.imwrite(tmp_path / "imagej.tif", VOLUME[0], imagej=True)
    for name in ("plain.tif", "imagej.tif"):
        with pytest.raises(CellsynthError, match="2D image of shape \\(32, 32\\)"):
            io.read_volume(tmp_path / name)
    for dtype in (np.uint8, np.float32, np.uint32):  # ImageJ and OME-TIFF: they record a z spacing
        io.write_tiff(tmp_path / "one.tif", VOLUME[:1].astype(dtype), (2.0, 0.5, 0.5))
        array, voxel = io.read_volume(tmp_path / "one.tif")
        assert array.shape == (1, 32, 32) and voxel == (2.0, 0.5, 0.5)


def test_label_volumes_three_wide_round_trip(tmp_path):
    """uint32 labels with three (or four) columns were taken for RGB and failed to write."""
    for width in (3, 4):
        labels = np.arange(2 * 5 * width, dtype=np.uint32).reshape(2, 5, width) + 70000
        io.write_tiff(tmp_path / "l.tif", labels, (1.0, 1.0, 1.0))
        np.testing.assert_array_equal(io.read_volume(tmp_path / "l.tif")[0], labels)


def test_hdf5_layouts(tmp_path):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f.create_group("raw").create_dataset("inner", data=VOLUME)
        f.create_dataset("scalar", data=VOLUME).attrs["element_size_um"] = 1.0
        f.create_dataset("two", data=VOLUME).attrs["element_size_um"] = [1.0, 1.0]
        f.create_dataset("text", data=np.array([[["a"]]], dtype="S1"))
        f.create_dataset("flat", data=VOLUME[0])
        f.create_dataset("good", data=VOLUME).attrs["element_size_um"] = [2.0, 0.5, 0.5]
    for dataset, message in (("raw", "is a group, not a dataset"), ("scalar", "element_size_um 1.0,"),
                             ("two", "element_size_um \\[1.0, 1.0\\]"), ("text", "holds \\|S1 values"),
                             ("flat", "2D image"), ("missing", "has no dataset 'missing'")):
        with pytest.raises(CellsynthError, match=message):
            io.read_volume(path, dataset)
    assert io.read_volume(path, "good")[1] == (2.0, 0.5, 0.5)
    (tmp_path / "not.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    with pytest.raises(CellsynthError, match="cannot read HDF5"):
        io.read_volume(tmp_path / "not.h5")


def test_npy_files(tmp_path):
    np.savez(tmp_path / "archive.npz", a=VOLUME)
    (tmp_path / "archive.npz").rename(tmp_path / "archive.npy")
    with pytest.raises(CellsynthError, match="an .npz archive, not a .npy array"):
        io.read_volume(tmp_path / "archive.npy")
    np.save(tmp_path / "objects.npy", np.array([[[None]]], dtype=object), allow_pickle=True)
    with pytest.raises(CellsynthError, match="object values"):
        io.read_volume(tmp_path / "objects.npy")
    np.save(tmp_path / "cut.npy", VOLUME)
    (tmp_path / "cut.npy").write_bytes((tmp_path / "cut.npy").read_bytes()[:-10])
    with pytest.raises(CellsynthError, match="cannot read .* as a .npy array"):
        io.read_volume(tmp_path / "cut.npy")


def test_claimed_sizes_are_checked_before_reading(tmp_path):
    """A header claiming an exabyte is refused by the memory check (before any allocation)."""
    with open(tmp_path / "huge.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (10**6,) * 3})
    with pytest.raises(CellsynthError, match="memory"):
        io.read_volume(tmp_path / "huge.npy")
    with h5py.File(tmp_path / "huge.h5", "w") as f:
        f.create_dataset("raw", shape=(10**6,) * 3, dtype=np.float64, chunks=(1, 1, 8))
    with pytest.raises(CellsynthError, match="memory"):
        io.read_volume(tmp_path / "huge.h5")


def test_labels_are_non_negative_integers(tmp_path):
    io.write_tiff(tmp_path / "neg.tif", -np.ones((2, 4, 4), np.int16), (1.0, 1.0, 1.0))
    with pytest.raises(CellsynthError, match="negative values"):
        io.read_labels(tmp_path / "neg.tif")
    io.write_tiff(tmp_path / "float.tif", np.ones((2, 4, 4), np.float32), (1.0, 1.0, 1.0))
    with pytest.raises(CellsynthError, match="float32 values; labels are integers"):
        io.read_labels(tmp_path / "float.tif")
    sparse = np.zeros((2, 3, 3), np.uint64)
    sparse[0, 0, 0], sparse[1, 1, 1], sparse[1, 2, 2] = 2**40, 2**33, 5
    np.save(tmp_path / "sparse.npy", sparse)
    labels, _ = io.read_labels(tmp_path / "sparse.npy")  # ids beyond 2**24 renumbered in order
    assert labels.dtype == np.uint16 and labels[0, 0, 0] == 3 and labels[1, 1, 1] == 2 and labels[1, 2, 2] == 1
    assert (labels > 0).sum() == 3


def test_sample_json_that_lies_about_its_files(tmp_path):
    sample = io.Sample(labels=np.ones((2, 8, 8), np.uint16), mask=np.ones((2, 8, 8), np.uint8),
                       foreground=np.ones((2, 8, 8), np.uint8), voxel_size=(1.0, 1.0, 1.0))
    io.write_sample(tmp_path / "s", sample)
    meta = io.read_json(tmp_path / "s" / "sample.json")
    for files in (list(meta["files"].values()), {**meta["files"], "labels": "../../etc/passwd"},
                  {**meta["files"], "labels": "/etc/passwd"}, {**meta["files"], "mask": 3}):
        io.write_json(tmp_path / "s" / "sample.json", {**meta, "files": files})
        with pytest.raises(CellsynthError, match="files must map volume names to file names inside"):
            io.read_sample(tmp_path / "s")
