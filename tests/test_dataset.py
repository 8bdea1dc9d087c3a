"""Data set runner: seeds, splits, byte-identical runs (workers, kill -9 + resume), refusal
of mismatched parameters, failures, loading."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cellsynth import dataset, io
from cellsynth.errors import CellsynthError

TINY = {
    "kind": "nuclei",
    "shape": [12, 32, 32],
    "voxel_size": [2.0, 1.0, 1.0],
    "simulate": {"organism": "ellipsoid", "radius": 3.0, "radius_std": 0.5, "smoothness": 5.0, "sh_order": 6},
    "synthesize": {"model": "physics", "alpha": [10, 100]},
}
"""Tiny nuclei samples: a fraction of a second each."""


def tiny(**changes) -> dict:
    params = dataset.validate_parameters(TINY)
    params["simulate"].update(changes)
    return params


def files_of(root: Path) -> dict[str, bytes]:
    """Every file of a data set except the run log and the lock: these must be reproducible."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in ("log.jsonl", ".lock")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted in-process run of 4 samples."""
    root = tmp_path_factory.mktemp("ref") / "ds"
    report = dataset.generate_dataset(root, tiny(), 4, seed=7, workers=1, progress=False)
    assert sorted(report.made) == [0, 1, 2, 3] and not report.failed
    return root


# --------------------------------------------------------------------------- seeds and splits


def test_sample_seeds_are_spawned_children():
    children = np.random.SeedSequence(7).spawn(3)
    for i, child in enumerate(children):
        simulation, synthesis = dataset.sample_seeds(7, i)
        assert np.array_equal(simulation.generate_state(4), child.spawn(2)[0].generate_state(4))
        assert synthesis == int(np.random.SeedSequence(7, spawn_key=(i, 1)).generate_state(1, np.uint32)[0])
    assert dataset.sample_seeds(7, 0)[1] != dataset.sample_seeds(7, 1)[1]


@pytest.mark.parametrize("fractions", [(0.8, 0.1, 0.1), (0.5, 0.25, 0.25), (1, 0, 0), (0.34, 0.33, 0.33)])
def test_splits_follow_fractions_at_every_prefix(fractions):
    splits = dataset.assign_splits(200, fractions)
    for n in range(1, 201):
        for name, f in zip(dataset.SPLIT_NAMES, fractions):
            assert abs(splits[:n].count(name) - n * f) < 1.0 + 1e-9
    assert dataset.assign_splits(50, fractions) == splits[:50]  # growing never moves a sample


@pytest.mark.parametrize("bad", ["0.8,0.1", "0.8,0.3,0.1", "-0.1,0.6,0.5", "a,b,c"])
def test_bad_split_fractions(bad):
    with pytest.raises(CellsynthError, match="split fractions"):
        dataset.check_split_fractions(bad)


def test_alpha_parsing():
    assert dataset.parse_alphas("10,100,500") == [10.0, 100.0, 500.0]
    assert dataset.parse_alphas(50) == [50.0]
    for bad in ("0", "10,10", "x", []):
        with pytest.raises(CellsynthError, match="alpha"):
            dataset.parse_alphas(bad)
    assert [dataset.image_name(a, [10, 100]) for a in (10, 100)] == ["image_alpha10", "image_alpha100"]
    assert dataset.image_name(100, [100]) == "image"


# --------------------------------------------------------------------------- reproducibility


