"""Generate or complete a data set: folder, lock, manifest, splits, README, and the samples."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cellsynth import io
from cellsynth.checks import check_seed
from cellsynth.dataset.executors import default_workers, sample_executor
from cellsynth.dataset.manifest import build_manifest, differences, read_manifest
from cellsynth.dataset.presets import validate_parameters
from cellsynth.dataset.readme import write_readme
from cellsynth.dataset.seeds import (
    DEFAULT_SPLITS,
    SPLIT_NAMES,
    assign_splits,
    check_split_fractions,
    sample_name,
)
from cellsynth.errors import CellsynthError
from cellsynth.locking import folder_lock
from cellsynth.memory import check_memory
from cellsynth.outputs import check_output, normalized
from cellsynth.progress import progress_bar

DEFAULT_SCHEDULER_TIMEOUT_S = 10.0

MANIFEST_INTERVAL_S = 5.0
"""Minimum time between two rewrites of dataset.json while samples complete."""


@dataclass
class RunReport:
    """What a :func:`generate_dataset` run did.

    Attributes
    ----------
    root
        The data set folder.
    count
        Samples in the data set.
    made
        Indices of the samples made by this run.
    skipped
        Indices of the samples that already existed.
    failed
        Index -> error message for the samples that failed.
    wall_s
        Wall-clock seconds of the run.
    timings
        Index -> per-stage seconds of the samples made by this run.
    startup_s
        Seconds spent starting or connecting to a Dask cluster.
    shutdown_s
        Seconds spent closing it, after the last sample.
    """

    root: Path
    count: int
    made: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    wall_s: float = 0.0
    timings: dict[int, dict[str, float]] = field(default_factory=dict)
    startup_s: float = 0.0
    shutdown_s: float = 0.0


def generate_dataset(
    out: str | os.PathLike,
    parameters: Mapping[str, Any] | None,
    count: int | None,
    *,
    seed: int = 0,
    split_fractions: Sequence[float] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    scheduler_timeout_s: float = DEFAULT_SCHEDULER_TIMEOUT_S,
    resume: bool = False,
    progress: bool | None = None,
) -> RunReport:
    """Generate (or complete) a data set of ``count`` samples in folder ``out``.

    Parameters
    ----------
    out
        The data set folder. If it holds a data set, the same parameters must be given
        (or ``None`` with ``resume=True``); only missing or failed samples are made, and
        a larger ``count`` extends the data set.
    parameters
        Validated preset parameters (:func:`load_preset`, :func:`apply_overrides`).
    count
        Number of samples (None with ``resume=True``: the recorded count).
    seed
        The data set seed; sample ``i`` uses ``SeedSequence(seed, spawn_key=(i,))``.
    split_fractions
        train, val, test fractions for ``splits.csv`` (default: 0.8, 0.1, 0.1 for a new data
        set, the recorded ones for an existing one, which may not be changed: it would move
        samples between the splits).
    workers
        Local worker processes (default: the core count), at most one per sample to make;
        one worker runs in this process.
    scheduler
        Address of an existing ``dask.distributed`` scheduler (``tcp://host:8786``); the
        workers must see ``out`` at the same path.
    scheduler_timeout_s
        How long to try to reach ``scheduler`` before giving up.
    resume
        Require ``out`` to hold a data set already (parameters may then be omitted).
    progress
        Show a progress bar (None: only on a terminal).

    Returns
    -------
    RunReport
        The samples made, skipped and failed. Failures do not raise; the caller reports
        them (the CLI exits with status 2).

    Raises
    ------
    CellsynthError
        For invalid arguments, mismatched parameters, an unreadable or corrupted manifest,
        an unwritable folder, or an unreachable scheduler.
    """
    start = time.perf_counter()
    root = normalized(out)
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise CellsynthError(f"--workers must be at least 1, got {workers}")
    if workers is not None and scheduler:
        raise CellsynthError("give either --workers (a local cluster) or --scheduler (an existing one), not both")
    fractions = None if split_fractions is None else check_split_fractions(split_fractions)
    if resume and not (root / "dataset.json").is_file():
        raise CellsynthError(f"--resume: {root} holds no data set (no dataset.json); drop --resume to create one")
    _refuse_foreign_folder(root)
    before = sorted(_entries(root)) if root.is_dir() else None
    _prepare_folder(root)
    report = RunReport(root=root, count=0)
    locked = first_start = False
    try:
        with folder_lock(root, f"another `cellsynth dataset` run is writing to {root}; wait for it or choose "
                               "another --out"):
            locked, first_start = True, not (root / "dataset.json").exists()
            _remove_leftovers(root)
            parameters, count, fractions = _resolve_run(root, parameters, count, seed, fractions)
            check_run(parameters, count, workers if scheduler is None else 1)  # before anything is written
            splits = assign_splits(count, fractions)
            existing = {i for i in range(count) if (root / "samples" / sample_name(i) / "sample.json").is_file()}
            states = {i: "done" for i in existing}
            errors: dict[int, str] = {}
            report.count, report.skipped = count, sorted(existing)
            write_manifest = lambda: io.write_json(  # noqa: E731
                root / "dataset.json", build_manifest(parameters, count, splits, fractions, states, errors))
            write_manifest()
            io.write_positions(root / "splits.csv", {"name": np.array([sample_name(i) for i in range(count)]),
                                                     "split": np.array(splits)})
            write_readme(root, parameters, count, fractions)
            todo = [i for i in range(count) if i not in existing]
            if todo:
                _run_tasks(root, parameters, todo, count, report, states, errors, write_manifest,
                           workers=workers, scheduler=scheduler, timeout=scheduler_timeout_s, progress=progress)
            write_manifest()
    except BaseException:
        if first_start and not report.made:
            _undo_first_start(root, before)
        elif not locked and before is None:  # only the empty folders made above, never another run's
            for folder in (root / "samples", root):
                with contextlib.suppress(OSError):
                    folder.rmdir()
        raise
    if first_start and not report.made and report.failed:
        _undo_first_start(root, before)
        index, error = min(report.failed.items())
        raise CellsynthError(f"no sample could be made, so the data set was not kept ({sample_name(index)}: "
                             f"{error})")
    report.wall_s = time.perf_counter() - start
    return report


def check_run(parameters: Mapping[str, Any], count: int, workers: int | None = None) -> None:
    """Check that a data set run can work, before anything of it is written.

    The simulation parameters (:func:`cellsynth.simulate.pipeline.check_simulation`), the
    model (it loads, and its tiling fits the shape: :func:`cellsynth.synthesis.check_synthesis`),
    and memory: the manifest of ``count`` samples, and one sample per local worker.

    Raises
    ------
    CellsynthError
        Naming what cannot work and what to change.
    """
    from cellsynth.dataset.presets import simulate_arguments
    from cellsynth.simulate.pipeline import check_simulation, simulation_bytes
    from cellsynth.synthesis import check_synthesis

    kind, shape, voxel = parameters["kind"], tuple(parameters["shape"]), tuple(parameters["voxel_size"])
    check_memory(count * MANIFEST_BYTES_PER_SAMPLE, f"a data set of {count} samples", "choose a smaller --count")
    check_simulation(kind, shape, voxel, **simulate_arguments(parameters["simulate"]))
    synth = {k: v for k, v in parameters["synthesize"].items() if k != "alpha"}
    alphas = parameters["synthesize"]["alpha"]
    synthesis = check_synthesis(shape, voxel, kind=kind, alpha=alphas[0], check_memory=False,
                                renderer=parameters.get("renderer"), family=parameters.get("family"),
                                **synth).memory_bytes
    parallel = max(1, min(workers or default_workers(), count))
    voxels = int(np.prod(shape, dtype=np.float64))
    # a sample keeps its annotation and one image per alpha while the next image is made
    sample = max(simulation_bytes(shape), voxels * (SAMPLE_BYTES_PER_VOXEL + 4 * len(alphas)) + synthesis)
    check_memory(parallel * sample, f"making {parallel} samples of {'x'.join(map(str, shape))} voxels at once",
                 "choose a smaller --shape or fewer --workers")


MANIFEST_BYTES_PER_SAMPLE = 2048
"""About what one sample costs in memory in the manifest, the splits and the run's bookkeeping."""

SAMPLE_BYTES_PER_VOXEL = 6
"""A finished sample's labels (up to uint32), mask and foreground, per voxel."""


def _entries(root: Path) -> set[str]:
    """Relative names of what a data set folder holds (its samples folder opened)."""
    names = {e.name for e in root.iterdir()}
    if (root / "samples").is_dir():
        names |= {f"samples/{e.name}" for e in (root / "samples").iterdir()}
    return names


def _undo_first_start(root: Path, before: list[str] | None) -> None:
    """Remove what a first start that made no sample wrote: the folder, if it made it, else the
    entries that were not there before."""
    if before is None:
        shutil.rmtree(root, ignore_errors=True)
        return
    for name in sorted(_entries(root) - set(before), reverse=True):  # samples/... before samples
        entry = root / name
        shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


def _refuse_foreign_folder(root: Path) -> None:
    """Refuse a non-empty folder that is not a data set, before writing anything into it."""
    check_output(root, existing_ok=True)
    if not root.is_dir() or (root / "dataset.json").exists():
        return
    foreign = [e.name for e in root.iterdir() if not e.name.startswith(".") and e.name != "samples"]
    if (root / "samples").is_dir():
        foreign += [f"samples/{e.name}" for e in (root / "samples").iterdir() if not e.name.startswith(".")]
    if foreign:
        raise CellsynthError(f"{root} is not empty and holds no data set ({', '.join(sorted(foreign)[:3])} ...); "
                             "choose an empty or new --out")


def _prepare_folder(root: Path) -> None:
    try:
        (root / "samples").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CellsynthError(f"cannot create the data set folder {root}: {err.strerror or err}; "
                             "choose a writable --out") from None


def _remove_leftovers(root: Path) -> None:
    """Delete temporary folders left by a killed run (never a finished sample)."""
    for folder in (root, root / "samples"):
        for entry in folder.iterdir():
            if io.is_temporary(entry.name):
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


Fractions = tuple[float, float, float]


def _resolve_run(root: Path, parameters: Mapping[str, Any] | None, count: int | None, seed: int,
                 fractions: Fractions | None) -> tuple[dict[str, Any], int, Fractions]:
    """Merge the requested run with a data set already in ``root``; refuse a mismatch.

    Returns the parameters, the count and the split fractions of the run (``fractions``
    None: the recorded ones, or the default for a new data set).
    """
    has_manifest = (root / "dataset.json").exists()
    if not has_manifest:
        if parameters is None:
            raise CellsynthError("give --preset to create a data set")
        if count is None or isinstance(count, bool) or count < 1:
            raise CellsynthError(f"--count must be a positive number of samples, got {count}")
        return (_resolve_model(validate_parameters({**parameters, "seed": check_seed(seed)})), int(count),
                fractions or DEFAULT_SPLITS)
    manifest = read_manifest(root)
    recorded = manifest["parameters"]
    recorded_count = manifest.get("count")
    if not isinstance(recorded_count, int) or recorded_count < 1 or "seed" not in recorded:
        raise CellsynthError(f"{root / 'dataset.json'} is corrupted (no valid count or seed); restore it, "
                             "or delete the folder and generate again")
    try:
        recorded = validate_parameters(recorded, source=str(root / "dataset.json"))
        recorded_split = manifest.get("split_fractions", dict(zip(SPLIT_NAMES, DEFAULT_SPLITS)))
        recorded_fractions = check_split_fractions([recorded_split[name] for name in SPLIT_NAMES])
    except (CellsynthError, TypeError, KeyError) as err:
        raise CellsynthError(f"{err} (corrupted dataset.json?)") from None
    if parameters is not None:
        wanted = _resolve_model(validate_parameters({**parameters, "seed": check_seed(seed)}))
        diffs = differences(recorded, wanted)
        if not np.allclose(recorded_fractions, fractions or DEFAULT_SPLITS, atol=1e-9):
            diffs.append(f"split: {','.join(map(str, recorded_fractions))} -> "
                         f"{','.join(map(str, fractions or DEFAULT_SPLITS))}")
        if diffs:
            raise CellsynthError(f"{root} holds a data set made with other parameters ({'; '.join(diffs[:4])}); "
                                 "use the same parameters to complete it, or choose another --out")
    elif fractions is not None and not np.allclose(recorded_fractions, fractions, atol=1e-9):
        raise CellsynthError(f"{root} holds a data set split {','.join(map(str, recorded_fractions))}; another "
                             "--split would move samples between train, val and test: leave --split out")
    if count is None:
        count = recorded_count
    if isinstance(count, bool) or count < recorded_count:
        raise CellsynthError(f"{root} holds a data set of {recorded_count} samples; --count must be at least that "
                             "(a larger count extends it)")
    from cellsynth import __version__

    if manifest.get("cellsynth_version") != __version__:
        print(f"cellsynth: warning: {root} was made with cellsynth {manifest.get('cellsynth_version')}, this is "
              f"{__version__}; new samples may differ from old ones", file=sys.stderr)
    return recorded, int(count), recorded_fractions


def _resolve_model(parameters: dict[str, Any]) -> dict[str, Any]:
    """Record what the model is: ``default`` becomes the model it stands for now (a shipped
    generator or ``physics``), a checkpoint path becomes absolute (workers may run elsewhere)."""
    from cellsynth.render.registry import KINDS, default_model_name

    model = str(parameters["synthesize"]["model"])
    if model == "default":
        model = default_model_name(parameters["kind"], parameters.get("family"))
    elif model not in ("physics", *KINDS):
        path = Path(model)
        if not path.is_file():
            raise CellsynthError(f"model {model} not found: give physics, default, nuclei, membranes or the path "
                                 "of a generator from `cellsynth train`")
        model = str(path.resolve())
    parameters["synthesize"]["model"] = model
    return parameters


def _run_tasks(root: Path, parameters: dict[str, Any], todo: list[int], count: int, report: RunReport,
               states: dict[int, str], errors: dict[int, str], write_manifest: Callable[[], None], *,
               workers: int | None, scheduler: str | None, timeout: float, progress: bool | None) -> None:
    last_write = time.monotonic()
    bar = progress_bar(total=count, initial=count - len(todo), unit="sample", desc="dataset", progress=progress)
    try:
        t0 = time.perf_counter()
        # no more local workers than samples to make
        workers = min(workers or default_workers(), len(todo)) if scheduler is None else None
        with open(root / "log.jsonl", "a") as log, sample_executor(root, workers, scheduler, timeout) as execute:
            report.startup_s = time.perf_counter() - t0
            start_failures = 0
            for index, result, error in execute(parameters, todo):
                if error is None:
                    states[index] = "done"
                    errors.pop(index, None)
                    report.made.append(index)
                    report.timings[index] = result["timings"]
                    entry = {"sample": sample_name(index), "state": "done", "timings": result["timings"]}
                else:
                    states[index] = "failed"
                    errors[index] = report.failed[index] = error[0]
                    entry = {"sample": sample_name(index), "state": "failed", "error": error[0], "traceback": error[1]}
                log.write(json.dumps(entry) + "\n")
                log.flush()
                bar.update(1)
                start_failures = start_failures + 1 if error is not None and not report.made else 0
                if start_failures >= min(3, len(todo)) and len(todo) > start_failures:
                    bar.write(f"cellsynth: stopping: the first {start_failures} samples failed; the parameters "
                              f"are probably wrong: {error[0]}")
                    break
                if time.monotonic() - last_write > MANIFEST_INTERVAL_S:
                    write_manifest()
                    last_write = time.monotonic()
            finished = time.perf_counter()
        report.shutdown_s = time.perf_counter() - finished
    finally:
        bar.close()
