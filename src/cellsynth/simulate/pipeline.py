"""One simulated annotation sample: organism -> cell positions -> nuclei or membranes.

:func:`simulate_sample` is what ``cellsynth simulate`` and the dataset runner call; its
defaults are the command's defaults.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cellsynth.errors import CellsynthError
from cellsynth.io import Sample, VoxelSize, check_voxel_size
from cellsynth.memory import check_memory
from cellsynth.simulate.annotations import DEFAULT_MEMBRANE_THICKNESS_UM, check_membrane_thickness

KINDS = ("nuclei", "membranes")
PLACEMENTS = ("layered", "uniform")
PACKINGS = ("points", "cells")

DEFAULT_ORGANISM = "ellipsoid"
DEFAULT_PLACEMENT = "layered"
DEFAULT_PACKING = "points"
DEFAULT_RADIUS_UM = 9.0
DEFAULT_RADIUS_STD_UM = 1.0
DEFAULT_SMOOTHNESS = 5.0
DEFAULT_SH_ORDER = 20
DEFAULT_LAW = "power"
DEFAULT_MEMBRANE_CELL_SIZE_UM = 10.0
NUCLEUS_CELL_SIZE_FACTOR = 4.0
"""Default cell size around nuclei, in units of their mean radius."""
PACKING_RATIO = 1.47
"""Mean equivalent cell diameter over the minimum centre distance of a full Poisson-disk or
layered placement (measured: 1.43-1.50 in box and ellipsoid organisms for distances of
8-16 voxels). Positions are placed at least ``cell_size / PACKING_RATIO`` apart so that
the cells' mean diameter is ``cell_size``."""

SIMULATION_BYTES_PER_VOXEL = 12
"""Peak memory of a simulation per voxel: labels, mask, foreground, depth and temporaries."""


def simulation_bytes(shape: Sequence[int]) -> int:
    """About how much memory simulating a volume of ``shape`` needs at its peak, in bytes."""
    return int(np.prod(shape, dtype=np.float64)) * SIMULATION_BYTES_PER_VOXEL


