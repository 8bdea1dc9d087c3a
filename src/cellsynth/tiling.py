"""Seamless patch-wise inference over volumes of any size (paper section 2).

A volume is covered by a grid of patches. Neighbouring patches overlap; each model output
patch is first cropped by ``crop`` voxels on every side that faces another patch (its
border depends on padding), and the kept regions, which overlap by at least ``overlap``
voxels, are averaged with a blending weight. Sides on the volume border are not cropped,
so with ``crop`` at least the model's halo the stitched result equals the model applied to
the whole volume at once. Models whose padding would leave a band along the volume border
(generators: zero or edge padding is not tissue) set ``mirror_border``: the volume is then
extended by mirroring it by ``crop`` voxels on every side and those are cropped too, so a
voxel on the volume border is computed like any interior one.

Along each axis the patch step is ``patch - 2 * crop - overlap``; the work done relative
to the volume (the *redundancy*) is about ``prod(patch / step)``. The paper's setting,
patch (64, 128, 128) with overlap = crop = (15, 30, 30), computes about 38 times the
volume. For networks with a large receptive field the defaults are overlap 1/16 and crop
1/8 of the patch (:data:`DEFAULT_OVERLAP`, :data:`DEFAULT_CROP`): 3.1 times. In
``benchmarks/bench_tiling.py --seams`` they were the cheapest setting with a seam metric
at most 1.05 for both a random-weight and the shipped U-Net (1.04 and 1.04; the paper's
setting 0.97 and 0.93, abutting patches 1.28 and 1.22).

Inputs and output may be numpy arrays or on-disk (zarr) arrays. Patches are processed in
z-rows; the input is read one slab of patch height at a time and finished output planes are
written as soon as no later patch touches them, so memory stays bounded by a few slabs
whatever the volume size.
"""

from __future__ import annotations

import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise, product
from typing import Any, Literal

import numpy as np

from cellsynth.errors import CellsynthError
from cellsynth.io import image_to_uint16
from cellsynth.memory import format_bytes
from cellsynth.progress import progress_bar

Triple = tuple[int, int, int]
Blend = Literal["linear", "gaussian", "hann", "constant"]

BLENDS = ("linear", "gaussian", "hann", "constant")
"""Blending weights: the paper's linear (concentric) ramps over the overlaps, a Gaussian
(sigma 1/8 of the kept region, as MONAI), a Hann window, or none (for comparison)."""

DEFAULT_PATCH: Triple = (64, 128, 128)
"""Patch size (z, y, x) in voxels used when neither the user nor the model chooses one."""

DEFAULT_OVERLAP: Triple = (4, 8, 8)
"""Default overlap of the kept regions: 1/16 of the default patch per axis."""

DEFAULT_CROP: Triple = (8, 16, 16)
"""Default (largest) crop: 1/8 of the default patch per axis, less where the model's halo is smaller."""

PAPER_OVERLAP: Triple = (15, 30, 30)
PAPER_CROP: Triple = (15, 30, 30)


def per_axis(value: Any, name: str, *, minimum: int = 0) -> Triple:
    """Turn an int or three ints into a (z, y, x) triple, checking the minimum."""
    values = (value,) * 3 if np.ndim(value) == 0 else tuple(value)
    try:
        ints = tuple(int(v) for v in values)
    except (TypeError, ValueError):
        raise CellsynthError(f"{name} must be one or three whole numbers of voxels (z y x), got {value!r}") from None
    if len(ints) != 3 or any(i != v for i, v in zip(ints, values)) or min(ints) < minimum:
        raise CellsynthError(f"{name} must be one or three whole numbers >= {minimum} (z y x), got {value!r}")
    return ints  # type: ignore[return-value]


