"""Export to StarDist, Cellpose, nnU-Net v2 and PlantSeg layouts: a 4-sample data set checked
against each tool's documented layout with plain tifffile / h5py / json, and against the
tools' own readers where they are installed (they are not in the ``test`` extra)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

from cellsynth import dataset, export, io
from cellsynth.cli import main
from cellsynth.errors import CellsynthError

TINY = {
    "kind": "nuclei",
    "shape": [12, 32, 32],
    "voxel_size": [2.0, 1.0, 0.5],
    "simulate": {"organism": "ellipsoid", "radius": 3.0, "radius_std": 0.5, "smoothness": 5.0, "sh_order": 6},
    "synthesize": {"model": "physics", "alpha": [10, 100]},
}


@pytest.fixture(scope="module")
def tiny_datasets(tmp_path_factory) -> dict[str, Path]:
    """4-sample nuclei and membrane data sets, 2 train / 1 val / 1 test."""
    roots = {}
    for kind, simulate in (("nuclei", TINY["simulate"]), ("membranes", {"cell_size": 8.0})):
        root = tmp_path_factory.mktemp(kind) / f"tiny_{kind}"
        params = dataset.validate_parameters({**TINY, "kind": kind, "simulate": simulate})
        report = dataset.generate_dataset(root, params, 4, seed=3, split_fractions=(0.5, 0.25, 0.25), workers=1,
                                          progress=False)
        assert not report.failed
        roots[kind] = root
    return roots


@pytest.fixture(scope="module")
def exports(tiny_datasets, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("exports")
    made = {tool: export.export_dataset(tiny_datasets["nuclei"], out / tool, tool, alpha=100, progress=False)
            for tool in export.TOOLS}
    made["cellpose_slices"] = export.export_dataset(tiny_datasets["nuclei"], out / "cp2", "cellpose", slices=True,
                                                    alpha=100, progress=False)
    made["nnunet_membranes"] = export.export_dataset(tiny_datasets["membranes"], out / "nnm", "nnunet",
                                                     dataset_id=7, dataset_name="my cells!", progress=False)
    return made


def splits_of(root: Path) -> dict[str, list[str]]:
    table = io.read_positions(root / "splits.csv")
    out: dict[str, list[str]] = {s: [] for s in dataset.SPLIT_NAMES}
    for name, split in zip(table["name"].tolist(), table["split"].tolist()):
        out[split].append(name)
    return out


def source(root: Path, name: str, volume: str) -> np.ndarray:
    return tifffile.imread(root / "samples" / name / f"{volume}.tif")


def tiff_voxel(path: Path) -> tuple[float, float, float]:
    """Voxel size from an ImageJ TIFF's tags, read with tifffile alone."""
    with tifffile.TiffFile(path) as tif:
        x_num, x_den = tif.pages[0].tags["XResolution"].value
        y_num, y_den = tif.pages[0].tags["YResolution"].value
        return tif.imagej_metadata.get("spacing", 1.0), y_den / y_num, x_den / x_num


def test_tiny_data_set_has_every_split(tiny_datasets):
    assert {k: len(v) for k, v in splits_of(tiny_datasets["nuclei"]).items()} == {"train": 2, "val": 1, "test": 1}


def test_stardist_layout(tiny_datasets, exports):
    root, out = tiny_datasets["nuclei"], exports["stardist"]
    for split, names in splits_of(root).items():
        images = sorted(p.name for p in (out / split / "images").glob("*.tif"))
        masks = sorted(p.name for p in (out / split / "masks").glob("*.tif"))
        assert images == masks == sorted(f"{n}.tif" for n in names)
        for name in names:
            image = tifffile.imread(out / split / "images" / f"{name}.tif")
            mask = tifffile.imread(out / split / "masks" / f"{name}.tif")
            assert image.ndim == 3 and np.array_equal(image, source(root, name, "image_alpha100"))
            assert np.array_equal(mask, source(root, name, "labels")) and mask.max() > 0
            assert tiff_voxel(out / split / "masks" / f"{name}.tif") == pytest.approx((2.0, 1.0, 0.5))


