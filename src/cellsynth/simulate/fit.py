"""Fit a preset's tissue parameters to the statistics of real labels.

Each fitted simulation parameter drives one tissue statistic (:data:`MEMBRANE_TARGETS`,
:data:`NUCLEI_TARGETS`): the cell size sets the mean cell volume (or the number of cells
in a crop), the weight spread their volume CV, the elongation their median elongation,
and so on. The map from parameters to statistics has no closed form, so the fit simulates:
starting from the preset's values, each round simulates a few volumes (the same seeds
every round), measures them like the real labels, and moves every parameter towards its
target by a Newton step with a fixed slope (measured around typical values), in log or
linear space, at most ``max_step`` per round. The rounds' statistics are noisy (a few
simulated volumes each), so the fitted values are the mean of the parameters of the second
half of the rounds (in each parameter's space), as in averaged stochastic approximation
(Polyak and Juditsky 1992). Its figures are then re-measured on fresh seeds, so that the reported fit
is not the luck of the seeds it was selected on.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cellsynth.errors import CellsynthError
from cellsynth.evaluate.tissue import (
    STATISTICS,
    Comparison,
    TissueCells,
    compare_tables,
    matched_extent,
    measure_volumes,
    orientation,
    summarize,
)
from cellsynth.io import VoxelSize, check_voxel_size


@dataclass(frozen=True)
class Target:
    """A simulation parameter and the statistic it is fitted to.

    ``slope`` is d statistic / d parameter, each in its space (``"log"`` or ``"linear"``),
    measured around typical values; ``bounds`` limit the parameter and ``max_step`` one
    round's change of it (in its space).
    """

    parameter: str
    statistic: str
    parameter_space: str
    statistic_space: str
    slope: float
    bounds: tuple[float, float]
    max_step: float = 0.3


MEMBRANE_TARGETS = (
    Target("cell_size_um", "volume_mean_um3", "log", "log", 3.0, (0.1, 1e4), 0.2),
    Target("weight_spread", "volume_cv", "linear", "linear", 1.5, (0.0, 0.9), 0.1),
    Target("elongation", "elongation_median", "log", "log", 0.8, (1.0, 8.0)),
    Target("flatness", "flatness_median", "linear", "log", 0.6, (0.0, 1.0), 0.2),
    Target("orientation_coherence_um", "neighbour_alignment", "log", "linear", 0.2, (0.1, 1e3), 0.5),
    Target("stretch.z", "chord_ratio_z", "log", "log", 0.8, (0.2, 5.0), 0.2),
    Target("stretch.y", "chord_ratio_y", "log", "log", 0.8, (0.2, 5.0), 0.2),
    Target("orientation_bias.z", "long_axis_z", "log", "log", 0.5, (0.05, 20.0), 0.3),
    Target("orientation_bias.y", "long_axis_y", "log", "log", 0.5, (0.05, 20.0), 0.3),
)
"""Membranes (``packing: cells``): the volume and shape of whole cells, the tissue's stretch and
the bias of the long axes (``stretch.z``, ``stretch.y``, ``orientation_bias.z``,
``orientation_bias.y``: the first two factors of each; x stays 1)."""

MEMBRANE_CROP_TARGETS = (
    Target("cell_size_um", "cells", "log", "log", -2.5, (0.1, 1e4), 0.2),
    Target("weight_spread", "volume_cv_all", "linear", "linear", 3.0, (0.0, 0.9), 0.1),
    Target("elongation", "elongation_median_all", "log", "log", 0.6, (1.0, 8.0)),
    Target("flatness", "flatness_median_all", "linear", "log", 0.5, (0.0, 1.0), 0.2),
    Target("orientation_coherence_um", "neighbour_alignment_all", "log", "linear", 0.2, (0.1, 1e3), 0.5),
    Target("stretch.z", "chord_ratio_z", "log", "log", 0.8, (0.2, 5.0), 0.2),
    Target("stretch.y", "chord_ratio_y", "log", "log", 0.8, (0.2, 5.0), 0.2),
)
"""Membranes fitted where the real volume holds too few whole cells: crop-matched statistics
(the long axes of cut cells follow the crop's shape, so the orientation bias is not fitted)."""

MEMBRANE_BOTH_TARGETS = (
    *(t for t in MEMBRANE_TARGETS if t.parameter in ("cell_size_um", "orientation_bias.z", "orientation_bias.y")),
    *(t for t in MEMBRANE_CROP_TARGETS if t.parameter != "cell_size_um"),
)
"""Membranes fitted to both: the mean volume and the long axes' orientation of whole cells
(unbiased by any crop), and the shape, size spread, alignment and chords of the cells as cut
by crops of the size the preset is compared in. The cut pieces' shapes then match those of
the real crops even where the model's whole cells cannot match both at once (the whole
cells' volume CV and elongation are no longer targets)."""

NUCLEI_TARGETS = (
    Target("radius_um", "radius_mean_um", "log", "log", 1.0, (0.05, 1e3), 0.2),
    Target("radius_std_um", "radius_std_um", "linear", "linear", 1.0, (0.0, 1e3), 0.2),
    Target("elongation", "elongation_median", "log", "log", 0.8, (1.0, 8.0)),
    Target("smoothness", "sphericity_median", "log", "linear", 0.15, (1.5, 50.0), 0.5),
    Target("count", "cells", "log", "log", 1.0, (1, 1e6), 0.3),
    Target("cell_size_um", "nn_distance_median_um", "log", "log", 0.5, (0.1, 1e4), 0.2),
)
"""Nuclei fitted to interior nuclei (size, shape) and crop-matched counts and spacing."""

MIN_INTERIOR_CELLS = 30
"""Membranes are fitted to interior-cell statistics where the real labels hold at least this many."""

ALIGNED_ORDER = 0.5
"""Where the real long axes are at least this ordered, every cell gets their main direction."""


@dataclass
class TissueFit:
    """The outcome of :func:`fit_tissue`."""

    kind: str
    parameters: dict[str, Any]
    targets: list[Target]
    comparisons: dict[str, Comparison]
    by_crop: dict[str, bool]
    history: list[dict[str, Any]] = field(default_factory=list)

    def comparison_of(self, statistic: str) -> Comparison:
        """The comparison (whole volumes or crops) a target statistic was fitted in."""
        return self.comparisons["crops" if self.by_crop.get(statistic, False) else "whole"]

    def report(self, name: Callable[[str], str] = str) -> str:
        """Fitted values and, per target, the real and the re-measured simulated statistic;
        ``name`` turns a parameter name into the one to print (e.g. a preset's key)."""
        lines = ["fitted parameters:"]
        lines += [f"  {name(k)}: {_plain(v)}" for k, v in self.parameters.items()]
        lines.append("targets (real, simulated on fresh seeds, difference):")
        for t in self.targets:
            c = self.comparison_of(t.statistic)
            r, s, d = c.real[t.statistic], c.simulated[t.statistic], c.relative_difference[t.statistic]
            where = "crops" if self.by_crop[t.statistic] else "whole volumes"
            parameter = ".".join([name(t.parameter.split(".")[0]), *t.parameter.split(".")[1:]])
            lines.append(f"  {t.statistic:<24} {r:>9.4g} {s:>9.4g} {100 * d:+7.1f} %   <- {parameter} ({where})")
        return "\n".join(lines)


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


FIT_STATISTICS = ("auto", "whole", "crops", "both")
"""What membranes are fitted to: whole cells where the labels hold enough (auto), always one
kind, or both (:data:`MEMBRANE_BOTH_TARGETS`)."""


def choose_targets(kind: str, real: Sequence[TissueCells], statistics: str = "auto") -> list[Target]:
    """The targets for ``kind`` given the real tables: for membranes, the shape of whole
    cells where the labels hold at least :data:`MIN_INTERIOR_CELLS` of them (or with
    ``statistics="whole"``), else that of the cells as cut by crops; with
    ``statistics="both"`` the mean volume and orientation of whole cells and the shape of
    cut ones (:data:`MEMBRANE_BOTH_TARGETS`). The orientation targets are left out where the
    real cells are aligned."""
    if statistics not in FIT_STATISTICS:
        raise CellsynthError(f"fit statistics must be one of {', '.join(FIT_STATISTICS)}, got {statistics!r}")
    if kind == "nuclei":
        return list(NUCLEI_TARGETS)
    stats = summarize(real)
    interior = sum(int(np.count_nonzero(t.columns["interior"])) for t in real)
    if statistics == "both":
        targets = MEMBRANE_BOTH_TARGETS
    else:
        whole = interior >= MIN_INTERIOR_CELLS if statistics == "auto" else statistics == "whole"
        targets = MEMBRANE_TARGETS if whole else MEMBRANE_CROP_TARGETS
    aligned = np.isfinite(stats["orientation_order"]) and stats["orientation_order"] >= ALIGNED_ORDER
    return [t for t in targets if not (aligned and t.parameter.startswith("orientation_"))]


def _initial(target: Target, parameters: Mapping[str, Any], kind: str) -> float:
    from cellsynth.simulate import membranes, pipeline

    radius = float(parameters.get("radius_um", pipeline.DEFAULT_RADIUS_UM))
    defaults = {"cell_size_um": (pipeline.NUCLEUS_CELL_SIZE_FACTOR * radius if kind == "nuclei"
                                 else pipeline.DEFAULT_MEMBRANE_CELL_SIZE_UM),
                "weight_spread": membranes.DEFAULT_WEIGHT_SPREAD, "elongation": 1.0, "flatness": 0.5,
                "radius_um": pipeline.DEFAULT_RADIUS_UM, "radius_std_um": pipeline.DEFAULT_RADIUS_STD_UM,
                "smoothness": pipeline.DEFAULT_SMOOTHNESS, "count": 50}
    if "." in target.parameter:  # a component of a (z, y, x) factor vector, relative to x
        name, axis = target.parameter.split(".")
        factors = parameters.get(name) or [1.0, 1.0, 1.0]
        return float(factors["zyx".index(axis)] / factors[2])
    value = parameters.get(target.parameter)
    if target.parameter == "orientation_coherence_um" and not value:
        value = 0.5 * float(parameters.get("cell_size_um", defaults["cell_size_um"]))  # patches of a cell or so
    return float(defaults[target.parameter] if value is None else value)


def _to_space(value: float, space: str) -> float:
    return math.log(max(value, 1e-12)) if space == "log" else value


def _from_space(value: float, space: str) -> float:
    return math.exp(value) if space == "log" else value


def fit_tissue(
    real: Sequence[tuple[np.ndarray, VoxelSize]], kind: str, shape: Sequence[int], voxel_size: VoxelSize,
    simulate: Mapping[str, Any], *, crop_um: Sequence[float] | None = None, inside_tissue: bool = False,
    statistics: str = "auto", only: Sequence[str] | None = None, rounds: int = 8, samples: int = 2,
    crops: int = 8, margin_um: float = 0.0, seed: int = 0,
    callback: Callable[[int, dict[str, Any]], None] | None = None,
) -> TissueFit:
    """Fit the tissue parameters of a preset to real labels.

    Statistics of whole cells (:data:`~cellsynth.evaluate.tissue.STATISTICS` marked
    ``interior``) are compared between whole volumes: they hardly depend on the volume's
    size. The others (cell counts, statistics of cut cells) are compared in crops of one
    size.

    Parameters
    ----------
    real
        ``(labels, voxel_size)`` of the real volumes (or parts) to fit.
    kind
        ``"membranes"`` or ``"nuclei"``.
    shape, voxel_size
        Volume simulated in each round (voxels, µm): it should hold a hundred cells or
        more, and a few crops.
    simulate
        Keyword arguments of :func:`cellsynth.simulate.pipeline.simulate_sample` to start
        from (a preset's ``simulate`` section through
        :func:`cellsynth.dataset.presets.simulate_arguments`); the ones not fitted stay.
        Membranes are fitted with ``packing="cells"``.
    crop_um
        Size (µm, z y x) of the crops for the crop-dependent statistics; default: the
        smallest extent of the real and simulated volumes.
    inside_tissue
        Take real crops only where they lie inside the labelled tissue (labels with
        background, fitted for a preset of dense tissue).
    statistics
        Membranes: fit the shape of whole cells (``"whole"``), of the cells as cut by
        crops of ``crop_um`` (``"crops"``), the mean volume and orientation of whole cells
        with the shape of cut ones (``"both"``), or choose by how many whole cells the real
        labels hold (``"auto"``, see :func:`choose_targets`).
    only
        Fit only these parameters (``stretch`` for both stretch factors, names as
        :func:`~cellsynth.simulate.pipeline.simulate_sample` takes them); the others keep
        their values.
    rounds
        Simulation rounds.
    samples
        Volumes simulated per round (seeds ``seed, seed + 1, ...``; the final check uses
        the next ``samples`` seeds).
    crops
        Crops measured per volume.
    margin_um
        Keep the simulated crops this far from the simulated volume's faces (µm), which
        cut no cell (see :func:`~cellsynth.evaluate.tissue.compare_tissue`); ``shape``
        should then exceed the crop by twice this along each axis.
    seed
        First seed.
    callback
        Called after each round with its index and record (for progress output).

    Returns
    -------
    TissueFit
        The fitted keyword arguments of ``simulate_sample`` (the others kept), the targets
        and the comparisons with the real labels on fresh seeds.
    """
    from cellsynth.simulate.pipeline import simulate_sample

    if kind not in ("nuclei", "membranes"):
        raise CellsynthError(f"unknown kind {kind!r}; use nuclei or membranes")
    if not real:
        raise CellsynthError("the fit needs at least one real label volume")
    if rounds < 1 or samples < 1:
        raise CellsynthError("the fit needs at least one round and one sample per round")
    voxel = check_voxel_size(voxel_size)
    shape = tuple(int(s) for s in shape)
    options = dict(crops=crops, sphericity=kind == "nuclei", progress=False)
    whole_real = measure_volumes(real, kind, None, **options)
    targets = choose_targets(kind, whole_real, statistics)
    if only is not None:
        known = {t.parameter.split(".")[0] for t in targets}
        unknown = sorted(set(only) - known)
        if unknown:
            raise CellsynthError(f"cannot fit {', '.join(unknown)} here; choose from {', '.join(sorted(known))}")
        targets = [t for t in targets if t.parameter.split(".")[0] in only]
    extent = np.asarray(crop_um, dtype=np.float64) if crop_um is not None else \
        matched_extent(real, [(np.zeros(shape, np.uint8), voxel)])
    by_crop = {t.statistic: STATISTICS[t.statistic][1] == "all" for t in targets}
    crop_real = measure_volumes(real, kind, extent, inside_tissue=inside_tissue, **options) \
        if any(by_crop.values()) else []
    real_stats = {"whole": summarize(whole_real), "crops": summarize(crop_real) if crop_real else {}}
    goal = {t.statistic: real_stats["crops" if by_crop[t.statistic] else "whole"][t.statistic] for t in targets}
    for statistic, value in goal.items():
        if not np.isfinite(value):
            raise CellsynthError(f"the real labels give no {statistic} to fit; give larger or more volumes")
    parameters = dict(simulate)
    if kind == "membranes":
        parameters["packing"] = "cells"
    if real_stats["whole"]["orientation_order"] >= ALIGNED_ORDER:
        parameters["orientation"] = [round(float(c), 3) for c in orientation(whole_real)]
        parameters.pop("orientation_coherence_um", None)
        parameters.pop("orientation_bias", None)
    elif kind == "nuclei":
        parameters["orientation"] = None
    values = {t.parameter: _initial(t, parameters, kind) for t in targets}

    def run(candidate: Mapping[str, Any], seeds: Sequence[int]) -> tuple[list[TissueCells], list[TissueCells]]:
        volumes = []
        for s in seeds:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "only N of M cells fit": the fit moves on
                sample = simulate_sample(kind, shape, voxel, np.random.default_rng(s), progress=False, **candidate)
            volumes.append((sample.labels, voxel))
        whole = measure_volumes(volumes, kind, None, **options) if not all(by_crop.values()) else []
        cropped = measure_volumes(volumes, kind, extent, margin_um=margin_um, **options) \
            if any(by_crop.values()) else []
        return whole, cropped

    def statistics(tables: tuple[list[TissueCells], list[TissueCells]]) -> dict[str, float]:
        summaries = [summarize(t) if t else {} for t in tables]
        return {t.statistic: summaries[1 if by_crop[t.statistic] else 0][t.statistic] for t in targets}

    history: list[dict[str, Any]] = []
    for index in range(rounds):
        stats = statistics(run({**parameters, **_rounded(values)}, range(seed, seed + samples)))
        record = {"parameters": dict(_rounded(values)), "statistics": stats, "values": dict(values)}
        history.append(record)
        if callback is not None:
            callback(index, record)
        new = dict(values)
        for t in targets:
            x = _to_space(values[t.parameter], t.parameter_space)
            y = _to_space(stats[t.statistic], t.statistic_space)
            if np.isfinite(y):
                step = (_to_space(goal[t.statistic], t.statistic_space) - y) / t.slope
                step = float(np.clip(step, -t.max_step, t.max_step))
                new[t.parameter] = float(np.clip(_from_space(x + step, t.parameter_space), *t.bounds))
        if kind == "nuclei" and "cell_size_um" in new:  # centres at least 2 r / 1.47 apart: room for the nuclei
            new["cell_size_um"] = max(new["cell_size_um"], 2.0 * float(new.get("radius_um", parameters.get(
                "radius_um", 0.0))))
        values = new

    late = [r["values"] for r in history[len(history) // 2:]]
    averaged = {t.parameter: _from_space(float(np.mean([_to_space(v[t.parameter], t.parameter_space) for v in late])),
                                         t.parameter_space) for t in targets}
    fitted = {**parameters, **_rounded(averaged)}
    whole, cropped = run(fitted, range(seed + samples, seed + 2 * samples))
    comparisons = {}
    if whole:
        comparisons["whole"] = compare_tables(whole_real, whole)
    if cropped:
        comparisons["crops"] = compare_tables(crop_real, cropped)
    return TissueFit(kind=kind, parameters=fitted, targets=targets, comparisons=comparisons,
                     by_crop=by_crop, history=history)


def _rounded(values: Mapping[str, float]) -> dict[str, Any]:
    """Parameter values as a preset stores them: counts as integers, the rest to 4 digits, and
    vector components such as ``stretch.z`` and ``stretch.y`` as ``stretch: [z, y, 1]``."""
    out: dict[str, Any] = {k: (int(round(v)) if k == "count" else float(f"{v:.4g}"))
                           for k, v in values.items() if "." not in k}
    for name in sorted({k.split(".")[0] for k in values if "." in k}):
        out[name] = [float(f"{values.get(f'{name}.{a}', 1.0):.4g}") for a in "zy"] + [1.0]
    return out


@dataclass
class GradientFit:
    """The outcome of :func:`fit_size_gradient`: fitted keyword arguments of ``simulate_sample``,
    the real and simulated (fresh seeds) count trends (mean log count, slope per µm) and the rounds."""

    parameters: dict[str, Any]
    real: tuple[float, float]
    simulated: tuple[float, float]
    history: list[dict[str, Any]] = field(default_factory=list)

    def report(self) -> str:
        """The fitted values and the trends side by side."""
        (real_mean, real_slope), (sim_mean, sim_slope) = self.real, self.simulated
        return "\n".join([
            f"fitted cell size {self.parameters['cell_size_um']:.4g} µm (at the volume's centre), "
            f"size gradient {self.parameters['size_gradient']} per µm",
            f"mean log count per slab: real {real_mean:.4f}, simulated {sim_mean:.4f} "
            f"(counts {math.exp(real_mean):.1f} / {math.exp(sim_mean):.1f})",
            f"slope of the log count: real {real_slope:+.5f}, simulated {sim_slope:+.5f} per µm"])


GRADIENT_SLOPE = -2.5
"""d (log count per slab) / d (log cell size), and d (its slope) / d (size gradient): cells a
factor ``f`` larger leave about ``f**-2.5`` as many labels in a slab thinner than a few cells."""


def fit_size_gradient(
    real: np.ndarray, real_voxel_size: VoxelSize, shape: Sequence[int], voxel_size: VoxelSize,
    simulate: Mapping[str, Any], *, axis: int, slab_um: float, region: Sequence[slice] | None = None,
    rounds: int = 8, samples: int = 2, seed: int = 0,
    callback: Callable[[int, dict[str, Any]], None] | None = None,
) -> GradientFit:
    """Fit the cell size and a cell-size gradient along one axis to real labels' count trend.

    The labels are cut into slabs of ``slab_um`` along ``axis`` (every half slab, see
    :func:`~cellsynth.evaluate.tissue.count_trend`); the log count per slab is regressed on
    the slab's position. Each round simulates ``samples`` volumes of ``shape`` (the same seeds
    every round), measures the same slabs in their ``region`` and moves the log cell size by
    the difference of the mean log counts and the gradient by the difference of the slopes
    (each over :data:`GRADIENT_SLOPE`, at most 0.2 and 0.02 per µm per round); the fitted
    values are the means of the second half of the rounds, then re-measured on fresh seeds.

    Parameters
    ----------
    real, real_voxel_size
        The real labels (only the part to fit, e.g. the first 75 % along y) and their voxel size.
    shape, voxel_size
        The simulated volume: the whole real volume's shape, so that the gradient's origin
        (the volume's centre) lies where it will lie when the preset is compared with it.
    simulate
        Keyword arguments of :func:`~cellsynth.simulate.pipeline.simulate_sample` to start
        from (``packing="cells"`` is set); ``cell_size_um`` and ``size_gradient`` are fitted.
    axis
        0, 1 or 2 (z, y, x): the axis of the gradient.
    slab_um
        Slab thickness (µm).
    region
        The part of the simulated volume that matches ``real`` (slices z, y, x; default: all).
    rounds, samples, seed, callback
        As in :func:`fit_tissue`.

    Returns
    -------
    GradientFit
    """
    from cellsynth.evaluate.tissue import count_trend
    from cellsynth.simulate.pipeline import simulate_sample

    if rounds < 1 or samples < 1:
        raise CellsynthError("the fit needs at least one round and one sample per round")
    voxel = check_voxel_size(voxel_size)
    region = tuple(region) if region is not None else (slice(None),) * 3
    goal = count_trend(real, real_voxel_size, axis, slab_um)
    parameters = {**simulate, "packing": "cells"}
    gradient = list(parameters.get("size_gradient") or [0.0, 0.0, 0.0])
    log_size = math.log(float(_initial(MEMBRANE_TARGETS[0], parameters, "membranes")))
    step = gradient[axis]

    def candidate(log_size: float, step: float) -> dict[str, Any]:
        return {**parameters, "cell_size_um": float(f"{math.exp(log_size):.4g}"),
                "size_gradient": [float(f"{step:.4g}") if a == axis else gradient[a] for a in range(3)]}

    def trend(log_size: float, step: float, seeds: Sequence[int]) -> tuple[float, float]:
        trends = []
        for s in seeds:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                sample = simulate_sample("membranes", shape, voxel, np.random.default_rng(s), progress=False,
                                         **candidate(log_size, step))
            trends.append(count_trend(sample.labels[region], voxel, axis, slab_um))
        return float(np.mean([t[0] for t in trends])), float(np.mean([t[1] for t in trends]))

    history: list[dict[str, Any]] = []
    for index in range(rounds):
        mean, slope = trend(log_size, step, range(seed, seed + samples))
        record = {"cell_size_um": math.exp(log_size), "size_gradient": step, "mean_log_count": mean, "slope": slope}
        history.append(record)
        if callback is not None:
            callback(index, record)
        log_size += float(np.clip((goal[0] - mean) / GRADIENT_SLOPE, -0.2, 0.2))
        step += float(np.clip((goal[1] - slope) / GRADIENT_SLOPE, -0.02, 0.02))
    late = history[len(history) // 2:]
    log_size = float(np.mean([math.log(r["cell_size_um"]) for r in late]))
    step = float(np.mean([r["size_gradient"] for r in late]))
    check = trend(log_size, step, range(seed + samples, seed + 2 * samples))
    return GradientFit(parameters=candidate(log_size, step), real=goal, simulated=check, history=history)
