"""Fully annotated data sets: many simulated samples with their synthetic images.

A data set is a folder::

    DIR/
      dataset.json     parameters, package version, every sample with its seed and state
      splits.csv       name,split (train / val / test)
      README.md        what the data set is, how it was made, how to load it
      log.jsonl        per-sample timings and errors of each run (the one file that is not
                       reproducible byte for byte)
      samples/
        sample_0000/   a sample folder (see :func:`cellsynth.io.write_sample`) with
                       image.tif, or image_alpha{A}.tif per quality level alpha

Every sample is one task with its own seed, spawned from the data set seed with
:class:`numpy.random.SeedSequence` (``SeedSequence(seed, spawn_key=(index,))``), so a
sample's files do not depend on how many workers made it, in which order, or whether the
run was interrupted and resumed. Sample folders are assembled under a temporary name and
renamed when complete; a re-run with the same parameters makes only the missing samples.

Runs are local (in-process, or a :class:`distributed.LocalCluster` of worker processes)
or on an existing ``dask.distributed`` cluster whose workers see the output folder at the
same path (a shared file system).
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import importlib
import inspect
import json
import math
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from cellsynth import io
from cellsynth.errors import CellsynthError

DATASET_FORMAT = "cellsynth-dataset"
DATASET_FORMAT_VERSION = 1
SPLIT_NAMES = ("train", "val", "test")
DEFAULT_SPLITS = (0.8, 0.1, 0.1)
DEFAULT_SCHEDULER_TIMEOUT_S = 10.0
MANIFEST_INTERVAL_S = 5.0
"""Minimum time between two rewrites of dataset.json while samples complete."""

PRESET_KEYS = ("description", "source", "family", "kind", "shape", "voxel_size", "simulate", "synthesize")
SYNTHESIZE_KEYS = ("model", "alpha", "beta", "patch", "overlap", "crop", "blend", "batch_size", "device", "autocast")

_SAMPLE_PREFIX = "sample_"
LOCAL_CLUSTER_CONFIG = {
    # Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, which makes glibc map and unmap
    # every large array: it doubles a sample's CPU time here. Leave it at glibc's default.
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    # Samples take seconds, so the sub-second housekeeping of the scheduler, nannies and
    # workers (event-loop health ticks every 20 ms, memory checks every 100 ms, system
    # monitor every 500 ms, a sampling profiler every 10 ms) only takes CPU from the
    # samples (with two workers, about 8% on top of the samples' CPU time; about 2.5% with these).
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.profile.enabled": False,
}
"""Dask configuration of the local cluster that ``--workers`` starts (not of ``--scheduler``)."""


# --------------------------------------------------------------------------- presets


def preset_names() -> list[str]:
    """Names of the presets shipped in the package (``cellsynth/presets/*.yaml``)."""
    folder = resources.files("cellsynth") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str | os.PathLike) -> dict[str, Any]:
    """Load and validate a preset.

    Parameters
    ----------
    name
        A shipped preset name (see :func:`preset_names`), a path to a YAML preset file, or
        the ``dataset.json`` of an existing data set (its parameters, to make more of the
        same).

    Returns
    -------
    dict
        The preset with the keys ``kind``, ``shape``, ``voxel_size``, ``simulate``,
        ``synthesize`` (and ``description``, ``source``), validated by
        :func:`validate_parameters`.

    Raises
    ------
    CellsynthError
        For an unknown name, an unreadable file, or unknown or invalid keys.
    """
    path = Path(name)
    if path.suffix == ".json":
        manifest = read_manifest(path.parent if path.name == "dataset.json" else path)
        data = {k: v for k, v in manifest["parameters"].items() if k != "seed"}
    elif path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise CellsynthError(f"preset file not found: {path}")
        data = _parse_yaml(path.read_text(), str(path))
    else:
        folder = resources.files("cellsynth") / "presets"
        resource = folder / f"{name}.yaml"
        if not resource.is_file():
            raise CellsynthError(
                f"unknown preset {str(name)!r}; choose one of {', '.join(preset_names())} or give a .yaml file")
        data = _parse_yaml(resource.read_text(), f"preset {name}")
    return validate_parameters(data, source=str(name))


def _parse_yaml(text: str, where: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise CellsynthError(f"cannot parse {where}: {err}") from None
    if not isinstance(data, dict):
        raise CellsynthError(f"{where} must be a mapping of preset keys to values")
    return data


def simulate_keys() -> tuple[str, ...]:
    """The simulation parameter names a preset may set: the keyword arguments of
    :func:`cellsynth.simulate.pipeline.simulate_sample` (``progress`` is a run option)."""
    from cellsynth.simulate.pipeline import simulate_sample

    params = inspect.signature(simulate_sample).parameters.values()
    return tuple(p.name for p in params
                 if p.kind is p.KEYWORD_ONLY and p.name != "progress")


def validate_parameters(data: Mapping[str, Any], source: str = "parameters") -> dict[str, Any]:
    """Check preset or data set parameters and return them in canonical form.

    Shapes become lists of ints, voxel sizes lists of floats, ``synthesize.alpha`` a list
    of distinct positive floats; missing sections become empty mappings.

    Raises
    ------
    CellsynthError
        For unknown keys (at the top level, in ``simulate`` or in ``synthesize``) or
        invalid values.
    """
    data = copy.deepcopy(dict(data))
    unknown = sorted(set(data) - set(PRESET_KEYS) - {"seed"})
    if unknown:
        raise CellsynthError(f"{source}: unknown keys {', '.join(unknown)}; allowed: {', '.join(PRESET_KEYS)}")
    if data.get("kind") not in ("nuclei", "membranes"):
        raise CellsynthError(f"{source}: kind must be nuclei or membranes, got {data.get('kind')!r}")
    family = data.get("family")
    if family is not None and not (isinstance(family, str) and family.isidentifier()):
        raise CellsynthError(f"{source}: family must be a name such as arabidopsis_ovule_nuclei, got {family!r}")
    shape = data.get("shape")
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3
            and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in shape)):
        raise CellsynthError(f"{source}: shape must be three positive integers (z y x), got {shape!r}")
    data["shape"] = [int(s) for s in shape]
    data["voxel_size"] = list(io.check_voxel_size(data.get("voxel_size", (1.0, 1.0, 1.0))))
    for section, allowed in (("simulate", None), ("synthesize", SYNTHESIZE_KEYS)):
        values = data.get(section) or {}
        if not isinstance(values, dict):
            raise CellsynthError(f"{source}: {section} must be a mapping of parameter names to values")
        allowed = allowed or simulate_keys()
        bad = sorted(set(values) - set(allowed))
        if bad:
            raise CellsynthError(
                f"{source}: unknown {section} parameters {', '.join(bad)}; allowed: {', '.join(allowed)}")
        data[section] = dict(values)
    synth = data["synthesize"]
    synth.setdefault("model", "default")
    synth["alpha"] = parse_alphas(synth.get("alpha", [100.0]))
    if "seed" in data:
        data["seed"] = _check_seed(data["seed"])
    # one canonical key order, so that files do not depend on how the parameters were written
    data["simulate"], data["synthesize"] = dict(sorted(data["simulate"].items())), dict(sorted(synth.items()))
    return {k: data[k] for k in (*PRESET_KEYS, "seed") if k in data}


def parse_alphas(value: Any) -> list[float]:
    """Quality levels: a number, a list, or a comma-separated string such as ``"10,100,500"``."""
    items = value.split(",") if isinstance(value, str) else (value if isinstance(value, (list, tuple)) else [value])
    try:
        alphas = [float(a) for a in items]
    except (TypeError, ValueError):
        raise CellsynthError(f"alpha must be positive numbers such as 10,100,500 (µm), got {value!r}") from None
    if not alphas or not all(math.isfinite(a) and a > 0 for a in alphas):
        raise CellsynthError(f"alpha must be positive numbers such as 10,100,500 (µm), got {value!r}")
    if len(set(alphas)) != len(alphas):
        raise CellsynthError(f"alpha values must be distinct, got {value!r}")
    return alphas


def apply_overrides(parameters: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Set dotted keys (``shape``, ``simulate.radius``, ``synthesize.alpha``) and re-validate."""
    data = copy.deepcopy(dict(parameters))
    for key, value in overrides.items():
        parts = key.split(".")
        if len(parts) > 2 or (len(parts) == 2 and parts[0] not in ("simulate", "synthesize")):
            raise CellsynthError(f"cannot set {key!r}: use a top-level key or simulate.NAME / synthesize.NAME")
        target = data
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return validate_parameters(data, source="parameters with overrides")


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise CellsynthError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


# --------------------------------------------------------------------------- seeds and splits


def sample_name(index: int) -> str:
    """Folder name of sample ``index`` (``sample_0000``, ..., wider beyond 9999)."""
    return f"{_SAMPLE_PREFIX}{index:04d}"


def sample_seeds(seed: int, index: int) -> tuple[np.random.SeedSequence, int]:
    """The simulation seed sequence and the synthesis seed of sample ``index``.

    The sample's sequence is ``SeedSequence(seed, spawn_key=(index,))``, i.e. child
    ``index`` of ``SeedSequence(seed).spawn(...)``; its children 0 and 1 seed simulation
    and synthesis. All quality levels of a sample share the synthesis seed, so they differ
    by alpha only.
    """
    simulation = np.random.SeedSequence(seed, spawn_key=(index, 0))
    synthesis = np.random.SeedSequence(seed, spawn_key=(index, 1))
    return simulation, int(synthesis.generate_state(1, np.uint32)[0])


def assign_splits(count: int, fractions: Sequence[float] = DEFAULT_SPLITS) -> list[str]:
    """Assign ``count`` samples to train / val / test with the given fractions.

    Samples are independent draws, so the assignment need not be random. Sample ``i``
    goes to the split furthest below its quota ``(i + 1) * fraction``, which keeps every
    prefix within one sample of the fractions: growing a data set never moves a sample to
    another split.

    Examples
    --------
    >>> assign_splits(10, (0.8, 0.1, 0.1)).count("train")
    8
    """
    fractions = check_split_fractions(fractions)
    taken = [0, 0, 0]
    result = []
    for i in range(count):
        deficits = [(i + 1) * f - t for f, t in zip(fractions, taken)]
        best = int(np.argmax(deficits))
        taken[best] += 1
        result.append(SPLIT_NAMES[best])
    return result


def check_split_fractions(fractions: Any) -> tuple[float, float, float]:
    """Validate train/val/test fractions: three non-negative numbers summing to 1."""
    if isinstance(fractions, str):
        fractions = fractions.split(",")
    try:
        values = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        raise CellsynthError(f"split fractions must be three numbers such as 0.8,0.1,0.1, got {fractions!r}") from None
    if len(values) != 3 or not all(math.isfinite(v) and v >= 0 for v in values) or abs(sum(values) - 1) > 1e-6:
        raise CellsynthError(f"split fractions must be three non-negative numbers summing to 1 "
                             f"(train,val,test such as 0.8,0.1,0.1), got {fractions!r}")
    return values  # type: ignore[return-value]


# --------------------------------------------------------------------------- one sample


def image_name(alpha: float, alphas: Sequence[float]) -> str:
    """Volume name of the image at quality ``alpha``: ``image`` when there is one level,
    else ``image_alpha{alpha}`` (e.g. ``image_alpha10``)."""
    return "image" if len(alphas) == 1 else f"image_alpha{alpha:g}"


def make_sample(out: str | os.PathLike, index: int, parameters: Mapping[str, Any]) -> dict:
    """Simulate, synthesise and write sample ``index`` of a data set (one task).

    Parameters
    ----------
    out
        The data set folder; the sample goes to ``out/samples/sample_NNNN``.
    index
        The sample's index; with ``parameters["seed"]`` it fixes every random draw.
    parameters
        Validated data set parameters (:func:`validate_parameters`) with a ``seed``.

    Returns
    -------
    dict
        ``index``, ``name`` and ``timings`` (wall seconds of simulate, synthesize and write;
        ``cpu``: CPU seconds of this process for the whole sample).
    """
    with one_thread():
        return _make_sample(Path(out), index, parameters)


def _make_sample(out: Path, index: int, parameters: Mapping[str, Any]) -> dict:
    from cellsynth.simulate.pipeline import simulate_sample
    from cellsynth.synthesis import synthesize_image

    kind, shape, voxel = parameters["kind"], tuple(parameters["shape"]), tuple(parameters["voxel_size"])
    synth = dict(parameters["synthesize"])
    alphas = synth.pop("alpha")
    simulation_seed, synthesis_seed = sample_seeds(parameters["seed"], index)
    t0, cpu0 = time.perf_counter(), time.process_time()
    sample = simulate_sample(kind, shape, voxel, np.random.default_rng(simulation_seed), progress=False,
                             **parameters["simulate"])
    t1 = time.perf_counter()
    images = {
        image_name(alpha, alphas): synthesize_image(
            sample.mask, sample.foreground, voxel, kind=kind, alpha=alpha, seed=synthesis_seed, progress=False, **synth)
        for alpha in alphas
    }
    t2 = time.perf_counter()
    metadata = {k: v for k, v in sample.metadata.items() if k != "timings"}  # timings go to log.jsonl
    metadata["dataset"] = {"index": index, "seed": parameters["seed"], "spawn_key": [index],
                           "simulation_spawn_key": [index, 0], "synthesis_seed": synthesis_seed}
    metadata["synthesis"] = {**synth, "alpha": alphas, "seed": synthesis_seed,
                             "images": {f"{a:g}": f"{image_name(a, alphas)}.tif" for a in alphas}}
    sample.metadata, sample.image = metadata, None
    io.write_sample(out / "samples" / sample_name(index), sample, overwrite=True, images=images)
    t3 = time.perf_counter()
    return {"index": index, "name": sample_name(index),
            "timings": {"simulate": t1 - t0, "synthesize": t2 - t1, "write": t3 - t2,
                        "cpu": time.process_time() - cpu0}}


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch and BLAS with one thread, restoring the settings afterwards.

    Torch's results depend on its thread count in the last bits (a generator's output
    differs between 1 and 2 threads), so every sample is made with one thread, whatever
    the machine or worker count; parallelism comes from running samples side by side
    (``--workers``), which also never oversubscribes the cores.
    """
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(previous)


# --------------------------------------------------------------------------- manifest


def read_manifest(root: str | os.PathLike) -> dict[str, Any]:
    """Read and check ``root/dataset.json``.

    Raises
    ------
    CellsynthError
        If it is missing, not valid JSON, or not a cellsynth data set manifest.
    """
    path = Path(root) / "dataset.json"
    if not path.is_file():
        raise CellsynthError(f"{root} is not a cellsynth data set (no dataset.json); "
                             "create one with `cellsynth dataset`")
    manifest = io.read_json(path)
    if manifest.get("format") != DATASET_FORMAT or not isinstance(manifest.get("parameters"), dict) \
            or not isinstance(manifest.get("samples"), list):
        raise CellsynthError(f"{path} is not a valid cellsynth data set manifest (corrupted?); "
                             "restore it, or delete the folder and generate again")
    return manifest


def _manifest(parameters: Mapping[str, Any], count: int, splits: Sequence[str],
              fractions: Sequence[float], states: Mapping[int, str], errors: Mapping[int, str]) -> dict[str, Any]:
    from cellsynth import __version__

    samples = []
    for i in range(count):
        record = {"name": sample_name(i), "index": i, "seed": parameters["seed"], "spawn_key": [i],
                  "split": splits[i], "state": states.get(i, "pending")}
        if i in errors:
            record["error"] = errors[i]
        samples.append(record)
    return {"format": DATASET_FORMAT, "format_version": DATASET_FORMAT_VERSION, "cellsynth_version": __version__,
            "count": count, "split_fractions": dict(zip(SPLIT_NAMES, fractions)),
            "parameters": dict(parameters), "samples": samples}


def _differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    diffs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<unset>"), new.get(key, "<unset>")
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += _differences(a, b, f"{prefix}{key}.")
        elif a != b:  # by value: 3 and 3.0 are the same radius
            diffs.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return diffs


# --------------------------------------------------------------------------- runner


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


def default_workers() -> int:
    """The number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def generate_dataset(
    out: str | os.PathLike,
    parameters: Mapping[str, Any] | None,
    count: int | None,
    *,
    seed: int = 0,
    split_fractions: Sequence[float] = DEFAULT_SPLITS,
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
        train, val, test fractions for ``splits.csv``.
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
    root = Path(out)
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise CellsynthError(f"--workers must be at least 1, got {workers}")
    if workers is not None and scheduler:
        raise CellsynthError("give either --workers (a local cluster) or --scheduler (an existing one), not both")
    fractions = check_split_fractions(split_fractions)
    if resume and not (root / "dataset.json").is_file():
        raise CellsynthError(f"--resume: {root} holds no data set (no dataset.json); drop --resume to create one")
    _refuse_foreign_folder(root)
    _prepare_folder(root)
    with _lock(root):
        _remove_leftovers(root)
        parameters, count = _resolve_run(root, parameters, count, seed)
        splits = assign_splits(count, fractions)
        existing = {i for i in range(count) if (root / "samples" / sample_name(i) / "sample.json").is_file()}
        states = {i: "done" for i in existing}
        errors: dict[int, str] = {}
        report = RunReport(root=root, count=count, skipped=sorted(existing))
        write_manifest = lambda: io.write_json(  # noqa: E731
            root / "dataset.json", _manifest(parameters, count, splits, fractions, states, errors))
        write_manifest()
        io.write_positions(root / "splits.csv", {"name": np.array([sample_name(i) for i in range(count)]),
                                                 "split": np.array(splits)})
        _write_readme(root, parameters, count, fractions)
        todo = [i for i in range(count) if i not in existing]
        if todo:
            _run_tasks(root, parameters, todo, count, report, states, errors, write_manifest,
                       workers=workers, scheduler=scheduler, timeout=scheduler_timeout_s, progress=progress)
        write_manifest()
    report.wall_s = time.perf_counter() - start
    return report


def _refuse_foreign_folder(root: Path) -> None:
    """Refuse a non-empty folder that is not a data set, before writing anything into it."""
    if root.is_file():
        raise CellsynthError(f"{root} is a file; give a folder for --out")
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


@contextlib.contextmanager
def _lock(root: Path) -> Iterator[None]:
    """Hold an exclusive lock on the data set folder (released by the OS on kill -9)."""
    try:
        handle = open(root / ".lock", "a")
    except OSError as err:
        raise CellsynthError(f"cannot write to {root}: {err.strerror or err}; choose a writable --out") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise CellsynthError(f"another `cellsynth dataset` run is writing to {root}; wait for it or "
                                 "choose another --out") from None
        yield


def _remove_leftovers(root: Path) -> None:
    """Delete temporary folders left by a killed run (never a finished sample)."""
    for folder in (root, root / "samples"):
        for entry in folder.iterdir():
            if entry.name.startswith(".") and (entry.name.endswith(".tmp") or ".old-" in entry.name):
                shutil.rmtree(entry, ignore_errors=True)


def _resolve_run(root: Path, parameters: Mapping[str, Any] | None, count: int | None,
                 seed: int) -> tuple[dict[str, Any], int]:
    """Merge the requested run with a data set already in ``root``; refuse a mismatch."""
    has_manifest = (root / "dataset.json").exists()
    if not has_manifest:
        if parameters is None:
            raise CellsynthError("give --preset to create a data set")
        if count is None or isinstance(count, bool) or count < 1:
            raise CellsynthError(f"--count must be a positive number of samples, got {count}")
        return _resolve_model(validate_parameters({**parameters, "seed": _check_seed(seed)})), int(count)
    manifest = read_manifest(root)
    recorded = manifest["parameters"]
    recorded_count = manifest.get("count")
    if not isinstance(recorded_count, int) or recorded_count < 1 or "seed" not in recorded:
        raise CellsynthError(f"{root / 'dataset.json'} is corrupted (no valid count or seed); restore it, "
                             "or delete the folder and generate again")
    try:
        recorded = validate_parameters(recorded, source=str(root / "dataset.json"))
    except CellsynthError as err:
        raise CellsynthError(f"{err} (corrupted dataset.json?)") from None
    if parameters is not None:
        wanted = _resolve_model(validate_parameters({**parameters, "seed": _check_seed(seed)}))
        diffs = _differences(recorded, wanted)
        if diffs:
            raise CellsynthError(f"{root} holds a data set made with other parameters ({'; '.join(diffs[:4])}); "
                                 "use the same parameters to complete it, or choose another --out")
    if count is None:
        count = recorded_count
    if isinstance(count, bool) or count < recorded_count:
        raise CellsynthError(f"{root} holds a data set of {recorded_count} samples; --count must be at least that "
                             "(a larger count extends it)")
    from cellsynth import __version__

    if manifest.get("cellsynth_version") != __version__:
        print(f"cellsynth: warning: {root} was made with cellsynth {manifest.get('cellsynth_version')}, this is "
              f"{__version__}; new samples may differ from old ones", file=sys.stderr)
    return recorded, int(count)


def _resolve_model(parameters: dict[str, Any]) -> dict[str, Any]:
    """Record what the model is: ``default`` becomes the model it stands for now (a shipped
    generator or ``physics``), a checkpoint path becomes absolute (workers may run elsewhere)."""
    from cellsynth.render.registry import KINDS, default_model_name

    model = str(parameters["synthesize"]["model"])
    if model == "default":
        model = default_model_name(parameters["kind"])
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
    from tqdm.auto import tqdm

    last_write = time.monotonic()
    bar = tqdm(total=count, initial=count - len(todo), unit="sample", desc="dataset", disable=None
               if progress is None else not progress)
    try:
        t0 = time.perf_counter()
        # no more local workers than samples to make
        workers = min(workers or default_workers(), len(todo)) if scheduler is None else None
        with open(root / "log.jsonl", "a") as log, _executor(root, workers, scheduler, timeout) as execute:
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


ExecuteFn = Callable[[dict, list], Iterator[tuple[int, dict | None, tuple[str, str] | None]]]


@contextlib.contextmanager
def _executor(root: Path, workers: int | None, scheduler: str | None, timeout: float) -> Iterator[ExecuteFn]:
    """Yield a function that runs the samples and yields ``(index, result, error)`` as they
    finish: in this process (one local worker), on a new local cluster or on ``scheduler``."""
    if scheduler is None and workers == 1:
        yield lambda parameters, todo: _run_in_process(root, parameters, todo)
        return
    with _dask_client(workers or 1, scheduler, timeout) as client:
        yield lambda parameters, todo: _run_on_dask(client, root, parameters, todo)


def _run_in_process(root: Path, parameters: dict, todo: list[int]):
    for index in todo:
        try:
            yield index, make_sample(root, index, parameters), None
        except Exception as err:  # a sample's failure must not stop the others
            yield index, None, (_describe(err), traceback.format_exc())


def _describe(err: BaseException) -> str:
    return str(err) if isinstance(err, CellsynthError) else f"{type(err).__name__}: {err}"


@contextlib.contextmanager
def _dask_client(workers: int, scheduler: str | None, timeout: float):
    """A ``distributed.Client`` on a new local cluster of one-thread worker processes, or
    on an existing scheduler."""
    import logging

    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as err:
            raise CellsynthError(f"cannot reach the Dask scheduler at {scheduler} within {timeout:g} s ({err}); "
                                 "check the address (tcp://HOST:8786) and that the scheduler runs") from None
        with client:
            _prepare_workers(client)
            yield client
        return
    # Dask starts workers with OMP/MKL/OPENBLAS_NUM_THREADS=1 (good); see LOCAL_CLUSTER_CONFIG for the rest
    with dask.config.set(LOCAL_CLUSTER_CONFIG), \
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                         silence_logs=logging.ERROR) as cluster, Client(cluster, set_as_default=False) as client:
        _prepare_workers(client)
        yield client


def _prepare_workers(client: Any) -> None:
    """Import what a sample needs (:data:`STAGE_MODULES`) on every worker now: a worker without
    cellsynth or a dependency fails here with a clear message, and the import time counts as
    start-up rather than as the first sample's time."""
    try:
        client.run(_import_stages)
    except Exception as err:  # whatever the worker raised (ImportError, a version clash, ...)
        raise CellsynthError(f"the Dask workers cannot import cellsynth ({type(err).__name__}: {err}); install "
                             "the same cellsynth version on every worker") from None


STAGE_MODULES = (
    "cellsynth.simulate.pipeline", "cellsynth.simulate.organism", "cellsynth.simulate.positions",
    "cellsynth.simulate.nuclei", "cellsynth.simulate.membranes", "cellsynth.simulate.annotations",
    "cellsynth.synthesis", "cellsynth.tiling", "cellsynth.render.registry", "cellsynth.render.physics",
    "cellsynth.render.gan", "cellsynth.gan.networks", "cellsynth.gan.train",
    "tifffile", "threadpoolctl", "torch",
)
"""The modules that making a sample imports (most of them lazily, on first use)."""


def _import_stages() -> None:
    for name in STAGE_MODULES:
        importlib.import_module(name)


def _run_on_dask(client: Any, root: Path, parameters: dict, todo: list[int]):
    from distributed import as_completed

    futures = {client.submit(_dask_task, str(root.resolve()), index, parameters, pure=False, retries=0,
                             key=f"cellsynth-{sample_name(index)}-{os.getpid()}-{time.time_ns()}"): index
               for index in todo}
    try:
        for future in as_completed(futures, loop=client.loop):
            index = futures[future]
            if future.status == "finished":
                yield index, future.result(), None
            else:
                err = future.exception()
                tb = "".join(traceback.format_tb(future.traceback())) if future.traceback() else ""
                yield index, None, (_describe(err), tb)
    finally:  # stop what is left after an early stop or an interrupt
        for future in futures:
            if not future.done():
                future.cancel()


def _dask_task(root: str, index: int, parameters: dict) -> dict:
    """One sample on a Dask worker."""
    if not Path(root).is_dir():
        raise CellsynthError(f"the data set folder {root} is not visible on this worker; put it on a file system "
                             "that every worker mounts at the same path")
    return make_sample(root, index, parameters)


# --------------------------------------------------------------------------- README of a data set


def _write_readme(root: Path, parameters: Mapping[str, Any], count: int, fractions: Sequence[float]) -> None:
    from cellsynth import __version__

    kind, voxel = parameters["kind"], parameters["voxel_size"]
    alphas = parameters["synthesize"]["alpha"]
    images = ", ".join(f"`{image_name(a, alphas)}.tif` (alpha = {a:g} µm)" for a in alphas)
    params_json = json.dumps(io._jsonable(parameters), indent=2)
    description = parameters.get("description", "").strip().rstrip(".")
    other = f"; `ds.image(0, alpha={alphas[-1]:g})` for another level" if len(alphas) > 1 else ""
    text = f"""# Synthetic 3D fluorescence microscopy data set ({kind})

{count} fully annotated synthetic volumes made by cellsynth {__version__}: simulated {kind} masks
and synthetic microscope images that fit them voxel for voxel (Eschweiler et al., PLoS ONE 16(12):
e0260509, 2021).{f" {description}." if description else ""}

- Volumes are (Z, Y, X) = {tuple(parameters['shape'])} voxels of {tuple(voxel)} µm (z, y, x).
- Images: {images}, made by the `{parameters['synthesize']['model']}` model. Alpha is the
  positional-conditioning length of Eq. 1: smaller alpha means stronger intensity decay with
  depth (poorer quality). Images are uint16 (0-65535 stands for 0-1).

## Files

- `samples/sample_NNNN/`: `labels.tif` (instance labels, uint16, 0 = background), `mask.tif` (the
  structure the generator saw: {kind}, 0/1), `foreground.tif` (the organism, 0/1), `positions.csv`
  (one row per cell), the image(s), and `sample.json` (all parameters and seeds).
- `splits.csv`: train / val / test assignment ({', '.join(f'{n} {f:g}' for n, f in zip(SPLIT_NAMES, fractions))}).
- `dataset.json`: the parameters below, the package version, each sample's seed and state.
- `log.jsonl`: timings and errors of the runs that made the data set.

## How it was made

Sample `i` was simulated from the numpy seed `SeedSequence({parameters['seed']}, spawn_key=(i, 0))`
and synthesised with the seed `synthesis_seed` recorded in its `sample.json` (drawn from
`spawn_key=(i, 1)`). With the same cellsynth version, this command makes the same files byte
for byte (except `log.jsonl`), whatever the number of workers:

```bash
cellsynth dataset --preset THIS_FOLDER/dataset.json --count {count} --seed {parameters['seed']} --out COPY
```

Parameters:

```json
{params_json}
```

## How to load it

- Fiji: File > Open any `.tif`; it is an ImageJ hyperstack with the voxel size in µm
  (Image > Properties).
- napari, with the scale:

```python
import napari, cellsynth
ds = cellsynth.load_dataset("THIS_FOLDER")
viewer = napari.Viewer()
viewer.add_image(ds.image(0), scale=ds.voxel_size)
viewer.add_labels(ds[0].labels, scale=ds.voxel_size)
```

- Python and PyTorch:

```python
import cellsynth
ds = cellsynth.load_dataset("THIS_FOLDER")
sample = ds[0]                      # labels, mask, foreground, voxel_size, positions, metadata
image = ds.image(0)                 # float32 in [0, 1]{other}
train = ds.split("train")
patches = train.patches((32, 64, 64))   # a PyTorch Dataset of random (image, labels) patches
```
"""
    with io.atomic_path(root / "README.md") as tmp:
        tmp.write_text(text)


# --------------------------------------------------------------------------- loading


class SyntheticDataset:
    """A generated data set on disk; samples are read when accessed.

    Use :func:`load_dataset` to open one. ``ds[i]`` is an :class:`cellsynth.io.Sample`
    (labels, mask, foreground, voxel size, positions, metadata; ``image`` is the image when
    the data set has one quality level). ``ds.image(i, alpha)`` gives any quality level.

    Attributes
    ----------
    root
        The data set folder.
    parameters
        The resolved generation parameters (kind, shape, voxel_size, simulate, synthesize, seed).
    names
        The finished samples in this view, e.g. ``["sample_0000", ...]``.
    """

    def __init__(self, root: Path, manifest: Mapping[str, Any], names: Sequence[str]):
        self.root = root
        self.manifest = dict(manifest)
        self.parameters = self.manifest["parameters"]
        self.names = list(names)

    @property
    def kind(self) -> str:
        """``nuclei`` or ``membranes``."""
        return self.parameters["kind"]

    @property
    def voxel_size(self) -> io.VoxelSize:
        """Voxel size in µm (z, y, x), the same for every sample."""
        return tuple(self.parameters["voxel_size"])  # type: ignore[return-value]

    @property
    def alphas(self) -> list[float]:
        """The quality levels (alpha, µm) of the images."""
        return list(self.parameters["synthesize"]["alpha"])

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> io.Sample:
        return io.read_sample(self.root / "samples" / self.names[i])

    def __iter__(self) -> Iterator[io.Sample]:
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        return f"SyntheticDataset({str(self.root)!r}, {len(self)} {self.kind} samples, voxel size {self.voxel_size} µm)"

    def path(self, i: int, volume: str = "labels") -> Path:
        """File of ``volume`` (labels, mask, foreground, image, image_alpha10, ...) of sample ``i``."""
        return self.root / "samples" / self.names[i] / io.volume_filename(volume, "tif")

    def image(self, i: int, alpha: float | None = None) -> np.ndarray:
        """The image of sample ``i`` at quality ``alpha`` (default: the first level), float32 in [0, 1]."""
        alpha = self.alphas[0] if alpha is None else float(alpha)
        if alpha not in self.alphas:
            raise CellsynthError(f"this data set has images for alpha {', '.join(f'{a:g}' for a in self.alphas)}, "
                                 f"not {alpha:g}")
        array, _ = io.read_volume(self.path(i, image_name(alpha, self.alphas)))
        return array.astype(np.float32) / 65535.0

    def split(self, name: str) -> SyntheticDataset:
        """The samples of split ``name`` (train, val or test) as in ``splits.csv``."""
        if name not in SPLIT_NAMES:
            raise CellsynthError(f"unknown split {name!r}; use one of {', '.join(SPLIT_NAMES)}")
        table = io.read_positions(self.root / "splits.csv")
        chosen = {n for n, s in zip(table["name"].tolist(), table["split"].tolist()) if s == name}
        return SyntheticDataset(self.root, self.manifest, [n for n in self.names if n in chosen])

    def patches(self, patch: Sequence[int], *, alpha: float | None = None, length: int | None = None,
                seed: int = 0) -> PatchDataset:
        """A PyTorch ``Dataset`` of random (image, labels) patches; see :class:`PatchDataset`."""
        return PatchDataset(self, patch, alpha=alpha, length=length, seed=seed)


def load_dataset(root: str | os.PathLike) -> SyntheticDataset:
    """Open a data set made by ``cellsynth dataset``.

    Parameters
    ----------
    root
        The data set folder (holding ``dataset.json``).

    Returns
    -------
    SyntheticDataset
        The finished samples, read lazily: ``ds[i]`` is an :class:`cellsynth.io.Sample`,
        ``ds.image(i, alpha)`` an image, ``ds.split("train")`` a subset and
        ``ds.patches((32, 64, 64))`` a PyTorch ``Dataset`` of random patches.

    Examples
    --------
    >>> ds = load_dataset("demo")                                  # doctest: +SKIP
    >>> sample = ds[0]; sample.labels.shape, sample.voxel_size      # doctest: +SKIP
    """
    root = Path(root)
    manifest = read_manifest(root)
    names = [s["name"] for s in manifest["samples"]
             if isinstance(s, dict) and (root / "samples" / str(s.get("name")) / "sample.json").is_file()]
    return SyntheticDataset(root, manifest, names)


class PatchDataset:
    """Random (image, labels) patches of a data set, as a map-style PyTorch ``Dataset``.

    Item ``k`` is a patch of sample ``k % len(dataset)`` at a random corner drawn from
    ``SeedSequence(seed, spawn_key=(epoch, k))``: reproducible, and different in each
    epoch after :meth:`set_epoch`. Volumes are memory-mapped, so DataLoader workers share
    the page cache instead of copying volumes. Works with ``torch.utils.data.DataLoader``.

    Parameters
    ----------
    dataset
        The samples to draw from.
    patch
        Patch size (z, y, x) in voxels, at most the volume shape.
    alpha
        Quality level of the images (default: the first).
    length
        Items per epoch (default: one patch per sample, as in the paper).
    seed
        Seed of the patch positions.

    Returns (per item)
    ------------------
    image : torch.Tensor
        float32 (1, z, y, x) in [0, 1].
    labels : torch.Tensor
        int64 (z, y, x) instance labels.
    """

    def __init__(self, dataset: SyntheticDataset, patch: Sequence[int], *, alpha: float | None = None,
                 length: int | None = None, seed: int = 0):
        if len(dataset) == 0:
            raise CellsynthError(f"{dataset.root} has no finished samples to draw patches from")
        self.patch = tuple(int(p) for p in patch)
        shape = tuple(dataset.parameters["shape"])
        if len(self.patch) != 3 or not all(0 < p <= s for p, s in zip(self.patch, shape)):
            raise CellsynthError(f"patch must be three sizes between 1 and the volume shape {shape}, "
                                 f"got {tuple(patch)}")
        alpha = dataset.alphas[0] if alpha is None else float(alpha)
        if alpha not in dataset.alphas:
            raise CellsynthError(f"this data set has images for alpha {', '.join(f'{a:g}' for a in dataset.alphas)}, "
                                 f"not {alpha:g}")
        self.dataset = dataset
        self.volume = image_name(alpha, dataset.alphas)
        self.length = len(dataset) if length is None else int(length)
        self.seed = seed
        self.epoch = 0
        self.shape = shape

    def set_epoch(self, epoch: int) -> None:
        """Draw other patch positions (call once per epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, k: int) -> tuple[Any, Any]:
        import tifffile
        import torch

        if not 0 <= k < self.length:
            raise IndexError(k)
        i = k % len(self.dataset)
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(self.epoch, k)))
        corner = [int(rng.integers(0, s - p + 1)) for s, p in zip(self.shape, self.patch)]
        window = tuple(slice(c, c + p) for c, p in zip(corner, self.patch))
        image = tifffile.memmap(self.dataset.path(i, self.volume), mode="r")[window]
        labels = tifffile.memmap(self.dataset.path(i, "labels"), mode="r")[window]
        return (torch.from_numpy(image.astype(np.float32) / 65535.0)[None],
                torch.from_numpy(labels.astype(np.int64)))
