"""Every command, bad or hostile input: exit 2, one line on stderr, no traceback, nothing
written and nothing else changed on disk.

Each case runs ``cellsynth.cli.main`` in this process (fast) from a fresh working folder;
the folder and the shared inputs are snapshotted (paths, permissions, contents) before and
after. A few cases run as a subprocess too, the way users start the command.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hostile import make_inputs, run_quietly, snapshot, temporaries

SIM = "simulate nuclei --shape 12 32 32 --radius 3 --sh-order 4"
MEM = "simulate membranes --shape 12 32 32"
SYN = "synthesize {in}/sample --model physics --out out.tif"
LAB = "synthesize {} --kind nuclei --voxel-size 1 1 1 --out out.tif"
TRAIN = ("train --data {in}/nuclei.h5 --kind nuclei --out run --steps 1 --patch 16 16 16 --width 2 --depth 2 "
         "--d-width 2 --d-layers 2")
EVAL = "evaluate --real {in}/real.tif --synthetic {in}/real.tif"
ANN = "annotate {in}/real.tif --out ann"
DSET = "dataset --preset nuclei --count 1 --shape 12 32 32 --radius 3 --sh-order 4 --model physics --workers 1"
EXP = "export {in}/dataset --to stardist"
CAL = "calibrate {in}/real.tif --labels {in}/labels.tif --kind nuclei"
MEAS = "measure {in}/labels.tif --kind nuclei"

CASES = [
    # --- data loss and damage
    (f"{SIM} --out {{in}}/project --overwrite", "not cellsynth output"),
    (f"{SIM} --out . --overwrite", "current folder"),
    (f"{SIM} --out {{in}}/ro", "read-only"),
    (f"{SIM} --out {{in}}/afile", "is a file"),
    (f"{SIM} --out {{in}}/afile/sample", "not a folder"),
    (f"{EVAL} --report {{in}}/report", "already exists"),
    (f"{EVAL} --report {{in}}/project --overwrite", "not cellsynth output"),
    (f"{DSET} --out {{in}}/project", "not empty"),
    (f"{DSET} --model missing.pt --out ds", "not found"),
    (f"{DSET} --model {{in}}/text.pt --out ds", "not a readable cellsynth checkpoint"),
    (f"{DSET} --shape 1500 1500 1500 --out ds", "memory"),
    (f"{DSET} --out {{in}}/dataset --split 0.5,0.5,0", "split"),
    (f"{EXP} --out {{in}}/project --overwrite", "not cellsynth output"),
    # --- hangs and memory
    ("synthesize {in}/sample --model nuclei --patch 8 8 8 --out out.tif", "patch step"),
    ("synthesize {in}/sample --model nuclei --patch 1 1 1 --out out.tif", "patch step"),
    ("shape-model fit {in}/labels.tif --rays 1000000000 --out m.npz", "memory"),
    (f"{DSET} --count 1000000000 --out ds", "memory"),
    (f"{SIM} --shape 1500 1500 1500 --out s", "memory"),
    (f"{TRAIN} --width 100000", "memory"),
    (f"{SYN.replace('physics', '{in}/huge_width.pt')}", "do not match"),
    # --- tracebacks where one line is promised
    (LAB.format("{in}/group.h5"), "is a group"),
    (LAB.replace(" --voxel-size 1 1 1", "").format("{in}/scalar_voxel.h5"), "element_size_um"),
    (LAB.format("{in}/npz.npy"), ".npz archive"),
    ("synthesize {in}/files_list --model physics --out out.tif", "damaged"),
    (SYN.replace("physics", "{in}/forged.pt"), "not a complete cellsynth generator"),
    (SYN.replace("physics", "{in}/text.pt"), "not a readable cellsynth checkpoint"),
    (f"{SIM} --seed -1 --out s", "--seed"),
    ("shape-model sample {in}/model.npz --shape 40 40 40 --seed -1 --out s.tif", "--seed"),
    (f"{TRAIN} --seed -1", "--seed"),
    (f"{SYN} --seed -1", "--seed"),
    (f"{DSET} --seed -1 --out ds", "--seed"),
    (f"{SIM} --config {{in}}/seed_fraction.yaml --out s", "seed"),
    (f"{SYN} --config {{in}}/alpha_list.yaml", "alpha"),
    (f"{SIM} --config {{in}}/nonutf8.yaml --out s", "UTF-8"),
    (f"{SIM} --config {{in}}/broken.yaml --out s", "line 2"),
    ("annotate {in}/real.tif --out {in}/afile", "is a file"),
    ("annotate {in}/real.tif --out {in}/ro/ann", "read-only"),
    (f"{TRAIN.replace('run', '{in}/afile')}", "is a file"),
    (f"{TRAIN.replace('run', '{in}/ro/run')}", "read-only"),
    (f"{EVAL} --report {{in}}/afile", "is a file"),
    (f"{EVAL} --report {{in}}/ro/report", "read-only"),
    (f"{TRAIN} --width 0", "--width"),
    (f"{TRAIN} --lr-g nan", "--lr-g"),
    (f"{TRAIN} --batch 0", "--batch"),
    (f"{TRAIN} --threads -1", "--threads"),
    ("evaluate --real {in}/tiny.tif --synthetic {in}/tiny.tif", "too small"),
    (TRAIN.replace("nuclei.h5", "group.h5"), "is a group"),
    (TRAIN.replace("nuclei.h5", "scalar_voxel.h5"), "element_size_um"),
    (LAB.format("{in}/trunc.tif"), "truncated"),
    (f"{SIM} --shape 16 32 --out s", "--help"),
    (f"{SIM} --bogus 1 --out s", "unrecognized arguments"),
    ("bogus", "invalid choice"),
    ("annotate {in}/zeros.tif --out ann", "constant"),
    (f"{SIM} --cell-size 0.001 --out s", "two voxels"),
    (f"{SIM} --voxel-size 1e300 1 1 --out s", "micrometres"),
    (f"{SIM} --organism {{in}}/text_model.npz --out s", "not a cellsynth shape model"),
    ("shape-model sample {in}/text_model.npz --shape 40 40 40 --out s.tif", "not a cellsynth shape model"),
    # --- smaller
    (LAB.format("{in}/two_d.tif"), "2D image"),
    (LAB.format("{in}/neg_labels.tif"), "negative"),
    (f"{SIM} --organism box --positions {{in}}/dup.csv --out s", "same position"),
    (f"{MEM} --membrane-thickness 1e9 --out s", "membrane thickness"),
    (f"{TRAIN} --ada-p 5", "--ada-p"),
    (f"{TRAIN} --device {{in}}/text.pt", "unknown device"),  # found by the fuzz test
    # --- the same readers and checks reached through every command
    ("shape-model fit {in}/two_d.tif {in}/labels.tif --out m.npz", "2D image"),
    ("shape-model fit {in}/trunc.tif --out m.npz", "truncated"),
    ("shape-model fit {in}/group.h5 --out m.npz", "is a group"),
    ("shape-model fit {in}/labels.tif --out {in}/afile/m.npz", "not a folder"),
    (f"{SIM} --organism {{in}}/neg_labels.tif --out s", "negative"),
    (f"{SIM} --organism {{in}}/npz.npy --out s", ".npz archive"),
    ("annotate {in}/two_d.tif --out ann", "2D image"),
    ("annotate {in}/trunc.tif --out ann", "truncated"),
    ("evaluate --real {in}/npz.npy --synthetic {in}/real.tif", ".npz archive"),
    (f"{SYN} --batch-size 0", "--batch-size"),
    ("synthesize {in}/sample --model physics --out {in}/real.tif", "already exists"),
    ("shape-model fit {in}/labels.tif --out {in}/model.npz", "already exists"),
    (f"{EXP} --out exp --dataset-id 0", "--dataset-id"),
    ("export {in}/sample --to stardist --out exp", "dataset.json"),
    (f"{DSET} --config {{in}}/seed_fraction.yaml --out ds", "seed"),
    (f"{SIM} --config {'x' * 300}.yaml --out s", "File name too long"),  # found by the fuzz test
    (f"{SIM} --out {'x' * 300}", "File name too long"),
    # --- calibrate (a command added after the issue): the same readers, checks and output rules
    (f"{CAL} --out {{in}}/ro/r.yaml", "read-only"),
    (f"{CAL} --out {{in}}/afile/r.yaml", "not a folder"),
    (f"{CAL} --out {{in}}/broken.yaml", "already exists"),
    (f"{CAL} --seed -1 --out r.yaml", "--seed"),
    (f"{CAL} --holdout 0.95 --out r.yaml", "--holdout"),
    (f"{CAL} --config {{in}}/seed_fraction.yaml --out r.yaml", "seed"),
    ("calibrate {in}/group.h5 --kind nuclei --out r.yaml", "is a group"),
    ("calibrate {in}/scalar_voxel.h5 --kind nuclei --out r.yaml", "element_size_um"),
    (CAL.replace("real.tif", "trunc.tif") + " --out r.yaml", "truncated"),
    (CAL.replace("real.tif", "two_d.tif") + " --out r.yaml", "2D image"),
    (CAL.replace("real.tif", "npz.npy") + " --out r.yaml", ".npz archive"),
    (CAL.replace("labels.tif", "neg_labels.tif") + " --out r.yaml", "non-negative"),
    (CAL.replace("real.tif", "zeros.tif") + " --out r.yaml", "not visible"),
    # --- measure (added after the issue): the same readers, checks and output rules
    (f"{MEAS} --out {{in}}/ro/m", "read-only"),
    (f"{MEAS} --out {{in}}/afile/m", "is a file, not a folder"),
    (f"{MEAS} --out {{in}}/real.tif", "give a folder name"),
    (f"{MEAS} --fit nuclei --preset-out {{in}}/ro/p.yaml", "read-only"),
    (f"{MEAS} --fit nuclei --preset-out {{in}}/broken.yaml", "already exists"),
    (f"{MEAS} --seed -1", "--seed"),
    (f"{MEAS} --voxel-size 0 1 1", "--voxel-size"),
    (f"{MEAS} --crop abc : :", "three slices"),
    (f"{MEAS} --config {{in}}/seed_fraction.yaml", "seed"),
    (MEAS.replace("labels.tif", "zeros.tif"), "no labelled cell"),
    (MEAS.replace("labels.tif", "neg_labels.tif"), "non-negative"),
    (MEAS.replace("labels.tif", "trunc.tif"), "truncated"),
    (MEAS.replace("labels.tif", "two_d.tif"), "2D image"),
    (MEAS.replace("labels.tif", "group.h5"), "is a group"),
    (f"{MEAS} --compare {{in}}/npz.npy", ".npz archive"),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = make_inputs(tmp_path_factory.mktemp("hostile") / "in")
    yield folder
    (folder / "ro").chmod(0o755)


def _argv(case: str, inputs: Path) -> list[str]:
    return shlex.split(case.replace("{in}", str(inputs)))


@pytest.mark.parametrize("case, message", CASES, ids=[c for c, _ in CASES])
def test_bad_input_exits_2_with_one_line_and_changes_nothing(case, message, inputs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = snapshot(inputs, tmp_path)
    code, out, err = run_quietly(_argv(case, inputs))
    assert code == 2, err
    assert err.startswith("cellsynth: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert message in err, err
    assert out == ""
    assert snapshot(inputs, tmp_path) == before
    assert not temporaries(inputs, tmp_path)


SUBPROCESS_CASES = [
    "synthesize {in}/sample --model nuclei --patch 8 8 8 --out out.tif",  # was an endless loop
    "simulate nuclei --shape 16 32 --out s",
    "simulate nuclei --seed -1 --out s",
    "simulate nuclei --config {in}/broken.yaml --out s",
]


MEMORY_CAP = 4 * 2**30
"""Address space of the memory-capped cases (``ulimit -v``): imports take under 1 GiB."""

MEMORY_CASES = [  # each fits on a large machine, none in 4 GiB
    "shape-model sample {in}/model.npz --shape 1600 1600 1600 --out s.tif",
    "simulate nuclei --shape 600 1000 1000 --out s",
    "synthesize {in}/claims_8gb.npy --kind nuclei --voxel-size 1 1 1 --out out.tif",
    "train --data {in}/nuclei.h5 --kind nuclei --out run --steps 1 --width 512",
]


def _cap_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


@pytest.mark.parametrize("case, cap", [(c, None) for c in SUBPROCESS_CASES] + [(c, MEMORY_CAP) for c in MEMORY_CASES])
def test_bad_input_as_a_user_runs_it(case, cap, inputs, tmp_path):
    """As a subprocess; the memory cases under a 4 GiB address-space limit, where they must be
    refused by the memory check before anything is allocated."""
    before = snapshot(inputs, tmp_path)
    result = subprocess.run([sys.executable, "-m", "cellsynth", *_argv(case, inputs)], cwd=tmp_path, timeout=120,
                            capture_output=True, text=True, check=False, preexec_fn=_cap_memory if cap else None)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("cellsynth: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "memory" in result.stderr or not cap, result.stderr
    assert snapshot(inputs, tmp_path) == before