def test_cellpose_pairs_and_slices(tiny_datasets, exports):
    root = tiny_datasets["nuclei"]
    for split, names in splits_of(root).items():
        folder = exports["cellpose"] / split
        images = sorted(p.stem for p in folder.glob("*.tif") if not p.stem.endswith("_masks"))
        assert images == sorted(names)
        for name in names:
            assert np.array_equal(tifffile.imread(folder / f"{name}_masks.tif"), source(root, name, "labels"))
        folder = exports["cellpose_slices"] / split
        for name in names:
            labels, image = source(root, name, "labels"), source(root, name, "image_alpha100")
            expected = [z for z in range(labels.shape[0]) if np.count_nonzero(labels[z])]
            planes = sorted(folder.glob(f"{name}_z*_masks.tif"))
            assert [int(p.stem.split("_z")[1][:-6]) for p in planes] == expected
            for z, plane in zip(expected, planes):
                assert np.array_equal(tifffile.imread(plane), labels[z])
                picture = tifffile.imread(Path(str(plane).replace("_masks", "")))
                assert picture.ndim == 2 and np.array_equal(picture, image[z])
                assert tiff_voxel(plane)[1:] == pytest.approx((1.0, 0.5))


def reference_classes(labels: np.ndarray) -> np.ndarray:
    """0 background, 1 inside, 2 labelled voxels with a face neighbour of another value
    (voxels outside the volume repeat the edge, so the volume's border is no boundary)."""
    padded = np.pad(labels, 1, mode="edge")
    core = padded[1:-1, 1:-1, 1:-1]
    differs = np.zeros(labels.shape, bool)
    for axis in range(3):
        for step in (-1, 1):
            differs |= np.roll(padded, step, axis=axis)[1:-1, 1:-1, 1:-1] != core
    return np.where(labels == 0, 0, np.where(differs, 2, 1)).astype(np.uint8)


def test_nnunet_layout(tiny_datasets, exports):
    root = tiny_datasets["nuclei"]
    base = exports["nnunet"] / "Dataset501_tinynuclei"
    meta = json.loads((base / "dataset.json").read_text())
    splits = splits_of(root)
    assert meta["labels"] == {"background": 0, "structure": 1, "boundary": 2}
    assert meta["file_ending"] == ".tif" and list(meta["channel_names"]) == ["0"]
    assert meta["numTraining"] == len(list((base / "imagesTr").glob("*_0000.tif"))) == 3
    assert json.loads((base / "splits_final.json").read_text()) == [{"train": splits["train"], "val": splits["val"]}]
    for folder, names in (("Tr", splits["train"] + splits["val"]), ("Ts", splits["test"])):
        found = sorted(p.name for p in (base / f"images{folder}").glob("*.tif"))
        assert found == sorted(f"{n}_0000.tif" for n in names)
        for name in names:
            image = tifffile.imread(base / f"images{folder}" / f"{name}_0000.tif")
            classes = tifffile.imread(base / f"labels{folder}" / f"{name}.tif")
            assert np.array_equal(image, source(root, name, "image_alpha100"))
            assert np.array_equal(classes, reference_classes(source(root, name, "labels")))
            assert set(np.unique(classes)) == {0, 1, 2}
            for sub in ("images", "labels"):
                spacing = json.loads((base / f"{sub}{folder}" / f"{name}.json").read_text())["spacing"]
                assert spacing == [2.0, 1.0, 0.5]


def test_nnunet_membranes_boundary_is_the_membrane_mask(tiny_datasets, exports):
    root = tiny_datasets["membranes"]
    base = exports["nnunet_membranes"] / "Dataset007_mycells"
    assert (base / "dataset.json").is_file()
    for name in splits_of(root)["train"]:
        classes = tifffile.imread(base / "labelsTr" / f"{name}.tif")
        labels, mask = source(root, name, "labels"), source(root, name, "mask")
        assert np.array_equal(classes == 2, (mask > 0) & (labels > 0))
        assert np.array_equal(classes == 1, (labels > 0) & (mask == 0))


def test_plantseg_layout(tiny_datasets, exports):
    root = tiny_datasets["nuclei"]
    for split, names in splits_of(root).items():
        assert sorted(p.stem for p in (exports["plantseg"] / split).glob("*.h5")) == sorted(names)
        for name in names:
            with h5py.File(exports["plantseg"] / split / f"{name}.h5", "r") as f:
                assert np.array_equal(f["raw"][()], source(root, name, "image_alpha100"))
                assert np.array_equal(f["label"][()], source(root, name, "labels"))
                for key in ("raw", "label"):
                    assert list(f[key].attrs["element_size_um"]) == [2.0, 1.0, 0.5]


