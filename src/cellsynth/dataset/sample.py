"""One sample of a data set: simulate, synthesise every quality level, write (one task)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cellsynth import io
from cellsynth.dataset.presets import simulate_arguments
from cellsynth.dataset.seeds import sample_name, sample_seeds


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
                             **simulate_arguments(parameters["simulate"]))
    t1 = time.perf_counter()
    images = {
        image_name(alpha, alphas): synthesize_image(
            sample.mask, sample.foreground, voxel, kind=kind, alpha=alpha, seed=synthesis_seed, progress=False,
            renderer=parameters.get("renderer"), family=parameters.get("family"), **synth)
        for alpha in alphas
    }
    t2 = time.perf_counter()
    metadata = {k: v for k, v in sample.metadata.items() if k != "timings"}  # timings go to log.jsonl
    metadata["dataset"] = {"index": index, "seed": parameters["seed"], "spawn_key": [index],
                           "simulation_spawn_key": [index, 0], "synthesis_seed": synthesis_seed}
    if parameters.get("family"):
        metadata["family"] = parameters["family"]
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