def _positive(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
        raise CellsynthError(f"{name} must be a positive length in µm, got {value!r}")
    return float(value)


def check_simulation(
    kind: str, shape: Sequence[int], voxel_size: VoxelSize, *, organism: str | os.PathLike = DEFAULT_ORGANISM,
    semi_axes_um: Sequence[float] | None = None, center_um: Sequence[float] | None = None,
    placement: str = DEFAULT_PLACEMENT, positions: str | os.PathLike | None = None, count: int | None = None,
    cell_size_um: float | None = None, radius_um: float = DEFAULT_RADIUS_UM,
    radius_std_um: float = DEFAULT_RADIUS_STD_UM, smoothness: float = DEFAULT_SMOOTHNESS, sh_order: int = DEFAULT_SH_ORDER, law: str = DEFAULT_LAW,
    elongation: float = 1.0, orientation: Sequence[float] | None = None, membrane_thickness_um: float | None = None,
    weight_spread: float | None = None, packing: str = DEFAULT_PACKING, flatness: float = 0.0,
    orientation_coherence_um: float = 0.0, stretch: Sequence[float] | None = None,
    orientation_bias: Sequence[float] | None = None, size_gradient: Sequence[float] | None = None,
    margin_um: float = 0.0, **more: Any,
) -> tuple[tuple[int, int, int], VoxelSize, float]:
    """Check the arguments of :func:`simulate_sample` without simulating (fast).

    Everything that can be checked before drawing is checked here: names, ranges, that the
    volume fits in memory (:func:`cellsynth.memory.check_memory`), that the organism and
    positions files exist, that cells span at least two voxels, and that walls are thinner
    than cells. :func:`simulate_sample` calls it first; ``cellsynth dataset`` calls it before
    it writes anything. Arguments this check does not know (``more``) are left to the
    simulation.

    Returns
    -------
    shape, voxel_size, cell_size_um
        The checked shape and voxel size, and the cell size in µm (its default filled in).

    Raises
    ------
    CellsynthError
        Naming the argument and what to change.
    """
    from cellsynth.checks import check_number
    from cellsynth.simulate.membranes import DEFAULT_WEIGHT_SPREAD, check_weight_spread
    from cellsynth.simulate.nuclei import check_nuclei_parameters
    from cellsynth.simulate.organism import SHAPES, check_shape

    if kind not in KINDS:
        raise CellsynthError(f"unknown kind {kind!r}; use nuclei or membranes")
    if placement not in PLACEMENTS:
        raise CellsynthError(f"unknown placement {placement!r}; use layered or uniform")
    check_cell_shape(kind, packing=packing, positions=positions, elongation=elongation, flatness=flatness,
                     orientation=orientation, orientation_coherence_um=orientation_coherence_um, stretch=stretch,
                     orientation_bias=orientation_bias, size_gradient=size_gradient)
    shape = check_shape(shape)
    voxel = check_voxel_size(voxel_size)
    check_number(margin_um, "margin (µm)", low=0)
    if margin_um and (str(organism) != "box" or positions is not None):
        raise CellsynthError("a margin cuts the sample from a larger block of tissue: it needs organism box and "
                             "no --positions (an organism or given points would not grow with the volume)")
    if margin_um and count is not None and placement == "layered":
        raise CellsynthError("with a margin, a count of layered cells would fill the outer layers, which are cut "
                             "away; use placement uniform")
    grown = grown_shape(shape, voxel, margin_um)
    check_memory(simulation_bytes(grown), f"simulating a {'x'.join(map(str, grown))} volume",
                 "choose a smaller --shape" + (" or --margin" if margin_um else ""))
    if count is not None and (isinstance(count, bool) or not float(count).is_integer() or count < 1):
        raise CellsynthError(f"count must be a positive whole number of cells, got {count!r}")
    cell_size = _positive(cell_size_um, "cell size")
    if cell_size is None:
        cell_size = NUCLEUS_CELL_SIZE_FACTOR * _positive(radius_um, "radius") if kind == "nuclei" \
            else DEFAULT_MEMBRANE_CELL_SIZE_UM
    if cell_size < 2 * min(voxel):
        raise CellsynthError(f"a cell size of {cell_size:g} µm is below two voxels ({2 * min(voxel):g} µm): cells "
                             "cannot be drawn that small; raise the cell size (or --radius) or use smaller voxels")
    for name, values in (("semi-axes", semi_axes_um), ("centre", center_um)):
        if values is not None:
            array = np.asarray(values, dtype=object)
            if array.shape != (3,) or not all(isinstance(v, (int, float, np.number)) and np.isfinite(v)
                                              for v in array):
                raise CellsynthError(f"the organism {name} must be three finite numbers (z y x) in µm, got {values!r}")
    if str(organism) not in SHAPES and not Path(organism).is_file() and not _is_zarr_folder(organism):
        raise CellsynthError(f"unknown organism {str(organism)!r}: use {', '.join(SHAPES)}, a mask file or a shape "
                             "model .npz (file not found)")
    if positions is not None and not Path(positions).is_file():
        raise CellsynthError(f"positions file not found: {positions}")
    if kind == "nuclei":
        check_nuclei_parameters(shape, voxel, radius_um=radius_um, radius_std_um=radius_std_um,
                                smoothness=smoothness, sh_order=sh_order, law=law, elongation=elongation,
                                orientation=orientation)
    else:
        thickness = DEFAULT_MEMBRANE_THICKNESS_UM if membrane_thickness_um is None else membrane_thickness_um
        check_membrane_thickness(thickness, cell_size, "the cell size")
        check_weight_spread(DEFAULT_WEIGHT_SPREAD if weight_spread is None else weight_spread)
    return shape, voxel, cell_size


def check_cell_shape(
    kind: str, *, packing: str = DEFAULT_PACKING, positions: str | os.PathLike | None = None, elongation: float = 1.0,
    flatness: float = 0.0, orientation: Sequence[float] | None = None, orientation_coherence_um: float = 0.0,
    stretch: Sequence[float] | None = None, orientation_bias: Sequence[float] | None = None,
    size_gradient: Sequence[float] | None = None,
) -> None:
    """Check the cell-shape options: which kind and packing take them, and their values."""
    from cellsynth.simulate.anisotropy import (
        check_direction,
        check_elongation,
        check_flatness,
        check_size_gradient,
        check_stretch,
    )

    if packing not in PACKINGS:
        raise CellsynthError(f"unknown packing {packing!r}; use points or cells")
    membrane_only = (flatness or orientation_coherence_um or stretch is not None or orientation_bias is not None
                     or size_gradient is not None)
    if kind == "nuclei" and (packing != DEFAULT_PACKING or membrane_only):
        raise CellsynthError("packing, flatness, stretch, size gradient and orientation coherence and bias shape "
                             "membrane cells; nuclei take elongation and orientation")
    if kind == "membranes" and packing == "points" and (elongation != 1.0 or orientation is not None
                                                         or membrane_only):
        raise CellsynthError("elongated or oriented membrane cells need packing: cells (--packing cells)")
    if kind == "membranes" and packing == "cells":
        if positions is not None:
            raise CellsynthError("packing: cells places its own seeds; it cannot take --positions "
                                 "(use packing: points)")
        check_elongation(elongation)
        check_flatness(flatness)
        check_stretch(stretch)
        check_stretch(orientation_bias)  # three positive factors, like a stretch
        check_size_gradient(size_gradient)
        if orientation is not None:
            check_direction(orientation)
        if not (isinstance(orientation_coherence_um, (int, float)) and np.isfinite(orientation_coherence_um)
                and orientation_coherence_um >= 0):
            raise CellsynthError(
                f"orientation coherence must be a length >= 0 in µm, got {orientation_coherence_um!r}")


def _membrane_packing(
    shape: tuple[int, int, int], voxel: VoxelSize, rng: np.random.Generator, *, spacing: float, elongation: float,
    flatness: float, orientation: Sequence[float] | None, coherence: float, stretch: Sequence[float] | None,
    bias: Sequence[float] | None, weight_spread: float, size_gradient: Sequence[float] | None,
) -> Any:
    """The :class:`~cellsynth.simulate.anisotropy.CellPacking` of ``packing="cells"``."""
    from cellsynth.simulate.anisotropy import CellPacking, orientation_field

    field = orientation_field(shape, voxel, rng, orientation=orientation, coherence_um=coherence, bias=bias)
    extent = np.asarray(shape, dtype=np.float64) * np.asarray(voxel)
    return CellPacking(spacing, elongation, weight_spread, field, flatness, stretch, size_gradient, extent)


def grown_shape(shape: Sequence[int], voxel_size: VoxelSize, margin_um: float) -> tuple[int, int, int]:
    """The shape of the block a sample with a margin of ``margin_um`` µm is cut from: ``shape``
    plus ``ceil(margin_um / voxel)`` voxels on both sides of every axis.

    Examples
    --------
    >>> grown_shape((10, 20, 20), (1.0, 0.5, 0.5), 2.0)
    (14, 28, 28)
    """
    pad = [math.ceil(margin_um / v - 1e-9) for v in voxel_size]
    return tuple(int(n) + 2 * p for n, p in zip(shape, pad))  # type: ignore[return-value]


def cut_sample(sample: Sample, corner: Sequence[int], shape: Sequence[int]) -> Sample:
    """The part of ``sample`` of ``shape`` from ``corner`` (voxels), as a sample of its own.

    Labels are renumbered 1..n in their old order; the positions keep the cells that are
    still there (a cut cell's centre may lie outside the new volume), in the new volume's
    coordinates, with ``volume_um3`` the volume left in it.
    """
    from skimage.segmentation import relabel_sequential

    box = tuple(slice(c, c + n) for c, n in zip(corner, shape))
    labels, forward, _ = relabel_sequential(np.asarray(sample.labels[box]))
    old = np.asarray(sample.positions["label"])
    new = np.asarray(forward[old])
    keep = new > 0
    positions = {name: np.asarray(values)[keep] for name, values in sample.positions.items()}
    positions["label"] = new[keep]
    voxel = sample.voxel_size
    for k, axis in enumerate("zyx"):
        positions[f"{axis}_px"] = positions[f"{axis}_px"] - corner[k]
        positions[f"{axis}_um"] = positions[f"{axis}_um"] - corner[k] * voxel[k]
    if "volume_um3" in positions:
        counts = np.bincount(labels.ravel(), minlength=int(positions["label"].max(initial=0)) + 1)
        positions["volume_um3"] = counts[positions["label"]] * float(np.prod(voxel))
    return Sample(labels=labels, mask=np.ascontiguousarray(sample.mask[box]),
                  foreground=np.ascontiguousarray(sample.foreground[box]), voxel_size=voxel, positions=positions,
                  metadata=sample.metadata)


def _is_zarr_folder(path: str | os.PathLike) -> bool:
    return str(path).rstrip("/").endswith(".zarr") and Path(path).is_dir()


def simulate_sample(
    kind: str,
    shape: Sequence[int],
    voxel_size: VoxelSize,
    rng: np.random.Generator,
    *,
    organism: str | os.PathLike = DEFAULT_ORGANISM,
    semi_axes_um: Sequence[float] | None = None,
    center_um: Sequence[float] | None = None,
    placement: str = DEFAULT_PLACEMENT,
    positions: str | os.PathLike | None = None,
    count: int | None = None,
    cell_size_um: float | None = None,
    radius_um: float = DEFAULT_RADIUS_UM,
    radius_std_um: float = DEFAULT_RADIUS_STD_UM,
    smoothness: float = DEFAULT_SMOOTHNESS,
    sh_order: int = DEFAULT_SH_ORDER,
    law: str = DEFAULT_LAW,
    elongation: float = 1.0,
    orientation: Sequence[float] | None = None,
    membrane_thickness_um: float | None = None,
    weight_spread: float | None = None,
    packing: str = DEFAULT_PACKING,
    flatness: float = 0.0,
    orientation_coherence_um: float = 0.0,
    stretch: Sequence[float] | None = None,
    orientation_bias: Sequence[float] | None = None,
    size_gradient: Sequence[float] | None = None,
    margin_um: float = 0.0,
    progress: bool | None = None,
) -> Sample:
    """Simulate one annotated sample (Sec. 3 of the paper).

    Parameters
    ----------
    kind
        ``"nuclei"`` or ``"membranes"``.
    shape
        Volume shape (Z, Y, X) in voxels.
    voxel_size
        Voxel size (z, y, x) in µm.
    rng
        Random generator; the same seed gives the same sample.
    organism
        ``"box"``, ``"ellipsoid"``, ``"sh"``, a foreground mask file or a shape model
        ``.npz`` (see :func:`cellsynth.simulate.organism.make_organism`).
    semi_axes_um
        Ellipsoid semi-axes (z, y, x) in µm (default: the organism's own default).
    center_um
        Centre of the ellipsoid or SH organism (z, y, x) in µm (default: the volume's centre).
        A centre on the deepest z face with a z semi-axis about as tall as the volume gives
        a dome whose apex faces the objective, like a shoot apical meristem.
    placement
        ``"layered"`` (layers from the surface inwards, Sec. 3.1) or ``"uniform"``
        (Poisson-disk in the whole organism). Ignored when ``positions`` is given.
    positions
        CSV file of cell positions (see
        :func:`cellsynth.simulate.positions.positions_from_csv`); each must lie in the
        organism.
    count
        Number of cells; ``None`` places as many as fit. Ignored with ``positions``.
    cell_size_um
        Mean cell diameter in µm (for nuclei: of the cell around each nucleus); cell
        centres are placed at least ``cell_size_um / PACKING_RATIO`` apart. Default: 10 µm
        for membranes, ``4 * radius_um`` for nuclei.
    radius_um, radius_std_um
        Nuclei: mean and standard deviation of the mean radius (µm).
    smoothness, sh_order, law
        Nuclei: SH smoothness ``gamma``, order ``l`` and coefficient law.
    elongation, orientation
        Long-to-short axis ratio and long-axis direction (z, y, x) of the nuclei, or of the
        cells with ``packing="cells"``; ``None`` orients each at random (membranes: see
        ``orientation_coherence_um``).
    membrane_thickness_um
        Membranes: wall thickness in µm (default
        :data:`cellsynth.simulate.annotations.DEFAULT_MEMBRANE_THICKNESS_UM`).
    weight_spread
        Membranes: spread of the Voronoi weights, the cells' sizes (default of
        :mod:`cellsynth.simulate.membranes`).
    packing
        Membranes: ``"points"`` (the paper, Eq. 3: seeds ``cell_size_um / 1.47`` apart,
        weights drawn afterwards) or ``"cells"``: seeds of non-overlapping ellipsoids with
        each cell's size (weight) and shape, and a tessellation in each cell's own metric
        (:mod:`cellsynth.simulate.anisotropy`). With ``"cells"`` the cell size sets the scale
        of the packing; the mean cell volume also depends on the weight spread (measure it
        with :mod:`cellsynth.evaluate.tissue`).
    flatness
        Membranes with ``packing="cells"``: 0 makes cells cigars (middle axis as short as
        the short one), 1 discs, in between triaxial (see
        :func:`cellsynth.simulate.anisotropy.semi_axes`).
    orientation_coherence_um
        Membranes with ``packing="cells"``, without ``orientation``: 0 orients every cell
        independently; a length in µm makes the cells' axes a smooth random field, alike
        over about that distance.
    stretch
        Membranes with ``packing="cells"``: factors (z, y, x) by which the whole tissue is
        stretched (scaled to a product of 1), e.g. ``[0.75, 1.15, 1.15]`` for cells flatter
        along z.
    orientation_bias
        Membranes with ``packing="cells"``, without ``orientation``: factors (z, y, x) on
        the random long axes before normalisation, e.g. ``[0.3, 1, 1]`` for long axes mostly
        in the xy plane (cells in layers).
    size_gradient
        Membranes with ``packing="cells"``: change of the log cell size per µm along z, y
        and x from the volume's centre (1/µm), e.g. ``[0, -0.01, 0]`` for cells 1 % smaller
        per µm along y (their volume 3 %); ``cell_size_um`` is the size at the centre (see
        :mod:`cellsynth.simulate.anisotropy`). Default: none.
    margin_um
        With ``organism="box"``: simulate the tissue this many µm wider on every side and
        cut the sample out of its middle, so that the volume's faces cut cells as a real
        crop of a larger tissue does (without it no cell crosses a face, and cells near
        the faces are fewer than inside). ``count`` stays the number in the sample's
        volume: the block gets proportionally more. About a cell diameter; 0 (default): no
        margin.
    progress
        Progress bars: None (default) on a terminal only, True always, False never.

    Returns
    -------
    cellsynth.io.Sample
        The sample; ``metadata`` holds ``kind``, all ``parameters`` (named like the flags of
        ``cellsynth simulate`` and the keys of presets, without the ``_um`` suffix) and
        ``timings``.
    """
    start = time.perf_counter()
    shape, voxel, cell_size = check_simulation(
        kind, shape, voxel_size, organism=organism, semi_axes_um=semi_axes_um, center_um=center_um,
        placement=placement, positions=positions, count=count, cell_size_um=cell_size_um, radius_um=radius_um,
        radius_std_um=radius_std_um, smoothness=smoothness, sh_order=sh_order, law=law, elongation=elongation,
        orientation=orientation, membrane_thickness_um=membrane_thickness_um, weight_spread=weight_spread,
        packing=packing, flatness=flatness, orientation_coherence_um=orientation_coherence_um, stretch=stretch,
        orientation_bias=orientation_bias, size_gradient=size_gradient, margin_um=margin_um)
    sample_shape, shape = shape, grown_shape(shape, voxel, margin_um)
    requested = count
    if count is not None and shape != sample_shape:
        count = max(1, round(count * float(np.prod(shape)) / float(np.prod(sample_shape))))
    from cellsynth.simulate.organism import make_organism
    from cellsynth.simulate.positions import (
        check_positions,
        layered_positions,
        poisson_disk_positions,
        positions_from_csv,
    )

    spacing = cell_size / PACKING_RATIO
    parameters: dict[str, Any] = {
        "organism": str(organism), "semi_axes": None if semi_axes_um is None else list(map(float, semi_axes_um)),
        "center": None if center_um is None else list(map(float, center_um)),
        "placement": placement, "positions": None if positions is None else str(positions),
        "count": None if positions is not None else requested, "cell_size": cell_size,
        "min_distance_um": spacing, "margin": float(margin_um),
    }
    timings: dict[str, float] = {}

    tick = time.perf_counter()
    organism_params = {} if semi_axes_um is None else {"semi_axes_um": tuple(float(a) for a in semi_axes_um)}
    if center_um is not None:
        organism_params["center_um"] = tuple(float(c) for c in center_um)
    foreground = make_organism(organism, shape, voxel, rng, **organism_params)
    if tuple(foreground.shape) != shape:
        raise CellsynthError(
            f"the organism mask has shape {tuple(foreground.shape)} but --shape is {shape}; make them equal"
        )
    if not np.any(foreground):
        raise CellsynthError("the organism foreground is empty; choose another organism or mask")
    timings["organism_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    cells = None
    if kind == "membranes" and packing == "cells":
        from cellsynth.simulate.membranes import DEFAULT_WEIGHT_SPREAD

        cells = _membrane_packing(shape, voxel, rng, spacing=spacing, elongation=elongation, flatness=flatness,
                                  orientation=orientation, coherence=orientation_coherence_um, stretch=stretch,
                                  bias=orientation_bias, size_gradient=size_gradient,
                                  weight_spread=DEFAULT_WEIGHT_SPREAD if weight_spread is None else weight_spread)
    if positions is not None:
        centers = positions_from_csv(positions, voxel, shape)
        check_positions(centers, foreground, voxel)
    elif placement == "layered":
        centers = layered_positions(foreground, voxel, spacing, rng, count, packing=cells)
    else:
        centers = poisson_disk_positions(foreground, voxel, spacing, rng, count, packing=cells)
    if len(centers) == 0:
        raise CellsynthError("no cell fits in the organism; lower the cell size or enlarge the organism")
    timings["positions_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    if kind == "nuclei":
        from cellsynth.simulate.nuclei import simulate_nuclei

        parameters.update(radius=radius_um, radius_std=radius_std_um, smoothness=smoothness, sh_order=sh_order,
                          law=law, elongation=elongation,
                          orientation=None if orientation is None else list(map(float, orientation)))
        sample = simulate_nuclei(
            foreground, voxel, centers, rng, radius_um=radius_um, radius_std_um=radius_std_um, smoothness=smoothness,
            sh_order=sh_order, law=law, elongation=elongation, orientation=orientation, progress=progress,
        )
    else:
        from cellsynth.simulate.membranes import DEFAULT_WEIGHT_SPREAD, simulate_membranes

        thickness = DEFAULT_MEMBRANE_THICKNESS_UM if membrane_thickness_um is None else membrane_thickness_um
        spread = DEFAULT_WEIGHT_SPREAD if weight_spread is None else weight_spread
        parameters.update(membrane_thickness=thickness, weight_spread=spread, packing=packing)
        packed = {}
        if cells is not None:
            parameters.update(elongation=elongation, flatness=flatness, orientation_coherence=orientation_coherence_um,
                              orientation=None if orientation is None else list(map(float, orientation)),
                              stretch=None if stretch is None else list(map(float, stretch)),
                              orientation_bias=None if orientation_bias is None else list(map(float, orientation_bias)),
                              size_gradient=None if size_gradient is None else list(map(float, size_gradient)))
            packed = {"weights": centers[:, 3], "metrics": cells.metrics(centers[:, 3:])}
            centers = centers[:, :3]
        sample = simulate_membranes(
            foreground, voxel, centers, rng, weight_spread=spread, membrane_thickness_um=thickness,
            progress=progress, **packed,
        )
    if shape != sample_shape:
        sample = cut_sample(sample, [(g - n) // 2 for g, n in zip(shape, sample_shape)], sample_shape)
    timings[f"{kind}_s"] = time.perf_counter() - tick
    timings["total_s"] = time.perf_counter() - start

    inner = dict(sample.metadata)
    stage_timings = inner.pop("timings", {})
    inner.pop("parameters", None)
    sample.metadata = {
        "kind": kind,
        "parameters": parameters,
        **{k: v for k, v in inner.items() if k != "kind"},
        "timings": {**{k: round(v, 4) for k, v in timings.items()}, "stages": stage_timings},
    }
    return sample
