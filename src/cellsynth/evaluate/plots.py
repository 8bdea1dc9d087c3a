"""Figures comparing real and synthetic volumes (PNG, axes in µm).

- :func:`plot_slices`: centre xy, xz and yz slices of each image side by side (Fig. 6);
- :func:`plot_profile_spectrum`: the paper's Fig. 7 pair, the centre xz slice integrated
  over z along x, and the power spectrum of that slice;
- :func:`plot_histograms`: intensity histograms;
- :func:`plot_depth_profile`: mean intensity against the distance to the organism
  surface, which shows the positional conditioning (Eq. 1) at work;
- :func:`plot_montage`: centre xy and xz slices of real and synthetic volumes (possibly of
  different voxel sizes) at one physical scale and one display range.

Every function takes a mapping ``{name: volume}`` (e.g. ``{"real": ..., "synthetic": ...}``),
draws with matplotlib's object API (no pyplot state, no display needed) and writes the PNG
atomically. Volumes are shown after the percentile normalization of
:func:`cellsynth.intensity.normalize_percentiles`.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from cellsynth import io
from cellsynth.errors import CellsynthError
from cellsynth.evaluate.metrics import radial_power_spectrum
from cellsynth.intensity import DEFAULT_PERCENTILES, normalize
from cellsynth.io import VoxelSize, check_voxel_size

DPI = 110
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
"""Line colours, in order (repeated beyond ten curves)."""


def _figure(width: float, height: float, **margins: float) -> Any:
    """A figure with fixed margins (a layout engine would draw it twice: slower)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    fig.subplots_adjust(**{"left": 0.1, "right": 0.97, "bottom": 0.14, "top": 0.9, **margins})
    return fig


def _save(fig: Any, path: str | os.PathLike) -> None:
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def voxel_of(voxel_size: VoxelSize | Mapping[str, VoxelSize], name: str) -> VoxelSize:
    """The voxel size of volume ``name``: one size for all, or a mapping name -> size."""
    if isinstance(voxel_size, Mapping):
        return check_voxel_size(voxel_size[name])
    return check_voxel_size(voxel_size)


def _normalized(volumes: Mapping[str, Any], percentiles: Any) -> dict[str, np.ndarray]:
    if not volumes:
        raise CellsynthError("nothing to plot: give at least one volume")
    return {name: normalize(io.check_volume(np.asarray(volume), name), percentiles or None)
            for name, volume in volumes.items()}