def test_files_are_deterministic_and_match_the_stages(reference, tmp_path):
    """Sample 2 re-made alone equals the run's sample 2; its labels and images equal the
    stage functions called directly with the documented seeds."""
    from cellsynth.simulate.pipeline import simulate_sample
    from cellsynth.synthesis import synthesize_image

    params = dataset.validate_parameters({**tiny(), "seed": 7})
    (tmp_path / "samples").mkdir()
    dataset.make_sample(tmp_path, 2, params)
    name = dataset.sample_name(2)
    assert files_of(tmp_path / "samples" / name) == files_of(reference / "samples" / name)

    simulation_seed, synthesis_seed = dataset.sample_seeds(7, 2)
    direct = simulate_sample("nuclei", (12, 32, 32), (2.0, 1.0, 1.0), np.random.default_rng(simulation_seed),
                             **dataset.simulate_arguments(params["simulate"]))
    ds = dataset.load_dataset(reference)
    sample = ds[2]
    assert np.array_equal(sample.labels, direct.labels)
    assert np.array_equal(sample.mask, direct.mask)
    assert sample.voxel_size == (2.0, 1.0, 1.0)
    for alpha in (10, 100):
        image = synthesize_image(direct.mask, direct.foreground, (2.0, 1.0, 1.0), model="physics", kind="nuclei",
                                 alpha=alpha, seed=synthesis_seed, progress=False)
        assert np.abs(ds.image(2, alpha) - np.clip(image, 0, 1)).max() <= 0.5 / 65535 + 1e-7
    assert not np.array_equal(ds.image(2, 10), ds.image(2, 100))  # alpha changes the image


def test_one_and_two_workers_give_identical_files(reference, tmp_path):
    report = dataset.generate_dataset(tmp_path / "ds", tiny(), 4, seed=7, workers=2, progress=False)
    assert sorted(report.made) == [0, 1, 2, 3]
    assert report.startup_s > 0 and report.shutdown_s > 0
    assert report.startup_s + report.shutdown_s < report.wall_s
    assert files_of(tmp_path / "ds") == files_of(reference)


WARM_IMPORTS = """
import sys, tempfile
from pathlib import Path
from cellsynth import dataset
from cellsynth.dataset.executors import _import_stages
from cellsynth.dataset.runner import _resolve_model
from cellsynth.render.registry import shipped_model
from test_dataset import TINY
_import_stages()
before = set(sys.modules)
membranes = {**TINY, "kind": "membranes", "simulate": {"cell_size": 8.0}}
runs = [dict(p, synthesize={"model": model}) for p in (TINY, membranes)
        for model in ("physics", p["kind"]) if model == "physics" or shipped_model(model) is not None]
with tempfile.TemporaryDirectory() as tmp:
    for i, params in enumerate(runs):
        params = _resolve_model(dataset.validate_parameters({**params, "seed": 1}))
        (Path(tmp) / str(i) / "samples").mkdir(parents=True)
        dataset.make_sample(Path(tmp) / str(i), 0, params)
new = set(sys.modules) - before
print(sorted(m for m in new if m.startswith("cellsynth") or m.split(".")[0] not in {b.split(".")[0] for b in before}))
"""


def test_workers_import_what_a_sample_needs_at_start_up():
    """Dask workers run _import_stages before the first sample, so that imports count as
    start-up (and a worker without a dependency fails there): afterwards, making samples of
    either kind with any model imports no cellsynth module and no new package."""
    result = subprocess.run([sys.executable, "-c", WARM_IMPORTS], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).parent, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_local_cluster_settings_are_dask_settings():
    """Dask ignores a misspelt key silently: every key must name one of its settings."""
    import dask
    import distributed  # noqa: F401  (loads the distributed defaults)

    from cellsynth.dataset.executors import LOCAL_CLUSTER_CONFIG

    for key in LOCAL_CLUSTER_CONFIG:
        dask.config.get(key)  # raises KeyError for an unknown key


