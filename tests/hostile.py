"""Hostile inputs for the bad-input table and the fuzz tests: damaged and forged files, odd
folders, and a snapshot of a folder tree to prove that nothing changed on disk."""

from __future__ import annotations

import contextlib
import hashlib
import io as _io
import os
import stat
from pathlib import Path

import h5py
import numpy as np
import tifffile
import torch

from cellsynth import io
from cellsynth.cli import main

VOXEL = (1.0, 0.5, 0.5)


def snapshot(*folders: Path) -> dict[str, tuple]:
    """Every entry under ``folders``: kind, permission bits, size and a hash of the content."""
    entries = {}
    for folder in folders:
        for path in sorted([folder, *folder.rglob("*")]):
            info = path.lstat()
            content = hashlib.sha1(path.read_bytes()).hexdigest() if stat.S_ISREG(info.st_mode) else None
            entries[str(path)] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), content)
    return entries


def temporaries(*folders: Path) -> list[str]:
    """Temporary files or folders of cellsynth's atomic writes left under ``folders``."""
    return [str(p) for folder in folders for p in folder.rglob("*") if io.is_temporary(p.name)]


def run_quietly(argv: list[str]) -> tuple[int, str, str]:
    """``cellsynth.cli.main(argv)`` in this process; (exit status, stdout, stderr)."""
    out, err = _io.StringIO(), _io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _labels(rng: np.random.Generator, shape=(16, 40, 40), cells=6) -> np.ndarray:
    zz, yy, xx = np.indices(shape)
    labels = np.zeros(shape, np.uint16)
    for i in range(1, cells + 1):
        c = rng.uniform(5, np.array(shape) - 5)
        labels[((zz - c[0]) / 1.0) ** 2 + ((yy - c[1]) / 2) ** 2 + ((xx - c[2]) / 2) ** 2 < 9] = i
    return labels


def make_inputs(folder: Path) -> Path:
    """Good and bad inputs for every command in ``folder`` (made once per test session)."""
    rng = np.random.default_rng(13)
    folder.mkdir(parents=True, exist_ok=True)
    labels = _labels(rng)
    raw = (40 + 150 * (labels > 0) + rng.normal(0, 10, labels.shape)).clip(0, 255).astype(np.uint8)
    # good inputs
    io.write_tiff(folder / "real.tif", raw, VOXEL)
    io.write_tiff(folder / "labels.tif", labels, VOXEL)
    io.write_tiff(folder / "zeros.tif", np.zeros(labels.shape, np.uint8), VOXEL)
    with h5py.File(folder / "nuclei.h5", "w") as f:
        for name, data in (("raw", raw), ("label", labels)):
            f.create_dataset(name, data=data).attrs["element_size_um"] = VOXEL
    assert main(["simulate", "nuclei", "--shape", "12", "32", "32", "--radius", "3", "--sh-order", "4",
                 "--voxel-size", "1", "1", "1", "--out", str(folder / "sample")]) == 0
    assert main(["dataset", "--preset", "nuclei", "--count", "1", "--shape", "12", "32", "32", "--voxel-size", "1",
                 "1", "1", "--radius", "3", "--sh-order", "4", "--model", "physics", "--workers", "1",
                 "--out", str(folder / "dataset")]) == 0
    assert main(["shape-model", "fit", str(folder / "labels.tif"), "--rays", "50",
                 "--out", str(folder / "model.npz")]) == 0
    # damaged, forged and misnamed files
    tifffile.imwrite(folder / "two_d.tif", raw[0])
    full = (folder / "real.tif").read_bytes()
    (folder / "trunc.tif").write_bytes(full[: len(full) // 2])
    io.write_tiff(folder / "neg_labels.tif", -labels.astype(np.int16), VOXEL)
    io.write_tiff(folder / "tiny.tif", rng.random((1, 2, 2), dtype=np.float32), VOXEL)
    np.savez(folder / "npz.npz", raw=raw)
    (folder / "npz.npz").rename(folder / "npz.npy")
    with h5py.File(folder / "group.h5", "w") as f:
        f.create_group("raw")
        f.create_group("label")
    with h5py.File(folder / "scalar_voxel.h5", "w") as f:
        for name, data in (("raw", raw), ("label", labels)):
            f.create_dataset(name, data=data).attrs["element_size_um"] = 1.0
    with open(folder / "claims_8gb.npy", "wb") as f:  # a header that claims 8 GB, and no data
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (1000, 1000, 1000)})
    (folder / "text.pt").write_text("not a model\n")
    torch.save({"format": "cellsynth-generator"}, folder / "forged.pt")
    torch.save({"format": "cellsynth-generator", "kind": "nuclei", "state_dict": {},
                "network": {"in_channels": 2, "width": 10**9, "depth": 3, "out_channels": 1, "noise": True}},
               folder / "huge_width.pt")
    (folder / "text_model.npz").write_text("mean: 1\n")
    (folder / "dup.csv").write_text("z,y,x\n5,10,10\n6,20,20\n5,10,10\n")
    (folder / "files_list").mkdir()
    for f in (folder / "sample").iterdir():
        (folder / "files_list" / f.name).write_bytes(f.read_bytes())
    meta = io.read_json(folder / "sample" / "sample.json")
    io.write_json(folder / "files_list" / "sample.json", {**meta, "files": list(meta["files"].values())})
    report = folder / "report"
    report.mkdir()
    io.write_json(report / "metrics.json", {"zncc": 0.5, "info": {"cellsynth_version": "0"}})
    (report / "report.html").write_text("<html></html>\n")
    # configuration files
    (folder / "broken.yaml").write_text("seed: [1\n  x: 2\n")
    (folder / "nonutf8.yaml").write_bytes(b"\xff\xfe\x00seed: 1\n")
    (folder / "seed_fraction.yaml").write_text("seed: 1.5\n")
    (folder / "alpha_list.yaml").write_text("alpha: [1, 2]\n")
    # folders and files in the way
    project = folder / "project"
    project.mkdir()
    (project / "analysis.py").write_text("print('precious')\n")
    (folder / "afile").write_text("x\n")
    (folder / "ro").mkdir()
    os.chmod(folder / "ro", 0o555)
    return folder