def plot_slices(volumes: Mapping[str, Any], voxel_size: VoxelSize | Mapping[str, VoxelSize], path: str | os.PathLike, *,
                percentiles: Any = DEFAULT_PERCENTILES) -> None:
    """Centre xy, xz and yz slices of each volume, one row per volume, in µm.

    Parameters
    ----------
    volumes
        ``{name: (Z, Y, X) volume}``; the rows are drawn in this order.
    voxel_size
        Voxel size (z, y, x) in µm, or a mapping name -> voxel size; slices are drawn with
        their true aspect ratio.
    path
        Output PNG.
    """
    images = _normalized(volumes, percentiles)
    first = next(iter(images))
    vz, vy, vx = voxel_of(voxel_size, first)
    shape = images[first].shape
    z_um, y_um, x_um = shape[0] * vz, shape[1] * vy, shape[2] * vx
    widths = [x_um, x_um, y_um]
    height = 1.2 + 3.2 * len(images) * max(0.35, min(1.0, (y_um + z_um) / (2 * x_um + y_um)))
    fig = _figure(11, height, left=0.06, right=0.98, bottom=0.9 / height, top=1 - 0.4 / height,
                  wspace=0.3, hspace=0.5)
    axes = fig.subplots(len(images), 3, squeeze=False, gridspec_kw={"width_ratios": widths})
    for row, (name, img) in zip(axes, images.items()):
        cz, cy, cx = (s // 2 for s in img.shape)
        vz, vy, vx = voxel_of(voxel_size, name)
        dz, dy, dx = img.shape[0] * vz, img.shape[1] * vy, img.shape[2] * vx
        panels = (
            (img[cz], (0, dx, dy, 0), "x (µm)", "y (µm)", f"{name}: xy, z = {cz * vz:.1f} µm"),
            (img[:, cy], (0, dx, dz, 0), "x (µm)", "z (µm)", f"{name}: xz, y = {cy * vy:.1f} µm"),
            (img[:, :, cx], (0, dy, dz, 0), "y (µm)", "z (µm)", f"{name}: yz, x = {cx * vx:.1f} µm"),
        )
        for ax, (plane, extent, xl, yl, title) in zip(row, panels):
            ax.imshow(plane, cmap="gray", vmin=0, vmax=1, extent=extent, interpolation="nearest")
            ax.set_xlabel(xl)
            ax.set_ylabel(yl)
            ax.set_title(title, fontsize=9)
    _save(fig, path)


def xz_profile(volume: np.ndarray, voxel_size: VoxelSize) -> tuple[np.ndarray, np.ndarray]:
    """Intensity of the centre xz slice summed over z, against x in µm (Fig. 7, left)."""
    vz, _, vx = check_voxel_size(voxel_size)
    plane = np.asarray(volume)[:, volume.shape[1] // 2].astype(np.float64)
    return np.arange(plane.shape[1]) * vx, plane.sum(axis=0) * vz


def xz_spectrum(volume: np.ndarray, voxel_size: VoxelSize, bins: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of the centre xz slice (Fig. 7, right).

    Returns spatial frequencies in cycles/µm (pixel sizes z and x) and the power.
    """
    vz, _, vx = check_voxel_size(voxel_size)
    plane = np.asarray(volume)[:, volume.shape[1] // 2]
    return radial_power_spectrum(plane, (vz, vx), bins=bins)


def plot_profile_spectrum(volumes: Mapping[str, Any], voxel_size: VoxelSize | Mapping[str, VoxelSize], path: str | os.PathLike, *,
                          percentiles: Any = DEFAULT_PERCENTILES) -> None:
    """The paper's Fig. 7: centre xz-slice intensity integrated over z along x, and its
    power spectrum, for each volume."""
    images = _normalized(volumes, percentiles)
    fig = _figure(11, 3.8, left=0.07, right=0.98, wspace=0.25)
    left, right = fig.subplots(1, 2)
    for (name, img), colour in zip(images.items(), itertools.cycle(COLOURS)):
        x, profile = xz_profile(img, voxel_of(voxel_size, name))
        left.plot(x, profile, color=colour, lw=1.2, label=name)
        f, power = xz_spectrum(img, voxel_of(voxel_size, name))
        right.semilogy(f, np.maximum(power, 1e-12), color=colour, lw=1.2, label=name)
    left.set_xlabel("x (µm)")
    left.set_ylabel("intensity integrated over z (µm)")
    left.set_title("centre xz slice: intensity profile", fontsize=10)
    right.set_xlabel("spatial frequency (cycles/µm)")
    right.set_ylabel("power")
    right.set_title("centre xz slice: radially averaged power spectrum", fontsize=10)
    for ax in (left, right):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    _save(fig, path)


def _line_plot(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike, *, what: str,
               xlabel: str, ylabel: str, title: str, log: bool = False, vline: float | None = None) -> None:
    """One curve ``{name: (x, y)}`` per volume on shared axes (``log``: y on a log scale)."""
    if not curves:
        raise CellsynthError(f"nothing to plot: give at least one {what}")
    fig = _figure(6.5, 3.8)
    ax = fig.subplots()
    for (name, (x, y)), colour in zip(curves.items(), itertools.cycle(COLOURS)):
        if log:
            ax.semilogy(x, np.maximum(y, 1e-12), color=colour, lw=1.2, label=name)
        else:
            ax.plot(x, y, color=colour, lw=1.2, label=name)
    if vline is not None:
        ax.axvline(vline, color="k", lw=0.8, ls="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)


def plot_spectra(spectra: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike, *,
                 ylabel: str = "power") -> None:
    """Radially averaged xy power spectra ``{name: (cycles/µm, power)}`` on a log scale."""
    _line_plot(spectra, path, what="spectrum", xlabel="spatial frequency (cycles/µm)", ylabel=ylabel,
               title="xy slices: radially averaged power spectrum", log=True)


def plot_histograms(histograms: Mapping[str, np.ndarray], path: str | os.PathLike) -> None:
    """Intensity histograms (each summing to 1 over equal bins of [0, 1]), log scale."""
    if not histograms:
        raise CellsynthError("nothing to plot: give at least one histogram")
    fig = _figure(6.5, 3.8)
    ax = fig.subplots()
    for (name, hist), colour in zip(histograms.items(), itertools.cycle(COLOURS)):
        hist = np.asarray(hist, dtype=np.float64)
        edges = np.linspace(0.0, 1.0, len(hist) + 1)
        ax.stairs(np.maximum(hist, 1e-9), edges, color=colour, lw=1.2, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("normalized intensity (1st-99.9th percentile -> 0-1)")
    ax.set_ylabel("fraction of voxels")
    ax.set_title("intensity histograms", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)


def depth_profile(image: np.ndarray, foreground: np.ndarray, voxel_size: VoxelSize, *,
                  bin_um: float | None = None, max_voxels: int = 4_000_000,
                  percentiles: Any = DEFAULT_PERCENTILES) -> tuple[np.ndarray, np.ndarray]:
    """Mean intensity against the signed distance to the organism surface.

    Distances come from :func:`cellsynth.conditioning.signed_distance_um` (µm, positive
    inside); where the foreground fills the whole volume, the distance to the volume
    border is used. Volumes above ``max_voxels`` are averaged over blocks first (the profile
    is a smooth curve; this keeps it fast on large images).

    Returns
    -------
    distances, means
        Bin centres in µm and the mean normalized intensity of the voxels in each bin
        (bins without voxels are left out).
    """
    from cellsynth.conditioning import signed_distance_um

    image, foreground = np.asarray(image), np.asarray(foreground)
    if image.shape != foreground.shape:
        raise CellsynthError(f"image {image.shape} and foreground {foreground.shape} differ in shape")
    voxel = np.asarray(check_voxel_size(voxel_size))
    image = normalize(image, percentiles or None)
    factor = _block_factor(image.shape, voxel, max_voxels)
    if any(f > 1 for f in factor):
        image = _block_mean(image, factor)
        foreground = _block_mean(foreground != 0, factor) >= 0.5
        voxel = voxel * factor
    if not foreground.any():
        raise CellsynthError("the organism foreground is empty; no depth profile can be drawn")
    distance = signed_distance_um(foreground, tuple(voxel))
    finite = np.isfinite(distance)
    if not finite.any():  # the foreground fills the volume: measure to the volume border instead
        import edt

        distance = edt.edt(np.ascontiguousarray(foreground != 0), anisotropy=tuple(voxel), black_border=True)
        finite = np.isfinite(distance)
    bin_um = bin_um or float(max(voxel.min(), (distance[finite].max() - distance[finite].min()) / 60))
    index = np.floor(distance[finite] / bin_um).astype(np.int64)
    index -= index.min()
    sums = np.bincount(index, weights=image[finite])
    counts = np.bincount(index)
    keep = counts > 0
    centres = (np.arange(len(counts)) + 0.5) * bin_um + np.floor(distance[finite].min() / bin_um) * bin_um
    return centres[keep], sums[keep] / counts[keep]


def _block_factor(shape: tuple[int, ...], voxel: np.ndarray, max_voxels: int) -> tuple[int, int, int]:
    """Integer block sizes that bring the volume under ``max_voxels``, coarsening the finest axes first."""
    factor = np.ones(3, dtype=int)
    while np.prod(np.asarray(shape) // factor) > max_voxels:
        axis = int(np.argmin(voxel * factor + (np.asarray(shape) // factor <= 1) * 1e9))
        factor[axis] += 1
    return tuple(int(f) for f in factor)  # type: ignore[return-value]


def _block_mean(volume: np.ndarray, factor: tuple[int, int, int]) -> np.ndarray:
    z, y, x = (s // f for s, f in zip(volume.shape, factor))
    fz, fy, fx = factor
    trimmed = volume[:z * fz, :y * fy, :x * fx].astype(np.float32)
    return trimmed.reshape(z, fz, y, fy, x, fx).mean(axis=(1, 3, 5))


def plot_depth_profile(profiles: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | os.PathLike) -> None:
    """Plot profiles from :func:`depth_profile` (negative distances lie outside the organism)."""
    _line_plot(profiles, path, what="depth profile", xlabel="distance to the organism surface (µm, positive inside)",
               ylabel="mean normalized intensity", title="depth profile", vline=0.0)


def plot_montage(volumes: Mapping[str, Any], voxel_size: VoxelSize | Mapping[str, VoxelSize], path: str | os.PathLike,
                 *, percentiles: Any = DEFAULT_PERCENTILES, title: str | None = None) -> None:
    """Centre xy and xz slices of each volume side by side, at one physical scale.

    Every volume is normalized by its own percentiles and shown on the display range
    [0, 1]. The slices are cut, about their centres, to the field of view that all
    volumes share (the smallest extent in µm along each axis), so every panel shows the
    same area at the same scale.

    Parameters
    ----------
    volumes
        ``{name: (Z, Y, X) volume}``, one column each (e.g. real, physics, a generator).
    voxel_size
        Voxel size (z, y, x) in µm, or a mapping name -> voxel size (may differ).
    path
        Output PNG.
    title
        Figure title.
    """
    images = _normalized(volumes, percentiles)
    voxels = {name: np.asarray(voxel_of(voxel_size, name)) for name in images}
    fov = np.min([np.asarray(img.shape) * voxels[name] for name, img in images.items()], axis=0)
    width = 2.6 * len(images)
    xy_h, xz_h = fov[1] / fov[2], fov[0] / fov[2]
    height = 0.9 + 2.4 * (xy_h + xz_h)
    fig = _figure(width, height, left=0.5 / width, right=1 - 0.1 / width, bottom=0.45 / height,
                  top=1 - 0.55 / height, wspace=0.15, hspace=0.35)
    axes = fig.subplots(2, len(images), squeeze=False, gridspec_kw={"height_ratios": [xy_h, xz_h]})
    for column, (name, img) in enumerate(images.items()):
        voxel = voxels[name]
        keep = np.maximum(1, np.round(fov / voxel).astype(int))
        start = (np.asarray(img.shape) - keep) // 2
        cz, cy = img.shape[0] // 2, img.shape[1] // 2
        xs = slice(start[2], start[2] + keep[2])
        xy = img[cz, start[1]:start[1] + keep[1], xs]
        xz = img[start[0]:start[0] + keep[0], cy, xs]
        for row, (plane, ylabel) in enumerate(((xy, "y (µm)"), (xz, "z (µm)"))):
            ax = axes[row][column]
            extent = (0, fov[2], fov[0] if row else fov[1], 0)
            ax.imshow(plane, cmap="gray", vmin=0, vmax=1, extent=extent, interpolation="nearest", aspect="equal")
            ax.tick_params(labelsize=7)
            ax.set_xlabel("x (µm)", fontsize=8)
            if column == 0:
                ax.set_ylabel(ylabel, fontsize=8)
        axes[0][column].set_title(name, fontsize=9)
    fig.suptitle(title or "centre xy (top) and xz (bottom) slices, same scale, each 1-99.9 % -> 0-1", fontsize=9)
    _save(fig, path)


def plot_tissue_distributions(distributions: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]],
                              path: str | os.PathLike) -> None:
    """Histograms of per-cell tissue statistics, one panel per statistic.

    Parameters
    ----------
    distributions
        ``{statistic: {name: (values, weights)}}``, e.g. from
        :attr:`cellsynth.evaluate.tissue.Comparison.distributions`; each histogram is
        normalised to unit area (weighted).
    path
        Output PNG.
    """
    panels = {k: v for k, v in distributions.items()
              if any(np.isfinite(values[weights > 0]).any() for values, weights in v.values())}
    if not panels:
        raise CellsynthError("nothing to plot: no per-cell statistic has values")
    fig = _figure(3.2 * len(panels), 3.2, left=0.08, right=0.98, bottom=0.18, wspace=0.35)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (statistic, curves) in zip(axes, panels.items()):
        finite = np.concatenate([values[np.isfinite(values) & (weights > 0)] for values, weights in curves.values()])
        edges = np.histogram_bin_edges(finite, bins=24)
        for (name, (values, weights)), colour in zip(curves.items(), COLOURS):
            keep = np.isfinite(values) & (weights > 0)
            if keep.any():
                hist, _ = np.histogram(values[keep], bins=edges, weights=weights[keep], density=True)
                ax.stairs(hist, edges, color=colour, lw=1.3, label=f"{name} ({int(keep.sum())})")
        ax.set_xlabel(statistic.replace("_um3", " (µm³)").replace("_um", " (µm)").replace("_", " "))
        ax.set_ylabel("density")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    _save(fig, path)


def _label_colours(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """RGB image of a 2D label plane: a random colour per label, black background and walls."""
    lut = np.random.default_rng(seed).uniform(0.25, 1.0, (int(labels.max()) + 1, 3))
    lut[0] = 0.0
    rgb = lut[labels]
    wall = np.zeros(labels.shape, bool)
    for axis in range(2):
        differs = np.diff(labels, axis=axis) != 0
        index = [slice(None)] * 2
        index[axis] = slice(1, None)
        wall[tuple(index)] |= differs
    rgb[wall] = 0.0
    return rgb


def plot_label_slices(volumes: Mapping[str, Any], voxel_size: VoxelSize | Mapping[str, VoxelSize],
                      path: str | os.PathLike, *, extent_um: Any = None) -> None:
    """Centre xy, xz and yz slices of label volumes at one physical scale, one row per volume.

    Each volume is cut to the same field of view (``extent_um`` (z, y, x), by default the
    smallest extent of all), centred, so that cells of the same size look the same size in
    every row; each label gets a random colour, walls between labels are black.

    Parameters
    ----------
    volumes
        ``{name: (Z, Y, X) instance labels}``; rows in this order.
    voxel_size
        Voxel size (z, y, x) in µm, or a mapping name -> voxel size.
    path
        Output PNG.
    extent_um
        Field of view (z, y, x) in µm.
    """
    if not volumes:
        raise CellsynthError("nothing to plot: give at least one label volume")
    sizes = {name: np.asarray(np.shape(v)) * np.asarray(voxel_of(voxel_size, name)) for name, v in volumes.items()}
    field = np.min(list(sizes.values()), axis=0) if extent_um is None else np.asarray(extent_um, dtype=np.float64)
    dz, dy, dx = field
    width = 11.0
    panel = (width * 0.92 - 0.9) / (2 * dx + dy)  # inches per µm across the three panels
    row = max(dy, dz) * panel + 0.75  # the tallest panel and its labels
    height = 0.3 + row * len(volumes)
    fig = _figure(width, height, left=0.06, right=0.98, bottom=0.55 / height, top=1 - 0.3 / height,
                  wspace=0.25, hspace=0.75 / (row - 0.75))
    axes = fig.subplots(len(volumes), 3, squeeze=False, gridspec_kw={"width_ratios": [dx, dx, dy]})
    for row, (name, labels) in zip(axes, volumes.items()):
        voxel = np.asarray(voxel_of(voxel_size, name))
        labels = np.asarray(labels)
        span = np.minimum(np.round(field / voxel).astype(int), labels.shape)
        start = (np.asarray(labels.shape) - span) // 2
        view = labels[tuple(slice(a, a + n) for a, n in zip(start, span))]
        cz, cy, cx = (n // 2 for n in view.shape)
        panels = ((view[cz], (0, span[2] * voxel[2], span[1] * voxel[1], 0), "x (µm)", "y (µm)", "xy"),
                  (view[:, cy], (0, span[2] * voxel[2], span[0] * voxel[0], 0), "x (µm)", "z (µm)", "xz"),
                  (view[:, :, cx], (0, span[1] * voxel[1], span[0] * voxel[0], 0), "y (µm)", "z (µm)", "yz"))
        for ax, (plane, extent, xl, yl, title) in zip(row, panels):
            ax.imshow(_label_colours(plane), extent=extent, interpolation="nearest")
            ax.set_xlim(0, extent[1])
            ax.set_ylim(extent[2], 0)
            ax.set_xlabel(xl, fontsize=8)
            ax.set_ylabel(yl, fontsize=8)
            ax.tick_params(labelsize=7)
            ax.set_title(f"{name}: {title}", fontsize=8)
    _save(fig, path)