def test_existing_scheduler_gives_identical_files(reference, tmp_path):
    """--scheduler: a cluster started elsewhere (here a LocalCluster) makes the same samples."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as cluster:
        report = dataset.generate_dataset(tmp_path, tiny(), 2, seed=7, scheduler=cluster.scheduler_address,
                                          progress=False)
    assert sorted(report.made) == [0, 1]
    for name in ("sample_0000", "sample_0001"):
        assert files_of(tmp_path / "samples" / name) == files_of(reference / "samples" / name)


def test_samples_do_not_depend_on_the_callers_torch_threads(tmp_path):
    """A generator's output differs in the last bits between 1 and 2 torch threads; every
    sample is made with one thread, so the files do not depend on the machine."""
    import torch

    from cellsynth.render.registry import shipped_model

    if shipped_model("nuclei") is None:
        pytest.skip("no shipped nuclei generator in this installation")
    params = dataset.validate_parameters({**TINY, "synthesize": {"model": "nuclei", "alpha": [100]}, "seed": 1})
    before = torch.get_num_threads()
    made = []
    try:
        for threads in (2, 1):
            torch.set_num_threads(threads)
            (tmp_path / str(threads) / "samples").mkdir(parents=True)
            dataset.make_sample(tmp_path / str(threads), 0, params)
            assert torch.get_num_threads() == threads  # restored
            made.append(files_of(tmp_path / str(threads)))
    finally:
        torch.set_num_threads(before)
    assert made[0] == made[1]


def _cli(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cellsynth", "dataset", "--preset", str(out.parent / "tiny.yaml"), "--count", "4",
            "--seed", "7", "--workers", "1", "--out", str(out), *extra]


def test_kill_9_then_resume_gives_identical_files(reference, tmp_path):
    import yaml

    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    out = tmp_path / "ds"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(_cli(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out / "samples" / "sample_0000" / "sample.json").exists():  # kill during a later sample
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = {p.parent.name for p in (out / "samples").glob("*/sample.json")}
    assert "sample_0000" in done and len(done) < 4
    for name in done:  # what was finished before the kill is complete and final
        assert files_of(out / "samples" / name) == files_of(reference / "samples" / name)

    result = subprocess.run(_cli(out, "--resume"), env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"{len(done)} already there" in result.stdout
    assert files_of(out) == files_of(reference)
    assert not [p for p in out.rglob(".*") if p.name != ".lock"]  # no temporary leftovers


# --------------------------------------------------------------------------- resume rules


def test_rerun_makes_only_missing_and_refuses_other_parameters(reference, tmp_path):
    root = tmp_path / "ds"
    dataset.generate_dataset(root, tiny(), 2, seed=7, workers=1, progress=False)
    first = files_of(root / "samples")
    again = dataset.generate_dataset(root, tiny(), 2, seed=7, workers=1, progress=False)
    assert again.made == [] and again.skipped == [0, 1]
    grown = dataset.generate_dataset(root, None, 4, resume=True, workers=1, progress=False)  # extend
    assert grown.made == [2, 3]
    assert {k: v for k, v in files_of(root / "samples").items() if k in first} == first
    assert files_of(root) == files_of(reference)

    with pytest.raises(CellsynthError, match=r"other parameters \(simulate.radius: 3.0 -> 4.0"):
        dataset.generate_dataset(root, tiny(radius=4.0), 4, seed=7, workers=1, progress=False)
    with pytest.raises(CellsynthError, match=r"seed: 7 -> 8"):
        dataset.generate_dataset(root, tiny(), 4, seed=8, workers=1, progress=False)
    with pytest.raises(CellsynthError, match="at least"):
        dataset.generate_dataset(root, tiny(), 3, seed=7, workers=1, progress=False)
    assert files_of(root) == files_of(reference)  # refusals change nothing


def test_refuses_foreign_folder_and_resume_of_nothing(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(CellsynthError, match="not empty and holds no data set"):
        dataset.generate_dataset(tmp_path, tiny(), 1, workers=1, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]  # nothing written into a foreign folder
    with pytest.raises(CellsynthError, match="holds no data set"):
        dataset.generate_dataset(tmp_path / "empty", None, None, resume=True, workers=1, progress=False)
    assert not (tmp_path / "empty").exists()


@pytest.mark.parametrize("content", ["{not json", '{"format": "something-else"}', "[]"])
def test_corrupt_manifest_is_a_clear_error(tmp_path, content):
    dataset.generate_dataset(tmp_path, tiny(), 1, workers=1, progress=False)
    (tmp_path / "dataset.json").write_text(content)
    with pytest.raises(CellsynthError, match="dataset.json"):
        dataset.generate_dataset(tmp_path, tiny(), 1, workers=1, progress=False)
    with pytest.raises(CellsynthError, match="dataset.json"):
        dataset.load_dataset(tmp_path)


def test_full_disk_fails_cleanly_and_resume_completes(reference, tmp_path, monkeypatch):
    """ENOSPC while writing sample 1: it fails with the reason, the others are intact."""
    write_volume = io.write_volume

    def full_disk(path, *args, **kwargs):
        if "sample_0001" in str(path):
            raise CellsynthError(f"could not write {path}: {os.strerror(errno.ENOSPC)}")
        return write_volume(path, *args, **kwargs)

    root = tmp_path / "ds"
    monkeypatch.setattr(io, "write_volume", full_disk)
    report = dataset.generate_dataset(root, tiny(), 4, seed=7, workers=1, progress=False)
    assert list(report.failed) == [1] and "No space left on device" in report.failed[1]
    assert sorted(report.made) == [0, 2, 3]
    states = [s["state"] for s in dataset.read_manifest(root)["samples"]]
    assert states == ["done", "failed", "done", "done"]
    assert not (root / "samples" / "sample_0001").exists()
    assert not [p for p in (root / "samples").iterdir() if p.name.startswith(".")]
    monkeypatch.setattr(io, "write_volume", write_volume)
    assert dataset.generate_dataset(root, tiny(), 4, seed=7, workers=1, progress=False).made == [1]
    assert files_of(root) == files_of(reference)


def test_early_stop_when_every_sample_fails(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    root = tmp_path / "ds"
    assert dataset.generate_dataset(root, tiny(), 1, workers=1, progress=False).made == [0]
    monkeypatch.setattr("cellsynth.dataset.executors.make_sample", broken)
    report = dataset.generate_dataset(root, tiny(), 7, workers=1, progress=False)
    assert sorted(report.failed) == [1, 2, 3] and not report.made  # stopped after three failures in a row
    assert report.failed[1] == "RuntimeError: boom"
    assert '"traceback"' in (root / "log.jsonl").read_text()


@pytest.mark.parametrize("existing", [False, True])
def test_a_first_start_that_makes_nothing_leaves_nothing(tmp_path, monkeypatch, existing):
    """Every sample of a new data set fails: the error says why, and the folder is as before
    (gone, or empty again where it existed)."""
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    root = tmp_path / "ds"
    if existing:
        root.mkdir()
    monkeypatch.setattr("cellsynth.dataset.executors.make_sample", broken)
    with pytest.raises(CellsynthError, match="no sample could be made.*sample_0000: RuntimeError: boom"):
        dataset.generate_dataset(root, tiny(), 4, workers=1, progress=False)
    assert sorted(p.name for p in tmp_path.rglob("*")) == (["ds"] if existing else [])


def test_bad_model_or_shape_is_refused_before_anything_is_written(tmp_path):
    """A model that does not load, a shape too large for memory, or a tiling that cannot work:
    refused before the manifest exists, and the fixed command then works."""
    (tmp_path / "text.pt").write_text("not a model")
    for overrides, message in (({"synthesize.model": str(tmp_path / "missing.pt")}, "not found"),
                               ({"synthesize.model": str(tmp_path / "text.pt")}, "not a readable cellsynth checkpoint"),
                               ({"shape": [1500, 1500, 1500]}, "memory"),
                               ({"synthesize.patch": [8, 8, 8], "synthesize.model": "nuclei"}, "patch step")):
        with pytest.raises(CellsynthError, match=message):
            dataset.generate_dataset(tmp_path / "ds", dataset.apply_overrides(tiny(), overrides), 2, workers=1,
                                     progress=False)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["text.pt"]
    with pytest.raises(CellsynthError, match="memory"):
        dataset.generate_dataset(tmp_path / "ds", tiny(), 10**12, workers=1, progress=False)
    assert dataset.generate_dataset(tmp_path / "ds", tiny(), 2, workers=1, progress=False).made == [0, 1]


def test_another_split_is_refused(tmp_path):
    root = tmp_path / "ds"
    dataset.generate_dataset(root, tiny(), 2, split_fractions=(0.5, 0.5, 0.0), workers=1, progress=False)
    splits = (root / "splits.csv").read_bytes()
    for fractions in ((0.8, 0.1, 0.1), None):  # None: the default with parameters given
        with pytest.raises(CellsynthError, match="other parameters.*split"):
            dataset.generate_dataset(root, tiny(), 2, split_fractions=fractions, workers=1, progress=False)
    with pytest.raises(CellsynthError, match="leave --split out"):
        dataset.generate_dataset(root, None, None, split_fractions=(0.8, 0.1, 0.1), resume=True, progress=False)
    assert dataset.generate_dataset(root, None, None, resume=True, progress=False).skipped == [0, 1]
    assert (root / "splits.csv").read_bytes() == splits


def test_unwritable_output_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CellsynthError, match="--out"):
        dataset.generate_dataset(blocker / "ds", tiny(), 1, workers=1, progress=False)


def test_unreachable_scheduler_fails_fast(tmp_path):
    start = time.monotonic()
    with pytest.raises(CellsynthError, match="cannot reach the Dask scheduler"):
        dataset.generate_dataset(tmp_path, tiny(), 1, scheduler="tcp://127.0.0.1:9", scheduler_timeout_s=2,
                                 progress=False)
    assert time.monotonic() - start < 30


# --------------------------------------------------------------------------- loading


def test_load_dataset_round_trip(reference):
    import cellsynth

    assert cellsynth.load_dataset is dataset.load_dataset
    ds = cellsynth.load_dataset(reference)
    assert len(ds) == 4 and ds.kind == "nuclei" and ds.voxel_size == (2.0, 1.0, 1.0) and ds.alphas == [10, 100]
    for i, sample in enumerate(ds):
        assert sample.labels.shape == (12, 32, 32) and sample.labels.dtype == np.uint16
        assert sample.metadata["dataset"]["index"] == i
        labels, voxel = io.read_volume(ds.path(i, "labels"))
        assert voxel == pytest.approx((2.0, 1.0, 1.0)) and np.array_equal(labels, sample.labels)
        image = ds.image(i, 100)
        assert image.dtype == np.float32 and 0 <= image.min() and image.max() <= 1
    splits = {s: ds.split(s).names for s in dataset.SPLIT_NAMES}
    assert sorted(sum(splits.values(), [])) == ds.names
    with pytest.raises(CellsynthError, match="alpha"):
        ds.image(0, 50)


def test_patch_dataset_yields_windows_of_the_volumes(reference):
    import torch

    ds = dataset.load_dataset(reference)
    patches = ds.patches((6, 16, 8), alpha=10, length=6, seed=3)
    loader = torch.utils.data.DataLoader(patches, batch_size=3, num_workers=0)
    batches = list(loader)
    assert len(batches) == 2
    image, labels = batches[0]
    assert image.shape == (3, 1, 6, 16, 8) and image.dtype == torch.float32
    assert labels.shape == (3, 6, 16, 8) and labels.dtype == torch.int64
    for k in range(6):
        img, lab = patches[k]
        full_img, full_lab = ds.image(k % 4, 10), ds[k % 4].labels.astype(np.int64)
        hits = [(z, y, x) for z in range(12 - 6 + 1) for y in range(32 - 16 + 1) for x in range(32 - 8 + 1)
                if np.array_equal(full_lab[z:z + 6, y:y + 16, x:x + 8], lab.numpy())
                and np.allclose(full_img[z:z + 6, y:y + 16, x:x + 8], img[0].numpy())]
        assert hits, f"patch {k} is not a window of sample {k % 4}"
    first = [patches[k][1] for k in range(6)]
    patches.set_epoch(1)
    assert any(not torch.equal(a, patches[k][1]) for k, a in enumerate(first))
    with pytest.raises(CellsynthError, match="patch"):
        ds.patches((13, 8, 8))


def test_local_cluster_serves_no_dashboard_and_keeps_scratch_inside_the_data_set(tmp_path):
    """--workers 2: the scheduler's HTTP endpoint (Dask always starts one) is on a free port of
    127.0.0.1, not on 8787 as a dashboard, and the workers' scratch space is inside --out and
    gone afterwards."""
    from cellsynth.dataset.executors import SCRATCH_NAME, _dask_client

    scratch = tmp_path / SCRATCH_NAME
    with _dask_client(2, None, 30.0, scratch) as client:
        info = client.scheduler_info()
        assert "bokeh" not in str(info.get("services")) and info["services"].get("dashboard") != 8787
        server = client.cluster.scheduler.http_server
        assert server.address == "127.0.0.1" and server.port != 8787
        folders = client.run(lambda dask_worker: dask_worker.local_directory)
        assert len(folders) == 2 and all(Path(f).is_relative_to(scratch) for f in folders.values())
    assert not scratch.exists()
