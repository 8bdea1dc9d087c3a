"""One simulated annotation sample: organism -> cell positions -> nuclei or membranes.

:func:`simulate_sample` is what ``cellsynth simulate`` and the dataset runner call; its
defaults are the command's defaults.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from cellsynth.errors import CellsynthError
from cellsynth.io import Sample, VoxelSize, check_voxel_size

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

_BYTES_PER_VOXEL = 12  # labels, mask, foreground, depth and temporaries at peak


def check_memory(shape: Sequence[int]) -> None:
    """Refuse volumes whose simulation would not fit in this machine's memory."""
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    voxels = int(np.prod(shape, dtype=np.int64))
    if voxels * _BYTES_PER_VOXEL > memory:
        raise CellsynthError(
            f"a {'x'.join(map(str, shape))} volume needs about {voxels * _BYTES_PER_VOXEL / 2**30:.0f} GiB of "
            f"memory, more than this machine has ({memory / 2**30:.0f} GiB); choose a smaller --shape"
        )


def _positive(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
        raise CellsynthError(f"{name} must be a positive length in µm, got {value!r}")
    return float(value)


def _membrane_packing(
    packing: str, shape: tuple[int, int, int], voxel: VoxelSize, rng: np.random.Generator, *, spacing: float,
    elongation: float, flatness: float, orientation: Sequence[float] | None, coherence: float,
    stretch: Sequence[float] | None, bias: Sequence[float] | None, weight_spread: float | None,
    positions: str | os.PathLike | None,
) -> Any:
    """The :class:`~cellsynth.simulate.anisotropy.CellPacking` of ``packing="cells"``, else None."""
    if packing == "points":
        if elongation != 1.0 or flatness or orientation is not None or coherence or stretch is not None \
                or bias is not None:
            raise CellsynthError("elongated or oriented membrane cells need packing: cells (--packing cells)")
        return None
    if positions is not None:
        raise CellsynthError("packing: cells places its own seeds; it cannot take --positions (use packing: points)")
    from cellsynth.simulate.anisotropy import CellPacking, orientation_field
    from cellsynth.simulate.membranes import DEFAULT_WEIGHT_SPREAD

    field = orientation_field(shape, voxel, rng, orientation=orientation, coherence_um=coherence, bias=bias)
    spread = DEFAULT_WEIGHT_SPREAD if weight_spread is None else weight_spread
    return CellPacking(spacing, elongation, spread, field, flatness, stretch)


def simulate_sample(
    kind: str,
    shape: Sequence[int],
    voxel_size: VoxelSize,
    rng: np.random.Generator,
    *,
    organism: str | os.PathLike = DEFAULT_ORGANISM,
    semi_axes: Sequence[float] | None = None,
    center: Sequence[float] | None = None,
    placement: str = DEFAULT_PLACEMENT,
    positions: str | os.PathLike | None = None,
    count: int | None = None,
    cell_size: float | None = None,
    radius: float = DEFAULT_RADIUS_UM,
    radius_std: float = DEFAULT_RADIUS_STD_UM,
    smoothness: float = DEFAULT_SMOOTHNESS,
    sh_order: int = DEFAULT_SH_ORDER,
    law: str = DEFAULT_LAW,
    elongation: float = 1.0,
    orientation: Sequence[float] | None = None,
    membrane_thickness: float | None = None,
    weight_spread: float | None = None,
    packing: str = DEFAULT_PACKING,
    flatness: float = 0.0,
    orientation_coherence: float = 0.0,
    stretch: Sequence[float] | None = None,
    orientation_bias: Sequence[float] | None = None,
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
    semi_axes
        Ellipsoid semi-axes (z, y, x) in µm (default: the organism's own default).
    center
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
    cell_size
        Mean cell diameter in µm (for nuclei: of the cell around each nucleus); cell
        centres are placed at least ``cell_size / PACKING_RATIO`` apart. Default: 10 µm
        for membranes, ``4 * radius`` for nuclei.
    radius, radius_std
        Nuclei: mean and standard deviation of the mean radius (µm).
    smoothness, sh_order, law
        Nuclei: SH smoothness ``gamma``, order ``l`` and coefficient law.
    elongation, orientation
        Long-to-short axis ratio and long-axis direction (z, y, x) of the nuclei, or of the
        cells with ``packing="cells"``; ``None`` orients each at random (see
        ``orientation_coherence``).
    membrane_thickness
        Membranes: wall thickness in µm (default of :mod:`cellsynth.simulate.membranes`).
    weight_spread
        Membranes: spread of the Voronoi weights, the cells' sizes (default of
        :mod:`cellsynth.simulate.membranes`).
    packing
        Membranes: ``"points"`` (the paper, Eq. 3: seeds ``cell_size / 1.47`` apart,
        weights drawn afterwards) or ``"cells"``: seeds of non-overlapping ellipsoids with
        each cell's size (weight) and elongation, and a tessellation in each cell's own
        metric (:mod:`cellsynth.simulate.anisotropy`).
    flatness
        Membranes with ``packing="cells"``: 0 makes cells cigars (middle axis as short as
        the short one), 1 discs, in between triaxial (see
        :func:`cellsynth.simulate.anisotropy.semi_axes`).
    orientation_coherence
        Without ``orientation``: 0 orients every cell independently; a length in µm makes
        the cells' axes a smooth random field, alike over about that distance (membranes
        with ``packing="cells"``).
    stretch
        Membranes with ``packing="cells"``: factors (z, y, x) by which the whole tissue is
        stretched (scaled to a product of 1), e.g. ``[0.75, 1.15, 1.15]`` for cells flatter
        along z.
    orientation_bias
        Membranes with ``packing="cells"``, without ``orientation``: factors (z, y, x) on the
        random long axes before normalisation, e.g. ``[0.3, 1, 1]`` for long axes mostly in
        the xy plane (cells in layers).
    progress
        Progress bars (``None``: only on a terminal).

    Returns
    -------
    cellsynth.io.Sample
        The sample; ``metadata`` holds ``kind``, all ``parameters`` and ``timings``.
    """
    start = time.perf_counter()
    if kind not in KINDS:
        raise CellsynthError(f"unknown kind {kind!r}; use nuclei or membranes")
    if placement not in PLACEMENTS:
        raise CellsynthError(f"unknown placement {placement!r}; use layered or uniform")
    if packing not in PACKINGS:
        raise CellsynthError(f"unknown packing {packing!r}; use points or cells")
    if kind == "nuclei" and (packing != DEFAULT_PACKING or flatness or orientation_coherence or stretch is not None
                             or orientation_bias is not None):
        raise CellsynthError("packing, flatness, stretch and orientation coherence and bias shape membrane cells; "
                             "nuclei take elongation and orientation")
    from cellsynth.simulate.organism import check_shape, make_organism
    from cellsynth.simulate.positions import (
        check_positions,
        layered_positions,
        poisson_disk_positions,
        positions_from_csv,
    )

    shape = check_shape(shape)
    check_memory(shape)
    voxel = check_voxel_size(voxel_size)
    if count is not None and (isinstance(count, bool) or not float(count).is_integer() or count < 1):
        raise CellsynthError(f"count must be a positive whole number of cells, got {count!r}")
    cell_size = _positive(cell_size, "cell size")
    if cell_size is None:
        cell_size = NUCLEUS_CELL_SIZE_FACTOR * _positive(radius, "radius") if kind == "nuclei" \
            else DEFAULT_MEMBRANE_CELL_SIZE_UM
    spacing = cell_size / PACKING_RATIO
    parameters: dict[str, Any] = {
        "organism": str(organism), "semi_axes": None if semi_axes is None else list(map(float, semi_axes)),
        "center": None if center is None else list(map(float, center)),
        "placement": placement, "positions": None if positions is None else str(positions),
        "count": None if positions is not None else count, "cell_size": cell_size,
        "min_distance_um": spacing,
    }
    timings: dict[str, float] = {}

    tick = time.perf_counter()
    organism_params = {} if semi_axes is None else {"semi_axes_um": tuple(float(a) for a in semi_axes)}
    if center is not None:
        organism_params["center_um"] = tuple(float(c) for c in center)
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
    if kind == "membranes":
        cells = _membrane_packing(packing, shape, voxel, rng, spacing=spacing, elongation=elongation,
                                  flatness=flatness, orientation=orientation, coherence=orientation_coherence,
                                  stretch=stretch, bias=orientation_bias, weight_spread=weight_spread,
                                  positions=positions)
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

        parameters.update(radius=radius, radius_std=radius_std, smoothness=smoothness, sh_order=sh_order,
                          law=law, elongation=elongation,
                          orientation=None if orientation is None else list(map(float, orientation)))
        sample = simulate_nuclei(
            foreground, voxel, centers, rng, radius_um=radius, radius_std_um=radius_std, smoothness=smoothness,
            sh_order=sh_order, law=law, elongation=elongation, orientation=orientation, progress=progress,
        )
    else:
        from cellsynth.simulate import membranes

        thickness = membranes.DEFAULT_MEMBRANE_THICKNESS_UM if membrane_thickness is None else membrane_thickness
        spread = membranes.DEFAULT_WEIGHT_SPREAD if weight_spread is None else weight_spread
        parameters.update(membrane_thickness=thickness, weight_spread=spread, packing=packing)
        packed = {}
        if cells is not None:
            parameters.update(elongation=elongation, flatness=flatness, orientation_coherence=orientation_coherence,
                              orientation=None if orientation is None else list(map(float, orientation)),
                              stretch=None if stretch is None else list(map(float, stretch)),
                              orientation_bias=None if orientation_bias is None else list(map(float, orientation_bias)))
            packed = dict(weights=centers[:, 3], metrics=cells.metrics(centers[:, 3:]))
            centers = centers[:, :3]
        sample = membranes.simulate_membranes(
            foreground, voxel, centers, rng, weight_spread=spread, membrane_thickness_um=thickness,
            progress=progress is not False, **packed,
        )
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
