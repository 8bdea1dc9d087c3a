"""Where a data set's samples are made: in this process, on a local Dask cluster of worker
processes, or on an existing ``dask.distributed`` cluster whose workers see the output
folder at the same path (a shared file system)."""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cellsynth.dataset.sample import make_sample
from cellsynth.dataset.seeds import sample_name
from cellsynth.errors import CellsynthError

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

STAGE_MODULES = (
    "cellsynth.simulate.pipeline", "cellsynth.simulate.organism", "cellsynth.simulate.positions",
    "cellsynth.simulate.nuclei", "cellsynth.simulate.membranes", "cellsynth.simulate.annotations",
    "cellsynth.synthesis", "cellsynth.tiling", "cellsynth.render.registry", "cellsynth.render.physics",
    "cellsynth.render.renderer_file",
    "cellsynth.render.gan", "cellsynth.gan.networks", "cellsynth.gan.checkpoints",
    "tifffile", "threadpoolctl", "torch",
)
"""The modules that making a sample imports (most of them lazily, on first use)."""

ExecuteFn = Callable[[dict, list], Iterator[tuple[int, dict | None, tuple[str, str] | None]]]


def default_workers() -> int:
    """The number of cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def sample_executor(root: Path, workers: int | None, scheduler: str | None, timeout: float) -> Iterator[ExecuteFn]:
    """Yield a function that runs the samples and yields ``(index, result, error)`` as they
    finish: in this process (one local worker), on a new local cluster or on ``scheduler``."""
    if scheduler is None and workers == 1:
        yield lambda parameters, todo: _run_in_process(root, parameters, todo)
        return
    with _dask_client(workers or 1, scheduler, timeout, root / SCRATCH_NAME) as client:
        yield lambda parameters, todo: _run_on_dask(client, root, parameters, todo)


def _run_in_process(root: Path, parameters: dict, todo: list[int]):
    for index in todo:
        try:
            yield index, make_sample(root, index, parameters), None
        except Exception as err:  # a sample's failure must not stop the others
            yield index, None, (describe_error(err), traceback.format_exc())


def describe_error(err: BaseException) -> str:
    return str(err) if isinstance(err, CellsynthError) else f"{type(err).__name__}: {err}"


SCRATCH_NAME = ".dask-scratch.tmp"
"""Where the workers of a local cluster keep their scratch files: inside the data set folder
(hidden, removed when the cluster closes, and as a leftover by the next run)."""


@contextlib.contextmanager
def _dask_client(workers: int, scheduler: str | None, timeout: float, scratch: Path):
    """A ``distributed.Client`` on a new local cluster of one-thread worker processes, or
    on an existing scheduler.

    The local cluster serves no dashboard: the scheduler's HTTP endpoint, which Dask always
    starts, listens on a free port of 127.0.0.1 only (not on 8787), and the workers' scratch
    space is ``scratch`` (not the system's temporary folder)."""
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
    try:
        with dask.config.set(LOCAL_CLUSTER_CONFIG), \
                LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                             scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                             local_directory=str(scratch), silence_logs=logging.ERROR) as cluster, \
                Client(cluster, set_as_default=False) as client:
            _prepare_workers(client)
            yield client
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _prepare_workers(client: Any) -> None:
    """Import what a sample needs (:data:`STAGE_MODULES`) on every worker now: a worker without
    cellsynth or a dependency fails here with a clear message, and the import time counts as
    start-up rather than as the first sample's time."""
    try:
        client.run(_import_stages)
    except Exception as err:  # whatever the worker raised (ImportError, a version clash, ...)
        raise CellsynthError(f"the Dask workers cannot import cellsynth ({type(err).__name__}: {err}); install "
                             "the same cellsynth version on every worker") from None


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
                yield index, None, (describe_error(err), tb)
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