def test_export_is_reproducible_and_records_its_files(tiny_datasets, exports, tmp_path):
    for tool in ("nnunet", "plantseg"):
        again = export.export_dataset(tiny_datasets["nuclei"], tmp_path / tool, tool, alpha=100, progress=False)
        first = {str(p.relative_to(exports[tool])): p.read_bytes() for p in exports[tool].rglob("*") if p.is_file()}
        second = {str(p.relative_to(again)): p.read_bytes() for p in again.rglob("*") if p.is_file()}
        assert first == second
        manifest = json.loads((again / export.MANIFEST).read_text())
        listed = sorted(sum(manifest["files"].values(), []))
        described = (export.MANIFEST, "README.md", "Dataset501_tinynuclei/dataset.json",
                     "Dataset501_tinynuclei/splits_final.json")
        written = sorted(k for k in second if k not in described)
        assert listed == written


def test_cli_end_to_end_and_refusals(tiny_datasets, tmp_path, capsys):
    root = tiny_datasets["nuclei"]
    out = tmp_path / "sd"
    assert main(["export", str(root), "--to", "stardist", "--out", str(out)]) == 0
    assert "files 4 train, 2 val, 2 test" in capsys.readouterr().out  # an image and a mask per sample
    assert main(["export", str(root), "--to", "stardist", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export", str(root), "--to", "plantseg", "--out", str(out), "--overwrite"]) == 0
    assert not (out / "train" / "images").exists() and (out / "train").is_dir()
    assert main(["export", str(root), "--to", "stardist", "--alpha", "50", "--out", str(tmp_path / "a")]) == 2
    assert "alpha" in capsys.readouterr().err and not (tmp_path / "a").exists()
    assert main(["export", str(root), "--to", "nnunet", "--slices", "--out", str(tmp_path / "b")]) == 2
    assert main(["export", str(tmp_path / "nothing"), "--to", "nnunet", "--out", str(tmp_path / "c")]) == 2
    with pytest.raises(CellsynthError, match="1-999"):
        export.export_dataset(root, tmp_path / "d", "nnunet", dataset_id=1000)
    with pytest.raises(CellsynthError, match="unknown tool"):
        export.export_dataset(root, tmp_path / "d", "ilastik")


def test_failed_export_leaves_nothing(tiny_datasets, tmp_path, monkeypatch):
    calls = []

    def failing(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return write_tiff(path, *args, **kwargs)

    write_tiff = io.write_tiff
    monkeypatch.setattr(io, "write_tiff", failing)
    with pytest.raises(CellsynthError, match="No space"):
        export.export_dataset(tiny_datasets["nuclei"], tmp_path / "out", "stardist", progress=False)
    assert len(calls) == 3 and list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- the tools' own readers


def test_nnunet_accepts_the_export(exports):
    verify = pytest.importorskip("nnunetv2.experiment_planning.verify_dataset_integrity")
    for key in ("nnunet", "nnunet_membranes"):
        folder = next(exports[key].glob("Dataset*"))
        verify.verify_dataset_integrity(str(folder), num_processes=1)


def test_cellpose_reads_the_export(exports, tiny_datasets):
    try:
        import cellpose.io as cellpose_io
    except Exception as err:  # Cellpose 4 imports torchvision, whose CUDA builds fail to load beside CPU torch
        pytest.skip(f"cellpose does not import here: {err}")
    out = exports["cellpose_slices"]
    loaded = cellpose_io.load_train_test_data(str(out / "train"), str(out / "val"), mask_filter="_masks")
    images, labels = loaded[0], loaded[1]
    assert len(images) == len(labels) == len(list((out / "train").glob("*_masks.tif"))) > 0
    assert all(np.asarray(lab).max() > 0 for lab in labels)


def test_stardist_trains_on_the_export(exports):
    pytest.importorskip("stardist")
    from stardist import Rays_GoldenSpiral, fill_label_holes
    from stardist.models import StarDistData3D

    folder = exports["stardist"] / "train"
    images = [tifffile.imread(p).astype(np.float32) / 65535 for p in sorted((folder / "images").glob("*.tif"))]
    masks = [fill_label_holes(tifffile.imread(p)) for p in sorted((folder / "masks").glob("*.tif"))]
    rays = Rays_GoldenSpiral(32, anisotropy=(2.0, 1.0, 0.5))
    data = StarDistData3D(images, masks, rays=rays, batch_size=1, patch_size=(8, 32, 32), length=1, grid=(1, 1, 1))
    inputs, targets = data[0]
    assert inputs[0].shape[1:4] == (8, 32, 32) and targets[0].max() > 0
