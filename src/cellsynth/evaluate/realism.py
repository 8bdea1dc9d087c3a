"""Unpaired realism benchmark: sets of synthetic volumes against real volumes of one family.

Users render *simulated* masks, for which no real image exists, so realism is judged by
distributions (``design.md``, "Judging realism"). :func:`realism_benchmark` compares each
set of synthetic volumes (one per model) with a set of real volumes, every volume
normalized by its own 1st and 99.9th percentiles to [0, 1]:

``histogram_w1``
    Wasserstein-1 distance between the intensity histograms (256 bins on [0, 1]; each set's
    histogram is the mean of its volumes' histograms). In units of the normalized range.
``spectrum``
    RMS difference of log10 radially averaged power spectral densities of xy planes, on a
    common grid of physical frequencies (cycles/µm), so voxel sizes may differ. Every xy
    plane is Hann-windowed and its mean removed; its PSD ``|FFT|^2 dy dx / sum(w^2)``
    (intensity^2 µm^2) is averaged over the planes of a volume, then over the volumes of a
    set. The grid (:func:`spectrum_grid`) runs in steps of ``df = 1 / L`` from ``2 df`` to
    the lowest Nyquist frequency, ``L`` being the smallest xy side (µm) of all volumes
    compared, so every bin is resolved in every volume. 1 means a factor 10 on average.
``kid``
    KID (cubic polynomial kernel, unbiased) between the filter-bank statistics of random
    patches (:mod:`cellsynth.evaluate.filterbank`), standardized by the real patches. The
    patch is a box of ``patch_um`` µm, cut to the smallest extent of any volume compared;
    each set contributes about ``patches_per_set`` patches, spread evenly over its volumes.
``cnr``
    Structure visibility ``(mean in structure - mean outside) / sd outside`` per volume,
    averaged over the set; ``cnr_ratio`` divides it by the real set's. The structure is the
    simulated mask on the synthetic side and the real labels (nuclei) or the walls between
    labels (membranes, :func:`cellsynth.simulate.annotations.structure_mask`) on the real
    side; "outside" is the rest of the tissue (:func:`realism_volume`).

**The floor.** The same distances between two disjoint halves of every real volume (split
along z, so the xy planes, and with them the spectrum's frequency grid, stay whole):
what two real crops of one family differ by. A score near the floor cannot be told
from real data by this benchmark.

All distances are well defined for small crops: the grid follows the smallest xy side,
the patch the smallest extent, and a volume without structure or background voxels only
drops out of the CNR (it is counted in ``cnr_volumes``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from cellsynth.errors import CellsynthError
from cellsynth.evaluate import filterbank
from cellsynth.evaluate.metrics import intensity_histogram, wasserstein_histograms
from cellsynth.intensity import DEFAULT_PERCENTILES, normalize_percentiles
from cellsynth.io import VoxelSize, check_voxel_size
from cellsynth.progress import progress_bar

HISTOGRAM_BINS = 256
DEFAULT_PATCH_UM: tuple[float, float, float] = (5.0, 5.0, 5.0)
"""Patch size (z, y, x) in µm of the KID features (cut to the smallest volume)."""
PATCHES_PER_SET = 256
"""About this many patches are drawn from each set for the KID."""
MIN_PLANE = 8
"""Smallest xy side (voxels) with a meaningful spectrum."""
FLOOR = "floor (real vs real)"
"""Name of the floor row in the results."""
SCORES = ("histogram_w1", "spectrum", "kid", "cnr", "cnr_ratio")


@dataclass(frozen=True)
class RealismVolume:
    """One volume of a benchmark set.

    Attributes
    ----------
    image
        The image (Z, Y, X), any intensity scale (normalized by the benchmark).
    voxel_size
        Voxel size in µm (z, y, x).
    structure, outside
        Boolean masks of the structure (nuclei or walls) and of the rest of the tissue, for
        the CNR; None where unknown (no CNR for this volume).
    name
        A label for messages and figures.
    """

    image: np.ndarray
    voxel_size: VoxelSize
    structure: np.ndarray | None = None
    outside: np.ndarray | None = None
    name: str = ""

    def crop(self, box: tuple[slice, ...], name: str) -> RealismVolume:
        """The same volume restricted to ``box``."""
        cut = (lambda a: None if a is None else a[box])
        return replace(self, image=self.image[box], structure=cut(self.structure), outside=cut(self.outside),
                       name=name)


def realism_volume(image: Any, voxel_size: VoxelSize, *, kind: str | None = None, labels: Any = None,
                   mask: Any = None, foreground: Any = None, membrane_thickness_um: float | None = None,
                   name: str = "") -> RealismVolume:
    """A benchmark volume with its structure and background regions for the CNR.

    Parameters
    ----------
    image
        The image (Z, Y, X).
    voxel_size
        Voxel size in µm (z, y, x).
    kind
        ``"nuclei"`` or ``"membranes"``: how ``labels`` become a structure.
    labels
        Instance labels of the image (real side). Nuclei: the structure is every labelled
        voxel, outside every other voxel. Membranes: the structure is the walls between
        cells drawn ``membrane_thickness_um`` thick, outside the other labelled voxels.
    mask
        The structure mask itself (synthetic side: the simulated mask); outside is the rest
        of ``foreground`` (default: the whole volume).
    foreground
        The tissue (0/1) for ``mask``.
    membrane_thickness_um
        Wall thickness for membrane labels (default: the simulation's default).
    name
        A label for messages.

    Returns
    -------
    RealismVolume
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise CellsynthError(f"{name or 'image'} must be a 3D (Z, Y, X) volume, got shape {image.shape}")
    voxel = check_voxel_size(voxel_size)
    structure = outside = None
    if mask is not None:
        structure = _same_shape(mask, image, "mask", name) != 0
        inside = np.ones(image.shape, bool) if foreground is None else _same_shape(foreground, image, "foreground",
                                                                                     name) != 0
        outside = inside & ~structure
    elif labels is not None:
        from cellsynth.simulate.annotations import DEFAULT_MEMBRANE_THICKNESS_UM, structure_mask

        labels = _same_shape(labels, image, "labels", name)
        if kind == "nuclei":
            structure = labels != 0
            outside = ~structure
        elif kind == "membranes":
            thickness = membrane_thickness_um or DEFAULT_MEMBRANE_THICKNESS_UM
            structure = structure_mask(labels, "membranes", voxel, membrane_thickness_um=thickness) != 0
            outside = (labels != 0) & ~structure
        else:
            raise CellsynthError(f"labels need kind nuclei or membranes, got {kind!r}")
    return RealismVolume(image, voxel, structure, outside, name)


def _same_shape(array: Any, image: np.ndarray, what: str, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.shape != image.shape:
        raise CellsynthError(f"the {what} {array.shape} of {name or 'the image'} differs from its image "
                             f"{image.shape}; give {what} of the same grid")
    return array


def split_halves(volume: RealismVolume, axis: int = 0) -> tuple[RealismVolume, RealismVolume]:
    """Two disjoint halves of a volume along ``axis`` (z by default)."""
    n = volume.image.shape[axis]
    if n < 2:
        raise CellsynthError(f"{volume.name or 'the volume'} has {n} plane(s) along axis {axis}; "
                             "two disjoint halves need at least 2")
    half = n // 2
    box_a, box_b = [slice(None)] * 3, [slice(None)] * 3
    box_a[axis], box_b[axis] = slice(0, half), slice(half, n)
    return volume.crop(tuple(box_a), f"{volume.name} (first half)"), volume.crop(tuple(box_b),
                                                                                  f"{volume.name} (second half)")


# --------------------------------------------------------------------------- spectrum


def spectrum_grid(volumes: Sequence[RealismVolume]) -> np.ndarray:
    """Edges (cycles/µm) of the common frequency bins of :func:`radial_psd`.

    Bins of width ``df = 1 / L`` from ``2 df`` to the lowest Nyquist frequency of all
    volumes, where ``L`` is the smallest xy side in µm: each bin holds frequency samples
    of every volume, and the lowest frequencies, which a windowed crop cannot resolve,
    are left out.

    Raises
    ------
    CellsynthError
        If a volume has fewer than :data:`MIN_PLANE` voxels along y or x.
    """
    small = [v for v in volumes if min(v.image.shape[1:]) < MIN_PLANE]
    if small:
        raise CellsynthError(f"{small[0].name or 'a volume'} {small[0].image.shape} is too small for a spectrum; "
                             f"give at least {MIN_PLANE} voxels along y and x")
    side = min(min(v.image.shape[1] * v.voxel_size[1], v.image.shape[2] * v.voxel_size[2]) for v in volumes)
    nyquist = min(min(0.5 / v.voxel_size[1], 0.5 / v.voxel_size[2]) for v in volumes)
    df = 1.0 / side
    count = max(1, int(math.floor((nyquist - 2 * df) / df + 1e-9)))
    return 2 * df + df * np.arange(count + 1)


def radial_psd(image: np.ndarray, voxel_size: VoxelSize, edges: np.ndarray) -> np.ndarray:
    """Radially averaged power spectral density of the xy planes of a volume.

    Each plane has its mean removed and is multiplied by a 2D Hann window ``w``; its PSD is
    ``|FFT|^2 dy dx / sum(w^2)`` (so white noise of variance s^2 has PSD ``s^2 dy dx`` at
    any window). The PSD is averaged over the planes and over the frequency samples whose
    radius ``sqrt(fy^2 + fx^2)`` falls in each bin of ``edges`` (cycles/µm).

    Returns
    -------
    numpy.ndarray
        ``len(edges) - 1`` values (intensity^2 µm^2); a bin without samples takes the
        value of its neighbours (linear interpolation).
    """
    _, dy, dx = check_voxel_size(voxel_size)
    planes = np.asarray(image, dtype=np.float32)
    ny, nx = planes.shape[1:]
    window = np.outer(np.hanning(ny + 2)[1:-1], np.hanning(nx + 2)[1:-1]).astype(np.float32)
    planes = planes - planes.mean(axis=(1, 2), keepdims=True)
    power = np.zeros((ny, nx // 2 + 1))
    for start in range(0, len(planes), 16):  # bounded memory for tall volumes
        chunk = np.fft.rfft2(planes[start:start + 16] * window)
        power += (chunk.real**2 + chunk.imag**2).sum(axis=0)
    power *= dy * dx / (float((window.astype(np.float64) ** 2).sum()) * len(planes))
    radius = np.hypot(np.fft.fftfreq(ny, d=dy)[:, None], np.fft.rfftfreq(nx, d=dx)[None, :]).ravel()
    index = np.digitize(radius, edges) - 1
    keep = (index >= 0) & (index < len(edges) - 1)
    sums = np.bincount(index[keep], weights=power.ravel()[keep], minlength=len(edges) - 1)
    counts = np.bincount(index[keep], minlength=len(edges) - 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    filled = counts > 0
    if not filled.any():
        raise CellsynthError(f"no frequency of a {ny}x{nx} plane falls in {edges[0]:.3g}-{edges[-1]:.3g} cycles/µm")
    return np.interp(centres, centres[filled], sums[filled] / counts[filled])


def log_psd_distance(a: np.ndarray, b: np.ndarray) -> float:
    """RMS difference of log10 of two spectra on the same bins."""
    tiny = 1e-20
    return float(np.sqrt(np.mean((np.log10(np.maximum(a, tiny)) - np.log10(np.maximum(b, tiny))) ** 2)))


# --------------------------------------------------------------------------- CNR


def contrast_to_noise(image: np.ndarray, structure: np.ndarray, outside: np.ndarray) -> float | None:
    """``(mean in structure - mean outside) / sd outside``; None where a region is empty
    or the outside is constant."""
    if structure is None or outside is None or not structure.any() or outside.sum() < 2:
        return None
    values = image[outside].astype(np.float64)
    sd = float(values.std())
    if sd <= 0:
        return None
    return (float(image[structure].astype(np.float64).mean()) - float(values.mean())) / sd


# --------------------------------------------------------------------------- the benchmark


def realism_benchmark(synthetic: Mapping[str, Sequence[RealismVolume]], real: Sequence[RealismVolume], *,
                      patch_um: Sequence[float] = DEFAULT_PATCH_UM, patches_per_set: int = PATCHES_PER_SET,
                      seed: int = 0, percentiles: Any = DEFAULT_PERCENTILES, floor: bool = True,
                      progress: bool | None = None) -> dict[str, Any]:
    """Distances of sets of synthetic volumes to a set of real volumes, with the floor.

    Parameters
    ----------
    synthetic
        ``{model name: volumes}``: one set per model (e.g. physics, a generator).
    real
        The real volumes of the family.
    patch_um
        KID patch size (z, y, x) in µm, cut to the smallest extent of all volumes.
    patches_per_set
        About this many KID patches per set.
    seed
        Seed of the patch positions (same seed, same scores).
    percentiles
        The normalization of every volume (low, high).
    floor
        Also compare two disjoint halves (along z) of the real volumes.
    progress
        Progress bar: None (default) on a terminal only, True always, False never.

    Returns
    -------
    dict
        ``rows``: ``{name: {histogram_w1, spectrum, kid, cnr, cnr_ratio, cnr_volumes,
        n_volumes}}`` with the floor first (:data:`FLOOR`) where computed; ``real_cnr``;
        ``curves``: each set's mean histogram and spectrum (for figures); ``definition``:
        the frequency grid, the patch size and the filter bank used.

    Raises
    ------
    CellsynthError
        For empty sets or volumes too small for a spectrum.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> real = [RealismVolume(rng.random((16, 32, 32)), (1.0, 0.5, 0.5))]
    >>> same = [RealismVolume(rng.random((16, 32, 32)), (1.0, 0.5, 0.5))]
    >>> result = realism_benchmark({"noise": same}, real, patch_um=(4, 4, 4), patches_per_set=32)
    >>> result["rows"]["noise"]["spectrum"] < 0.1
    True
    """
    if not real:
        raise CellsynthError("no real volumes given; the benchmark compares with real data of the family")
    sets = {name: list(volumes) for name, volumes in synthetic.items()}
    empty = [name for name, volumes in sets.items() if not volumes]
    if empty:
        raise CellsynthError(f"the synthetic set {empty[0]!r} has no volumes")
    if FLOOR in sets:
        raise CellsynthError(f"{FLOOR!r} is reserved for the floor; name the set otherwise")
    if patches_per_set < 4:
        raise CellsynthError(f"patches_per_set must be at least 4, got {patches_per_set}")
    groups: dict[str, list[RealismVolume]] = {"real": list(real)}
    if floor:
        halves = [split_halves(v) for v in real]
        groups["real (first halves)"] = [a for a, _ in halves]
        groups["real (second halves)"] = [b for _, b in halves]
    groups.update(sets)
    everything = [v for volumes in groups.values() for v in volumes]
    edges = spectrum_grid(everything)
    extent_um = np.min([np.asarray(v.image.shape) * np.asarray(v.voxel_size) for v in everything], axis=0)
    patch = tuple(float(min(p, e)) for p, e in zip(patch_um, extent_um))

    stats: dict[str, dict[str, Any]] = {}
    total = len(everything)
    streams = {"real": 0, "real (first halves)": 1, "real (second halves)": 2}
    with progress_bar(total=total, progress=progress, desc="realism benchmark") as bar:
        for group, volumes in groups.items():
            # every synthetic set draws its patches from one stream: a model's KID does not depend
            # on which other models are listed, nor on their order
            stream = streams.get(group, len(streams))
            per_volume = max(2, math.ceil(patches_per_set / len(volumes)))
            hists, psds, features, cnrs = [], [], [], []
            for i, volume in enumerate(volumes):
                image = normalize_percentiles(volume.image, *percentiles)
                hists.append(intensity_histogram(image, bins=HISTOGRAM_BINS, percentiles=None))
                psds.append(radial_psd(image, volume.voxel_size, edges))
                size = filterbank.patch_voxels(patch, volume.voxel_size)
                size = tuple(min(s, n) for s, n in zip(size, image.shape))
                corners = filterbank.patch_corners(image.shape, size, per_volume, np.random.default_rng([seed, stream, i]))
                features.append(filterbank.filter_bank_features(image, volume.voxel_size, corners, size))
                cnrs.append(contrast_to_noise(image, volume.structure, volume.outside))
                bar.update(1)
            defined = [c for c in cnrs if c is not None]
            stats[group] = {"histogram": np.mean(hists, axis=0), "psd": np.mean(psds, axis=0),
                            "features": np.concatenate(features), "n_volumes": len(volumes),
                            "cnr": float(np.mean(defined)) if defined else None, "cnr_volumes": len(defined)}

    scale = filterbank.standardizer(stats["real"]["features"])

    def row(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        ratio = (b["cnr"] / a["cnr"]) if (a["cnr"] not in (None, 0.0) and b["cnr"] is not None) else None
        return {"histogram_w1": wasserstein_histograms(a["histogram"], b["histogram"]),
                "spectrum": log_psd_distance(a["psd"], b["psd"]),
                "kid": filterbank.kid(a["features"], b["features"], scale),
                "cnr": b["cnr"], "cnr_ratio": ratio, "cnr_volumes": b["cnr_volumes"], "n_volumes": b["n_volumes"]}

    rows = {}
    if floor:
        rows[FLOOR] = row(stats["real (first halves)"], stats["real (second halves)"])
    for name in sets:
        rows[name] = row(stats["real"], stats[name])
    centres = 0.5 * (edges[1:] + edges[:-1])
    return {
        "rows": rows,
        "real_cnr": stats["real"]["cnr"],
        "curves": {name: {"histogram": s["histogram"], "frequency": centres, "psd": s["psd"]}
                   for name, s in stats.items()},
        "definition": {
            "normalization": f"each volume mapped by its own {percentiles[0]:g} and {percentiles[1]:g} "
                             "percentiles to [0, 1], clipped",
            "histogram_bins": HISTOGRAM_BINS,
            "spectrum_cycles_per_um": [float(edges[0]), float(edges[-1])],
            "spectrum_bins": len(edges) - 1,
            "kid_patch_um": list(patch),
            "kid_patches_per_set": patches_per_set,
            "filter_bank": filterbank.describe(),
            "floor": "two disjoint halves along z of every real volume" if floor else None,
            "seed": seed,
        },
    }


def format_table(result: Mapping[str, Any]) -> str:
    """The benchmark's scores as an aligned text table (the floor first, real CNR last)."""
    head = f"{'':28s} {'W1':>8s} {'spectrum':>9s} {'KID':>9s} {'CNR':>7s} {'CNR/real':>9s} {'volumes':>8s}"
    lines = [head]
    for name, r in result["rows"].items():
        cnr = "-" if r["cnr"] is None else f"{r['cnr']:.2f}"
        ratio = "-" if r["cnr_ratio"] is None else f"{r['cnr_ratio']:.2f}"
        lines.append(f"{name[:28]:28s} {r['histogram_w1']:8.4f} {r['spectrum']:9.3f} {r['kid']:9.4f} "
                     f"{cnr:>7s} {ratio:>9s} {r['n_volumes']:8d}")
    real = result.get("real_cnr")
    lines.append(f"real CNR: {'-' if real is None else f'{real:.2f}'}")
    return "\n".join(lines)
