"""The realism benchmark where users meet the models: simulated preset samples against the
real volumes of the preset's family.

:func:`render_preset` simulates samples exactly as ``cellsynth dataset`` makes them (the
same seeds) and renders each with every model asked for; :func:`benchmark_preset` scores
the sets with :func:`cellsynth.evaluate.realism.realism_benchmark`. :func:`choose_default` turns the scores
into the default model of a family (``models/defaults.json``, ``scripts/choose_defaults.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cellsynth.errors import CellsynthError
from cellsynth.evaluate.realism import FLOOR, RealismVolume, realism_benchmark, realism_volume

UNCALIBRATED = "physics (defaults)"
"""Model name of the physics renderer with its built-in defaults, ignoring the preset's renderer."""

MEASURES = ("histogram_w1", "spectrum", "kid", "cnr_error")
"""The four measures a default must win on: lower is better for each (``cnr_error`` is
``|log(CNR / real CNR)|``)."""


def render_preset(preset: Mapping[str, Any], models: Sequence[str], *, count: int = 4, seed: int = 0,
                  progress: bool | None = None) -> dict[str, list[RealismVolume]]:
    """Simulate ``count`` samples of a preset and render each with every model.

    Parameters
    ----------
    preset
        A validated preset (:func:`cellsynth.dataset.load_preset`).
    models
        Model names: ``"physics"`` (with the preset's ``renderer``), :data:`UNCALIBRATED`
        (physics with its defaults), ``"default"``, shipped generator names or checkpoint
        paths.
    count
        Samples per model (the same masks for every model).
    seed
        The data set seed (sample ``i`` is sample ``i`` of ``cellsynth dataset --seed seed``).

    Returns
    -------
    dict
        ``{model: volumes}`` with the simulated mask as structure and the rest of the
        organism as outside (:func:`cellsynth.evaluate.realism.realism_volume`).
    """
    from cellsynth.dataset import one_thread, sample_seeds
    from cellsynth.dataset.presets import simulate_arguments
    from cellsynth.progress import progress_bar
    from cellsynth.simulate.pipeline import simulate_sample
    from cellsynth.synthesis import synthesize_image

    if count < 1:
        raise CellsynthError(f"count must be at least 1, got {count}")
    kind, shape, voxel = preset["kind"], tuple(preset["shape"]), tuple(preset["voxel_size"])
    synth = {k: v for k, v in preset["synthesize"].items() if k not in ("model", "alpha")}
    alpha = preset["synthesize"]["alpha"][0]
    sets: dict[str, list[RealismVolume]] = {m: [] for m in models}
    for index in progress_bar(range(count), progress=progress, desc="simulating and rendering"):
        simulation_seed, synthesis_seed = sample_seeds(seed, index)
        with one_thread():
            sample = simulate_sample(kind, shape, voxel, np.random.default_rng(simulation_seed), progress=False,
                                     **simulate_arguments(preset["simulate"]))
            for model in models:
                name = "physics" if model == UNCALIBRATED else model
                renderer = None if model == UNCALIBRATED else preset.get("renderer")
                image = synthesize_image(sample.mask, sample.foreground, voxel, model=name, kind=kind, alpha=alpha,
                                         seed=synthesis_seed, progress=False, renderer=renderer,
                                         family=preset.get("family"), **synth)
                sets[model].append(realism_volume(image, voxel, mask=sample.mask, foreground=sample.foreground,
                                                  name=f"{model} {index}"))
    return sets


def benchmark_preset(preset: Mapping[str, Any], real: Sequence[RealismVolume], models: Sequence[str], *,
                     count: int = 4, seed: int = 0, progress: bool | None = None) -> dict[str, Any]:
    """:func:`render_preset`, then the unpaired benchmark of every model's set against ``real``
    (the real volumes of the preset's family, with labels for the CNR).

    Returns
    -------
    dict
        The result of :func:`cellsynth.evaluate.realism.realism_benchmark` without its curves.
    """
    result = realism_benchmark(render_preset(preset, models, count=count, seed=seed, progress=progress), real,
                               progress=False)
    result.pop("curves")
    return result


def _errors(row: Mapping[str, Any]) -> dict[str, float]:
    ratio = row.get("cnr_ratio")
    return {"histogram_w1": row["histogram_w1"], "spectrum": row["spectrum"], "kid": row["kid"],
            "cnr_error": abs(float(np.log(ratio))) if ratio and ratio > 0 else float("inf")}


def choose_default(rows: Mapping[str, Mapping[str, Any]], candidates: Sequence[str]) -> str:
    """The default among ``candidates``: the one that beats every other on at least three of
    the four :data:`MEASURES`; where none does, the one with most such wins, and ``physics``
    (the simpler model) on a tie.

    Examples
    --------
    >>> rows = {"physics": {"histogram_w1": 0.1, "spectrum": 0.5, "kid": 9.0, "cnr_ratio": 1.1},
    ...         "gen": {"histogram_w1": 0.05, "spectrum": 0.2, "kid": 3.0, "cnr_ratio": 0.2}}
    >>> choose_default(rows, ["physics", "gen"])
    'gen'
    """
    candidates = [c for c in candidates if c in rows and c != FLOOR]
    if not candidates:
        raise CellsynthError("no candidate model has benchmark scores")
    errors = {c: _errors(rows[c]) for c in candidates}

    def beats(a: str, b: str) -> bool:
        return sum(errors[a][m] < errors[b][m] for m in MEASURES) >= 3

    wins = {a: sum(beats(a, b) for b in candidates if b != a) for a in candidates}
    best = max(wins.values())
    leaders = [c for c in candidates if wins[c] == best]
    return "physics" if "physics" in leaders and len(leaders) > 1 else leaders[0]