def nominal_redundancy(patch: Any, overlap: Any, crop: Any) -> float:
    """Voxels computed per output voxel in the interior of a large volume: ``prod(patch / step)``.

    Examples
    --------
    >>> round(nominal_redundancy((64, 128, 128), (15, 30, 30), (15, 30, 30)), 1)  # the paper's setting
    38.2
    """
    patch, overlap, crop = per_axis(patch, "patch", minimum=1), per_axis(overlap, "overlap"), per_axis(crop, "crop")
    steps = [p - 2 * c - o for p, o, c in zip(patch, overlap, crop)]
    if min(steps) < 1:
        raise CellsynthError(f"overlap {overlap} + 2 x crop {crop} must be smaller than the patch {patch}")
    return float(np.prod([p / s for p, s in zip(patch, steps)]))


# --------------------------------------------------------------------------- the grid


@dataclass(frozen=True)
class PatchGrid:
    """Where the patches of a volume lie and which part of each is kept.

    Attributes
    ----------
    shape
        Volume shape (z, y, x).
    patch
        Patch size fed to the model (a multiple of its size multiple); smaller than the
        requested patch along axes where the volume itself is smaller.
    overlap, crop
        Minimum overlap of kept regions and crop of patch sides facing another patch.
    starts
        Per axis, the patch origins along that axis; the grid is their product.
    pad
        Voxels of padding after the volume's end per axis (volumes smaller than a patch).
    margin
        Voxels mirrored before and after the volume per axis (``mirror_border`` models):
        the patches tile the volume extended by ``margin`` on both sides, ``shape`` is that
        extended shape and :attr:`volume_shape` the volume's own. Patch origins, kept
        regions and weights are in extended coordinates.
    """

    shape: Triple
    patch: Triple
    overlap: Triple
    crop: Triple
    starts: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
    pad: Triple
    margin: Triple = (0, 0, 0)

    @property
    def volume_shape(self) -> Triple:
        """Shape of the volume itself (``shape`` less the mirrored margins)."""
        return tuple(s - 2 * m for s, m in zip(self.shape, self.margin))  # type: ignore[return-value]

    @property
    def n_patches(self) -> int:
        """Number of patches."""
        return math.prod(len(s) for s in self.starts)

    @property
    def origins(self) -> np.ndarray:
        """Patch corners, ``(n_patches, 3)`` int64, in z-row order (z slowest)."""
        return np.array(list(product(*self.starts)), dtype=np.int64).reshape(-1, 3)

    @property
    def redundancy(self) -> float:
        """Voxels the model computes for this volume per output voxel."""
        return self.n_patches * math.prod(self.patch) / math.prod(self.volume_shape)

    def kept(self, axis: int, index: int) -> tuple[int, int]:
        """Kept region ``[lo, hi)`` of the ``index``-th patch along ``axis``, in patch coordinates."""
        starts = self.starts[axis]
        lo = 0 if index == 0 else self.crop[axis]
        hi = self.shape[axis] - starts[index] if index == len(starts) - 1 else self.patch[axis] - self.crop[axis]
        return lo, min(hi, self.patch[axis])

    def borders(self, axis: int) -> np.ndarray:
        """Planes of the volume (its own coordinates) where a kept region starts or ends inside it:
        a seam lies before each."""
        planes = set()
        for i, s in enumerate(self.starts[axis]):
            lo, hi = self.kept(axis, i)
            planes.update({s + lo - self.margin[axis], s + hi - self.margin[axis]})
        return np.array(sorted(p for p in planes if 0 < p < self.volume_shape[axis]), dtype=np.int64)

    def weights_1d(self, axis: int, blend: Blend) -> list[np.ndarray]:
        """Blending weight of each patch along ``axis``: length ``patch``, zero outside the kept region."""
        starts = self.starts[axis]
        result = []
        for i, s in enumerate(starts):
            lo, hi = self.kept(axis, i)
            n = hi - lo
            ramp_lo = starts[i - 1] + self.kept(axis, i - 1)[1] - (s + lo) if i > 0 else 0
            ramp_hi = s + hi - (starts[i + 1] + self.kept(axis, i + 1)[0]) if i < len(starts) - 1 else 0
            w = np.zeros(self.patch[axis], np.float64)
            w[lo:hi] = _window(n, ramp_lo, ramp_hi, blend)
            result.append(w)
        return result

    def weight_sum_1d(self, axis: int, blend: Blend) -> np.ndarray:
        """Sum of all patches' weights along ``axis`` over the volume (length ``shape[axis]``)."""
        total = np.zeros(self.shape[axis] + self.pad[axis], np.float64)
        for s, w in zip(self.starts[axis], self.weights_1d(axis, blend)):
            total[s:s + self.patch[axis]] += w
        return total[: self.shape[axis]]


def _window(n: int, ramp_lo: int, ramp_hi: int, blend: Blend) -> np.ndarray:
    """A 1D weight over a kept region of ``n`` voxels; flat towards sides without a neighbour."""
    j = np.arange(n) + 0.5
    if blend == "constant":
        return np.ones(n)
    if blend == "linear":
        # Complementary ramps across each overlap: neighbouring weights sum to exactly 1.
        w = np.ones(n)
        if ramp_lo > 0:
            w = np.minimum(w, j / ramp_lo)
        if ramp_hi > 0:
            w = np.minimum(w, (n - j) / ramp_hi)
        return w
    if blend == "gaussian":  # floored like MONAI's importance map, so corners keep a usable weight
        w = np.maximum(np.exp(-0.5 * ((j - n / 2) / (0.125 * n)) ** 2), 1e-2)
    elif blend == "hann":
        w = 0.5 - 0.5 * np.cos(2 * np.pi * j / n)
    else:
        raise CellsynthError(f"unknown blend {blend!r}; use one of {', '.join(BLENDS)}")
    half = n // 2
    if ramp_lo == 0:  # volume border: no neighbour to hand over to, keep full weight
        w[:half] = w[half]
    if ramp_hi == 0:
        w[half:] = w[half]
    return w


def make_grid(
    shape: Any, patch: Any = DEFAULT_PATCH, overlap: Any = DEFAULT_OVERLAP, crop: Any = DEFAULT_CROP,
    size_multiple: Any = 1, margin: Any = 0,
) -> PatchGrid:
    """Lay out patches over a volume.

    Parameters
    ----------
    shape
        Volume shape (z, y, x).
    patch
        Patch size in voxels. A side that is not a multiple of ``size_multiple`` is rounded
        down to one, with a warning. Along axes where the volume is smaller, the patch
        shrinks to the volume rounded up to the multiple and the input is padded.
    overlap
        Minimum overlap of the kept regions of neighbouring patches, in voxels.
    crop
        Voxels dropped from every patch side that faces another patch.
    size_multiple
        The model's size multiple (int or per axis). Patch origins are multiples of it where
        possible, which keeps strided networks' outputs identical across tilings.
    margin
        Voxels mirrored on both sides of the volume per axis before tiling (see
        :class:`PatchGrid`); usually the crop, so that the volume border is cropped too.

    Raises
    ------
    CellsynthError
        If ``overlap + 2 * crop`` does not leave a positive step inside the patch.

    Examples
    --------
    >>> grid = make_grid((20, 100, 100), patch=(16, 64, 64), overlap=2, crop=4)
    >>> grid.starts
    ((0, 4), (0, 36), (0, 36))
    """
    margin = per_axis(margin, "margin")
    shape = tuple(s + 2 * m for s, m in zip(per_axis(shape, "volume shape", minimum=1), margin))
    patch = per_axis(patch, "patch", minimum=1)
    overlap = per_axis(overlap, "overlap")
    crop = per_axis(crop, "crop")
    multiple = per_axis(size_multiple, "size multiple", minimum=1)
    adjusted = tuple(max(m, p // m * m) for p, m in zip(patch, multiple))
    if adjusted != patch:
        warnings.warn(f"patch {patch} adjusted to {adjusted}: the model needs sides that are multiples of "
                      f"{multiple}", UserWarning, stacklevel=2)
        patch = adjusted  # type: ignore[assignment]
    for axis, (length, p, o, c, m) in enumerate(zip(shape, patch, overlap, crop, multiple)):
        if length <= p:  # only axes split into several patches have interior sides
            continue
        if o + 2 * c >= p:
            raise CellsynthError(f"overlap {overlap} + 2 x crop {crop} must be smaller than the patch {patch} "
                                 "on every axis; reduce --overlap or --crop, or enlarge --patch")
        if p - 2 * c - o < m and length - p > p - 2 * c - o:
            raise CellsynthError(f"the patch step along {'zyx'[axis]} (patch - 2 x crop - overlap = {p - 2 * c - o}) "
                                 f"is below the model's size multiple {m}: patches cannot be placed; enlarge --patch "
                                 f"(e.g. {4 * m}) or reduce --crop and --overlap")
    eff, starts, pad = [], [], []
    for length, p, o, c, m in zip(shape, patch, overlap, crop, multiple):
        if length <= p:
            size = -(-length // m) * m
            eff.append(size)
            starts.append((0,))
            pad.append(size - length)
        else:
            eff.append(p)
            starts.append(_axis_starts(length, p, p - 2 * c - o, m))
            pad.append(0)
    return PatchGrid(shape, tuple(eff), overlap, crop, tuple(starts), tuple(pad), margin)  # type: ignore[arg-type]


def _axis_starts(length: int, patch: int, step: int, multiple: int) -> tuple[int, ...]:
    """Evenly spread patch origins from 0 to ``length - patch``, multiples of ``multiple``, gaps <= ``step``.

    Needs ``step >= multiple`` (or a single gap); :func:`make_grid` checks it. Where no even
    spread of multiples works, the origins are the multiples every ``step // multiple *
    multiple`` voxels, then the last one.
    """
    span = length - patch
    for n in range(-(-span // step) + 1, span // multiple + 3):
        starts = [min(span, round(i * span / (n - 1)) // multiple * multiple) for i in range(n)]
        starts[-1] = span
        if all(0 < b - a <= step for a, b in pairwise(starts)):
            return tuple(starts)
    stride = step // multiple * multiple
    return (*range(0, span, stride), span)


# --------------------------------------------------------------------------- inference


def default_tiling(model: Any, patch: Any = None) -> tuple[Triple, Triple, Triple]:
    """Patch, overlap and crop for ``model``.

    The patch is ``patch``, else the model's ``default_patch``, else :data:`DEFAULT_PATCH`.
    Per axis, where the model's halo is at most 1/4 of the patch, the crop is the halo:
    stitching is then exact and needs no overlap. Otherwise (a large receptive field such
    as a U-Net's) the crop is 1/8 of the patch and the kept regions overlap by 1/16 of it,
    which is seamless by :func:`cellsynth.evaluate.metrics.seam_metric` (``benchmarks/bench_tiling.py``); for the
    default patch this gives :data:`DEFAULT_OVERLAP` and :data:`DEFAULT_CROP`.
    """
    if patch is None:
        patch = getattr(model, "default_patch", DEFAULT_PATCH)
    patch = per_axis(patch, "patch", minimum=1)
    halo = per_axis(getattr(model, "halo", 0), "halo")
    exact = [4 * h <= p for h, p in zip(halo, patch)]
    crop = tuple(h if e else p // 8 for h, p, e in zip(halo, patch, exact))
    overlap = tuple(0 if e else max(1, p // 16) for p, e in zip(patch, exact))
    return patch, overlap, crop  # type: ignore[return-value]


def check_device(device: Any) -> Any:
    """Return ``torch.device(device)``, refusing devices this installation cannot use."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise CellsynthError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CellsynthError(f"device {device} is not available (no CUDA GPU for this torch); use --device cpu")
    return dev


def tile_grid(model: Any, shape: Any, patch: Any = None, overlap: Any = None, crop: Any = None) -> PatchGrid:
    """The grid :func:`synthesize_tiled` uses: given sizes, or :func:`default_tiling` for the rest;
    mirrored margins of the crop's size for models with ``mirror_border``."""
    default_patch, default_overlap, default_crop = default_tiling(model, patch)
    crop = per_axis(default_crop if crop is None else crop, "crop")
    multiple = per_axis(getattr(model, "size_multiple", 1), "size multiple", minimum=1)
    # margins of whole multiples keep the patch origins of strided networks on the volume's own grid
    margin = tuple(-(-c // m) * m for c, m in zip(crop, multiple)) if getattr(model, "mirror_border", False) else 0
    return make_grid(shape, default_patch, default_overlap if overlap is None else overlap, crop, multiple, margin)


DEFAULT_WORKING_BYTES_PER_VOXEL = 64
"""Memory a model needs per voxel of a patch while it runs, where it does not say
(``working_bytes_per_voxel``): about sixteen float32 temporaries."""


@dataclass(frozen=True)
class TilingMemory:
    """How :func:`synthesize_tiled` uses memory, and about how much (bytes).

    Attributes
    ----------
    batch_size
        Patches per forward pass.
    lookahead
        Whether the next z-row of inputs is read while the current one is computed.
    flush_planes
        Output planes normalised and written at a time.
    nbytes
        The estimated peak besides the inputs and the output.
    """

    batch_size: int
    lookahead: bool
    flush_planes: int
    nbytes: int


def tiling_memory(grid: PatchGrid, batch_size: int, model: Any = None, memory_budget: int | None = None,
                  out: Any = None) -> TilingMemory:
    """The memory plan of :func:`synthesize_tiled`, within ``memory_budget`` bytes where given.

    The parts: the accumulation window (``patch[0]`` planes of float32), the input slab of a
    z-row of patches (mask and positional map; two with lookahead), the planes written at a
    time, and a batch of patches with the model's working memory
    (``model.working_bytes_per_voxel``); for a chunked output ``out``, a row of its chunks
    along z, kept until it is complete. Without a budget: ``batch_size``, lookahead, and a
    whole window written at once. With one, the batch, the lookahead and the planes written
    at a time shrink until the plan fits (the result of the physics renderer does not depend
    on them; a network's changes in the last bits).

    Raises
    ------
    CellsynthError
        If even one patch, one slab and one plane do not fit in the budget.
    """
    plane = grid.shape[1] * grid.shape[2]
    window, slab, flush_plane = grid.patch[0] * plane * 4, grid.patch[0] * plane * 5, plane * 10
    chunks = getattr(out, "chunks", None)
    window += int(chunks[0]) * plane * np.dtype(out.dtype).itemsize if chunks else 0  # the output's chunk row
    per_voxel = getattr(model, "working_bytes_per_voxel", DEFAULT_WORKING_BYTES_PER_VOXEL)
    per_patch = math.prod(grid.patch) * (4 * 4 + per_voxel)  # inputs, outputs (twice), working memory
    batch = max(1, min(batch_size, grid.n_patches))
    if memory_budget is None:
        return TilingMemory(batch, True, grid.patch[0], window + 2 * slab + grid.patch[0] * flush_plane
                            + batch * per_patch)
    least = window + slab + flush_plane + per_patch
    if least > memory_budget:
        raise CellsynthError(f"synthesis with patches of {'x'.join(map(str, grid.patch))} voxels over planes of "
                             f"{grid.shape[1]}x{grid.shape[2]} needs at least {format_bytes(least)}, more than "
                             f"the memory budget of {format_bytes(memory_budget)}; raise the budget or use a "
                             "smaller --patch")
    room = memory_budget - least
    batch = min(batch, 1 + room // per_patch)
    room -= (batch - 1) * per_patch
    lookahead = room >= slab
    room -= slab if lookahead else 0
    flush = int(min(grid.patch[0], 1 + room // flush_plane))
    return TilingMemory(int(batch), lookahead, flush, int(memory_budget - room + (flush - 1) * flush_plane))


def synthesize_tiled(
    model: Any, mask: Any, positional: Any, *,
    patch: Any = None, overlap: Any = None, crop: Any = None, blend: Blend = "linear",
    batch_size: int = 4, device: Any = "cpu", stitch_device: Any = None, autocast: bool = False,
    out: Any = None, memory_budget: int | None = None, progress: bool | None = None,
) -> Any:
    """Run ``model`` patch by patch over a volume and stitch the outputs seamlessly.

    Parameters
    ----------
    model
        A :class:`cellsynth.render.model.SynthesisModel` (torch modules are put in eval mode).
    mask, positional
        Structure mask (0/1) and positional map (Eq. 1), (Z, Y, X); numpy or zarr arrays.
    patch, overlap, crop
        Per-axis sizes in voxels; None takes :func:`default_tiling`.
    blend
        One of :data:`BLENDS`.
    batch_size
        Patches per forward pass. Patches are stitched in a fixed order, so the result does
        not depend on it beyond the model's own rounding: bit for bit for the physics
        renderer, within about 1e-6 for convolution networks (whose CPU kernels block
        differently per batch size).
    device
        Where the model runs (``"cpu"``, ``"cuda"``, ...).
    stitch_device
        Where the output is accumulated; by default ``device``.
    autocast
        Run the model under bfloat16 autocast.
    out
        Array (numpy or zarr) of the volume's shape to write into, float (values in [0, 1])
        or uint8/uint16 (scaled to the full range); by default a new float32 numpy array.
    memory_budget
        Bytes the tiling may hold at a time besides the inputs and the output (for on-disk
        volumes): the batch, the lookahead and the planes written at a time are chosen to
        fit (:func:`tiling_memory`). None: ``batch_size``, as fast as possible.
    progress
        Progress bar: None (default) on a terminal only, True always, False never.

    Returns
    -------
    The output array (``out`` if given), values in [0, 1].
    """
    import torch

    shape = tuple(int(s) for s in mask.shape)
    if tuple(positional.shape) != shape:
        raise CellsynthError(f"mask {shape} and positional map {tuple(positional.shape)} must have the same shape")
    if batch_size < 1:
        raise CellsynthError(f"batch size must be at least 1, got {batch_size}")
    if blend not in BLENDS:
        raise CellsynthError(f"unknown blend {blend!r}; use one of {', '.join(BLENDS)}")
    grid = tile_grid(model, shape, patch, overlap, crop)
    margin = np.array(grid.margin)
    if out is None:
        out = np.zeros(shape, np.float32)
    elif tuple(out.shape) != shape:
        raise CellsynthError(f"output array shape {tuple(out.shape)} does not match the volume {shape}")
    device = check_device(device)
    stitch = check_device(stitch_device) if stitch_device is not None else device
    if isinstance(model, torch.nn.Module):
        model.eval()
    plan = tiling_memory(grid, batch_size, model, memory_budget, out)
    stitcher = _Stitcher(grid, blend, out, stitch, plan.flush_planes)
    origins = grid.origins
    with _Prefetcher(grid, mask, positional, plan.lookahead) as slabs, \
            torch.inference_mode(), \
            progress_bar(total=grid.n_patches, progress=progress, desc="synthesis", unit="patch") as bar:
        for batch in _batches(grid, plan.batch_size):
            inputs = torch.empty((len(batch), 2, *grid.patch), dtype=torch.float32)
            for k, (row, iy, ix) in enumerate(batch):
                slabs.fill(inputs[k], row, iy, ix)
            inputs = inputs.to(device, non_blocking=True)
            corners = torch.as_tensor(origins[[_flat(grid, b) for b in batch]] - margin, device=device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                pred = model(inputs, corners)
            if tuple(pred.shape) != (len(batch), 1, *grid.patch):
                raise CellsynthError(f"the model returned shape {tuple(pred.shape)} for input {tuple(inputs.shape)}; "
                                     "it must return (N, 1, Z, Y, X)")
            del inputs
            pred = pred.to(stitch, torch.float32)
            for k, index in enumerate(batch):
                stitcher.add(index, pred[k, 0])
            bar.update(len(batch))
        stitcher.finish()
    return out


def _flat(grid: PatchGrid, index: tuple[int, int, int]) -> int:
    return (index[0] * len(grid.starts[1]) + index[1]) * len(grid.starts[2]) + index[2]


def _batches(grid: PatchGrid, batch_size: int):
    indices = list(product(*(range(len(s)) for s in grid.starts)))
    for i in range(0, len(indices), batch_size):
        yield indices[i:i + batch_size]


class _Prefetcher:
    """Reads the input slab of each z-row (mask and positional map), one row ahead, in a thread."""

    def __init__(self, grid: PatchGrid, mask: Any, positional: Any, lookahead: bool = True) -> None:
        self.grid, self.mask, self.positional, self.lookahead = grid, mask, positional, lookahead
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.futures: dict[int, Any] = {}
        self.row, self.slab = -1, None

    def __enter__(self) -> _Prefetcher:  # noqa: PYI034 (Python 3.10 has no typing.Self)
        self.futures[0] = self.pool.submit(self._read, 0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _read(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """The slab of z-row ``row`` over the whole extended y-x plane; mirrored margins and
        padding are the volume reflected at its border (as ``numpy.pad(mode="reflect")``)."""
        g = self.grid
        z0 = g.starts[0][row]
        if not any(g.pad) and not any(g.margin):
            return np.asarray(self.mask[z0:z0 + g.patch[0]]), np.asarray(self.positional[z0:z0 + g.patch[0]],
                                                                          dtype=np.float32)
        z, y, x = (_reflect(np.arange(start, start + size) - m, n) for start, size, m, n in
                   zip((z0, 0, 0), (g.patch[0], g.shape[1] + g.pad[1], g.shape[2] + g.pad[2]), g.margin,
                       g.volume_shape))
        first, last = int(z.min()), int(z.max()) + 1
        mask = np.asarray(self.mask[first:last])[np.ix_(z - first, y, x)]
        pos = np.asarray(self.positional[first:last], dtype=np.float32)[np.ix_(z - first, y, x)]
        return mask, pos

    def fill(self, target: Any, row: int, iy: int, ix: int) -> None:
        """Copy the patch's mask and positional map into ``target`` (2, Z, Y, X)."""
        import torch

        if row != self.row:
            self.slab = None  # the old slab goes before the new one comes
            self.slab = self.futures.pop(row).result() if row in self.futures else self._read(row)
            self.row = row
            if self.lookahead and row + 1 < len(self.grid.starts[0]):
                self.futures[row + 1] = self.pool.submit(self._read, row + 1)
        g = self.grid
        y0, x0 = g.starts[1][iy], g.starts[2][ix]
        region = (slice(None), slice(y0, y0 + g.patch[1]), slice(x0, x0 + g.patch[2]))
        mask, pos = self.slab
        target[0].copy_(torch.from_numpy(mask[region]))
        target[1].copy_(torch.from_numpy(pos[region]))


def _reflect(index: np.ndarray, n: int) -> np.ndarray:
    """Indices into an axis of length ``n`` for positions reflected at its ends (edge not repeated).

    Examples
    --------
    >>> _reflect(np.arange(-3, 7), 4)
    array([3, 2, 1, 0, 1, 2, 3, 2, 1, 0])
    """
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    index = np.abs(index) % period
    return np.where(index >= n, period - index, index)


class _Stitcher:
    """Accumulates weighted patch outputs in a window of ``patch[0]`` planes and writes
    finished planes to the output, normalized by the (separable) weight sum."""

    def __init__(self, grid: PatchGrid, blend: Blend, out: Any, device: Any, flush_planes: int | None = None) -> None:
        import torch

        self.grid, self.writer, self.device = grid, _ChunkWriter(out), device
        self.flush_planes = flush_planes or grid.patch[0]
        w1 = [[torch.as_tensor(w, dtype=torch.float32, device=device) for w in grid.weights_1d(a, blend)]
              for a in range(3)]
        self.w1 = w1
        self.norm_z = torch.as_tensor(1.0 / grid.weight_sum_1d(0, blend), dtype=torch.float32, device=device)
        self.norm_yx = torch.as_tensor(np.outer(1.0 / grid.weight_sum_1d(1, blend), 1.0 / grid.weight_sum_1d(2, blend)),
                                       dtype=torch.float32, device=device)
        self.acc = torch.zeros((grid.patch[0], *grid.shape[1:]), dtype=torch.float32, device=device)
        self.base = 0  # volume plane held in acc[0]
        self.row = 0

    def add(self, index: tuple[int, int, int], pred: Any) -> None:
        g = self.grid
        row, iy, ix = index
        if row != self.row:
            self._flush(g.starts[0][row] + g.kept(0, row)[0])
            self.row = row
        (zl, zh), (yl, yh), (xl, xh) = (g.kept(a, i) for a, i in enumerate(index))
        z0, y0, x0 = g.starts[0][row], g.starts[1][iy], g.starts[2][ix]
        weight = (self.w1[0][row][zl:zh, None, None] * self.w1[1][iy][None, yl:yh, None]
                  * self.w1[2][ix][None, None, xl:xh])
        self.acc[z0 + zl - self.base:z0 + zh - self.base, y0 + yl:y0 + yh, x0 + xl:x0 + xh] += \
            pred[zl:zh, yl:yh, xl:xh] * weight

    def _flush(self, until: int) -> None:
        """Write planes ``[base, until)`` (the volume's part of them) to the output and shift the window."""
        k = until - self.base
        if k <= 0:
            return
        (mz, my, mx), (nz, ny, nx) = self.grid.margin, self.grid.volume_shape
        first, last = max(self.base, mz), min(until, mz + nz)
        for low in range(first, last, self.flush_planes):  # a few planes at a time: bounded temporaries
            high = min(low + self.flush_planes, last)
            planes = self.acc[low - self.base:high - self.base, my:my + ny, mx:mx + nx]
            planes = planes * self.norm_z[low:high, None, None] * self.norm_yx[my:my + ny, mx:mx + nx]
            self.writer.write(slice(low - mz, high - mz), planes.clamp_(0.0, 1.0).cpu().numpy())
            del planes
        for plane in range(self.acc.shape[0] - k):  # shift the window plane by plane: no temporary copy of it
            self.acc[plane].copy_(self.acc[plane + k])
        self.acc[-k:] = 0.0
        self.base = until

    def finish(self) -> None:
        self._flush(self.grid.shape[0])


class _ChunkWriter:
    """Writes finished planes to the output; into a chunked (zarr) output only whole chunk rows
    along z at a time, buffered until complete, because a partial write makes zarr read, decode
    and re-encode every chunk it touches (several copies of each)."""

    def __init__(self, out: Any) -> None:
        self.out = out
        dtype = np.dtype(out.dtype)
        if dtype.kind != "f" and dtype not in (np.uint8, np.uint16):
            raise CellsynthError(f"cannot write an image into a {dtype} array; use float32, uint16 or uint8")
        chunks = getattr(out, "chunks", None)
        self.step = int(chunks[0]) if chunks else None
        self.buffer = np.zeros((self.step, *out.shape[1:]), dtype) if self.step else None
        self.start = 0  # volume plane in buffer[0]

    def write(self, planes: slice, values: np.ndarray) -> None:
        values = _convert(values, np.dtype(self.out.dtype))
        if self.buffer is None:
            self.out[planes] = values
            return
        z = planes.start
        while z < planes.stop:  # planes arrive in order, each once
            end = min(planes.stop, self.start + self.step)
            self.buffer[z - self.start:end - self.start] = values[z - planes.start:end - planes.start]
            if end == min(self.start + self.step, self.out.shape[0]):
                self.out[self.start:end] = self.buffer[:end - self.start]
                self.start = end
            z = end


def _convert(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.uint16:
        return image_to_uint16(values)
    if dtype == np.uint8:
        return np.round(values * 255.0).astype(np.uint8)
    return values
