"""Realism reports: metrics.json, PNG figures and a one-page report.html.

:func:`evaluate_pair` compares a synthetic image with the real image it was generated
for (paired metrics plus distribution metrics). :func:`evaluate_unpaired` compares sets
of synthetic volumes (e.g. generated data sets, :func:`dataset_volumes`) with real volumes
of the same family by the unpaired realism benchmark (:mod:`cellsynth.evaluate.realism`),
which needs no voxel correspondence.
"""

from __future__ import annotations

import html
import math
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from cellsynth import __version__, io
from cellsynth.errors import CellsynthError
from cellsynth.evaluate import metrics as M
from cellsynth.evaluate import plots
from cellsynth.evaluate.realism import RealismVolume, realism_benchmark, realism_volume
from cellsynth.intensity import DEFAULT_PERCENTILES
from cellsynth.io import VoxelSize, check_voxel_size
from cellsynth.memory import check_memory
from cellsynth.progress import progress_bar

FIGURES = {
    "slices": ("slices.png", "Centre xy, xz and yz slices (after percentile normalization)."),
    "profile_spectrum": ("profile_spectrum.png",
                         "Fig. 7 of the paper: centre xz slice integrated over z along x, and its power spectrum."),
    "xy_spectra": ("xy_spectra.png", "Radially averaged power spectra of xy slices (the spectrum distance)."),
    "histograms": ("histograms.png", "Intensity histograms (the histogram distance)."),
    "depth_profile": ("depth_profile.png",
                      "Mean intensity against the distance to the organism surface (positional conditioning)."),
}

METRIC_NOTES = {
    "nrmse": "RMSE / range of the real image (lower is better)",
    "nrmse_euclidean": "||real - synthetic|| / ||real|| (lower is better)",
    "ssim": "structural similarity, Gaussian window sigma 1.5 voxels (1 is best)",
    "zncc": "zero-mean normalized cross-correlation (1 is best)",
    "histogram_distance": "Wasserstein-1 distance of the intensity histograms (0 is best)",
    "spectrum_distance": "RMS difference of log10 xy power spectra (0 is best)",
    "kid": "KID-style MMD on hand-crafted texture features, not Inception (0 is best)",
    "seam_metric": "steps on patch borders / steps elsewhere in the synthetic image (about 1: no seams)",
}


def _depth_inputs(volumes: Mapping[str, np.ndarray], voxel_size: VoxelSize,
                  foreground: np.ndarray | None) -> tuple[dict[str, np.ndarray], np.ndarray, VoxelSize]:
    """Block-average large volumes once; estimate the foreground from the first where none is given."""
    from cellsynth.conditioning import foreground_from_image

    voxel = np.asarray(check_voxel_size(voxel_size))
    first = next(iter(volumes.values()))
    factor = plots._block_factor(first.shape, voxel, 1_000_000)
    small = {name: plots._block_mean(v, factor) for name, v in volumes.items()}
    small_voxel = tuple(float(v) for v in voxel * factor)
    if foreground is None:
        fg = foreground_from_image(next(iter(small.values())), small_voxel)
    else:
        fg = plots._block_mean(np.asarray(foreground) != 0, factor) >= 0.5
    return small, fg, small_voxel  # type: ignore[return-value]


EVALUATE_BYTES_PER_VOXEL = 120
"""Peak memory of :func:`evaluate_pair` per voxel of each image (measured: about 110 with the figures)."""


def evaluate_pair(real: Any, synthetic: Any, voxel_size: VoxelSize, report_dir: str | os.PathLike | None = None, *,
                  mask: Any = None, foreground: Any = None, percentiles: Any = DEFAULT_PERCENTILES,
                  inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """All metrics of a synthetic image against its real counterpart, and the report.

    Parameters
    ----------
    real, synthetic
        Volumes of the same shape (Z, Y, X).
    voxel_size
        Voxel size (z, y, x) in µm (axes of the figures, spectra, depth profile).
    report_dir
        Folder for ``metrics.json``, the PNGs and ``report.html``; None computes only.
    mask
        Optional region for the paired and histogram metrics.
    foreground
        Organism region for the depth profile; by default estimated from the real image
        (:func:`cellsynth.conditioning.foreground_from_image`).
    percentiles
        Normalization of both images (None: raw values).
    inputs
        Descriptions of the inputs (file names) recorded in the report.

    Returns
    -------
    dict
        The metrics (``nrmse``, ``nrmse_euclidean``, ``ssim``, ``zncc``,
        ``histogram_distance``, ``spectrum_distance``, ``kid`` and ``seam_metric``
        (:func:`cellsynth.evaluate.metrics.seam_metric`; left out where it is infinite, for
        an image whose only steps lie on patch borders).
    """
    start = time.perf_counter()
    voxel = check_voxel_size(voxel_size)
    M.check_ssim_size(np.shape(real))
    check_memory(EVALUATE_BYTES_PER_VOXEL * 2 * float(np.prod(np.shape(real))), "comparing the two images",
                 "compare smaller crops")
    real, synthetic, mask = M._prepare(real, synthetic, mask, percentiles)
    with ThreadPoolExecutor(2) as background:  # numpy metrics overlap with matplotlib drawing
        metrics = background.submit(M.paired_metrics_details, real, synthetic, mask, voxel_size=voxel,
                                    percentiles=None)
        seams = background.submit(M.seam_metric, synthetic)
        if report_dir is not None:
            volumes = {"real": real, "synthetic": synthetic}
            _volume_figures(report_dir, volumes, voxel)
            small, fg, small_voxel = _depth_inputs(volumes, voxel, foreground)
            depth = {name: plots.depth_profile(v, fg, small_voxel, percentiles=None) for name, v in small.items()}
        results, details = metrics.result()
        seam_value = float(seams.result())
        if math.isfinite(seam_value):  # the ratio is infinite for a seam-only image: not a score
            results["seam_metric"] = seam_value
    if report_dir is not None:
        _finish_report(report_dir, results, voxel, volumes, details["histograms"], details["spectra"], depth,
                       title="Realism report: synthetic vs real (paired)", inputs=inputs or {},
                       seconds=time.perf_counter() - start)
    return results


def _volume_figures(report_dir: str | os.PathLike, volumes: Mapping[str, np.ndarray],
                    voxel: VoxelSize | Mapping[str, VoxelSize]) -> None:
    """The figures drawn from the volumes themselves: slices and the Fig. 7 pair."""
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots.plot_slices(volumes, voxel, out / FIGURES["slices"][0], percentiles=None)
    plots.plot_profile_spectrum(volumes, voxel, out / FIGURES["profile_spectrum"][0], percentiles=None)


def _finish_report(report_dir: str | os.PathLike, results: Mapping[str, Any],
                   voxel: VoxelSize | Mapping[str, VoxelSize], volumes: Mapping[str, np.ndarray],
                   histograms: Mapping[str, np.ndarray], spectra: Mapping[str, tuple[np.ndarray, np.ndarray]],
                   depth: Mapping[str, tuple[np.ndarray, np.ndarray]], *, title: str,
                   inputs: Mapping[str, Any], seconds: float) -> None:
    """The remaining figures, metrics.json and report.html."""
    out = Path(report_dir)
    plots.plot_spectra(spectra, out / FIGURES["xy_spectra"][0])
    plots.plot_histograms(histograms, out / FIGURES["histograms"][0])
    plots.plot_depth_profile(depth, out / FIGURES["depth_profile"][0])
    record = {
        **results,
        "info": {
            "cellsynth_version": __version__,
            "inputs": dict(inputs),
            "voxel_size_um": {k: list(plots.voxel_of(voxel, k)) for k in volumes},
            "normalization": "each image mapped by its own 1st and 99.9th percentiles to [0, 1]",
            "ssim_window": "Gaussian, sigma 1.5 voxels, truncated at 3.5 sigma (11 taps)",
            "kid_features": "hand-crafted filter bank (cellsynth.evaluate.metrics.texture_features), no download",
            "depth_profile_um": {k: {"distance": d, "mean": m} for k, (d, m) in depth.items()},
            "seconds": round(seconds, 3),
        },
    }
    io.write_json(out / "metrics.json", record)
    with io.atomic_path(out / "report.html") as tmp:
        tmp.write_text(_html(title, results, inputs), encoding="utf-8")


def _html(title: str, results: Mapping[str, Any], inputs: Mapping[str, Any]) -> str:
    rows = "\n".join(
        f"<tr><td><b>{html.escape(k)}</b></td><td>{_fmt(v)}</td><td>{html.escape(METRIC_NOTES.get(k, ''))}</td></tr>"
        for k, v in results.items())
    given = "".join(f"<li>{html.escape(str(k))}: <code>{html.escape(str(v))}</code></li>" for k, v in inputs.items())
    figures = _figures_html(FIGURES)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1150px;margin:1em auto;}}table{{border-collapse:collapse}}
td{{border:1px solid #ccc;padding:3px 8px}}img{{max-width:100%}}figure{{margin:1em 0}}</style></head>
<body><h1>{html.escape(title)}</h1>
<ul>{given}</ul>
<table>{rows}</table>
<p>Images are normalized by their own 1st and 99.9th percentiles before every metric. The KID-style
score uses hand-crafted texture features (no network download); compare it only between cellsynth runs.</p>
{figures}
</body></html>
"""


def _figures_html(figures: Mapping[str, tuple[str, str]]) -> str:
    return "\n".join(f'<figure><img src="{name}" alt="{html.escape(caption)}">'
                     f'<figcaption>{html.escape(caption)}</figcaption></figure>' for name, caption in figures.values())


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else html.escape(str(value))


# --------------------------------------------------------------------------- data sets


def dataset_images(dataset_dir: str | os.PathLike, image: str = "image") -> list[Path]:
    """The sample folders of a generated data set that hold image ``image``.

    Uses ``dataset.json`` when present (every listed sample must be complete), else every
    ``samples/*/sample.json``.

    Raises
    ------
    CellsynthError
        If the folder holds no samples, or samples are missing or unfinished.
    """
    root = Path(dataset_dir)
    samples_dir = root / "samples"
    if (root / "dataset.json").is_file():
        from cellsynth.dataset import read_manifest

        names = [s["name"] for s in read_manifest(root)["samples"]]
    elif samples_dir.is_dir():
        names = sorted(p.name for p in samples_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    else:
        raise CellsynthError(f"{root} is not a data set folder (no dataset.json and no samples/); "
                             "give the folder written by `cellsynth dataset`")
    missing = [n for n in names if not (samples_dir / n / "sample.json").is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise CellsynthError(f"{len(missing)} of {len(names)} samples of {root} are missing or unfinished ({shown}); "
                             "finish the data set (re-running `cellsynth dataset` resumes it) and evaluate again")
    if not names:
        raise CellsynthError(f"{root} has no samples; generate some with `cellsynth dataset`")
    paths = [samples_dir / n for n in names]
    lacking = [p.name for p in paths if image not in io.read_json(p / "sample.json").get("files", {})]
    if lacking:
        have = sorted(io.read_json(paths[0] / "sample.json").get("files", {}))
        raise CellsynthError(f"{len(lacking)} samples have no image {image!r} (e.g. {lacking[0]}, which has "
                             f"{', '.join(have)}); choose one with --image")
    return paths


def dataset_volumes(dataset_dir: str | os.PathLike, *, image: str = "image", max_samples: int | None = None,
                    progress: bool | None = None) -> tuple[list[RealismVolume], dict[str, Any]]:
    """The samples of a generated data set as benchmark volumes (image, simulated mask, organism).

    Returns
    -------
    volumes, parameters
        One :class:`~cellsynth.evaluate.realism.RealismVolume` per sample (the simulated
        mask is the structure, the rest of the organism the outside) and the data set's
        parameters (``dataset.json``; empty without one).
    """
    root = Path(dataset_dir)
    paths = dataset_images(root, image)[:max_samples]
    volumes = []
    for path in progress_bar(paths, progress=progress, desc=f"reading {root.name}"):
        sample = io.read_sample(path)
        volume, _ = io.read_volume(path / io.read_json(path / "sample.json")["files"][image])
        volumes.append(realism_volume(volume, sample.voxel_size, mask=sample.mask, foreground=sample.foreground,
                                      name=f"{root.name}/{path.name}"))
    parameters = io.read_json(root / "dataset.json").get("parameters", {}) if (root / "dataset.json").is_file() else {}
    return volumes, parameters


def evaluate_unpaired(synthetic: Mapping[str, Sequence[RealismVolume]], real: Sequence[RealismVolume],
                      report_dir: str | os.PathLike | None = None, *, inputs: Mapping[str, Any] | None = None,
                      **options: Any) -> dict[str, Any]:
    """The unpaired realism benchmark of synthetic sets against real volumes, and its report.

    Parameters
    ----------
    synthetic
        ``{model name: volumes}`` (e.g. from :func:`dataset_volumes`).
    real
        Real volumes of the same family (with labels for the CNR:
        :func:`cellsynth.evaluate.realism.realism_volume`).
    report_dir
        Folder for ``metrics.json``, ``montage.png`` (real | each set: centre xy and xz
        slices at one scale and display range), the spectra and histograms, and
        ``report.html``; None computes only.
    inputs
        Descriptions of the inputs recorded in the report.
    **options
        Passed to :func:`cellsynth.evaluate.realism.realism_benchmark`.

    Returns
    -------
    dict
        The benchmark's result without its curves (``rows`` with the floor first,
        ``real_cnr``, ``definition``).
    """
    start = time.perf_counter()
    result = realism_benchmark(synthetic, real, **options)
    curves = result.pop("curves")
    if report_dir is not None:
        out = Path(report_dir)
        out.mkdir(parents=True, exist_ok=True)
        first = {"real": real[0], **{name: volumes[0] for name, volumes in synthetic.items()}}
        plots.plot_montage({k: v.image for k, v in first.items()}, {k: v.voxel_size for k, v in first.items()},
                           out / UNPAIRED_FIGURES["montage"][0])
        plots.plot_spectra({k: (c["frequency"], c["psd"]) for k, c in curves.items()}, out / UNPAIRED_FIGURES[
            "xy_spectra"][0], ylabel="PSD (normalized intensity² µm²)")
        plots.plot_histograms({k: c["histogram"] for k, c in curves.items()}, out / UNPAIRED_FIGURES["histograms"][0])
        record = {**result, "info": {"inputs": dict(inputs or {}), "seconds": round(time.perf_counter() - start, 3)}}
        io.write_json(out / "metrics.json", record)
        with io.atomic_path(out / "report.html") as tmp:
            tmp.write_text(_unpaired_html(result, inputs or {}), encoding="utf-8")
    return result


UNPAIRED_FIGURES = {
    "montage": ("montage.png", "Real | each synthetic set (first volume): centre xy and xz slices, cut to a common "
                               "field of view, same physical scale, each volume normalized by its own 1st-99.9th "
                               "percentiles and shown on 0-1."),
    "xy_spectra": ("xy_spectra.png", "Mean radially averaged PSD of xy planes per set, on the common frequency "
                                     "grid (the spectrum distance); the real halves give the floor."),
    "histograms": ("histograms.png", "Mean intensity histogram per set (the W1 distance)."),
}


def _unpaired_html(result: Mapping[str, Any], inputs: Mapping[str, Any]) -> str:
    def cell(value: Any, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    rows = "\n".join(
        f"<tr><td><b>{html.escape(name)}</b></td><td>{cell(r['histogram_w1'], 4)}</td><td>{cell(r['spectrum'], 3)}"
        f"</td><td>{cell(r['kid'], 3)}</td><td>{cell(r['cnr'], 2)}</td><td>{cell(r['cnr_ratio'], 2)}</td>"
        f"<td>{r['n_volumes']}</td></tr>" for name, r in result["rows"].items())
    definition = result["definition"]
    given = "".join(f"<li>{html.escape(str(k))}: <code>{html.escape(str(v))}</code></li>" for k, v in inputs.items())
    figures = _figures_html(UNPAIRED_FIGURES)
    lo, hi = definition["spectrum_cycles_per_um"]
    title = "Realism report: synthetic sets vs real volumes (unpaired)"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:1150px;margin:1em auto;}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px}}img{{max-width:100%}}figure{{margin:1em 0}}</style></head>
<body><h1>{title}</h1>
<ul>{given}</ul>
<table><tr><th></th><th>W1</th><th>spectrum</th><th>KID</th><th>CNR</th><th>CNR / real</th><th>volumes</th></tr>
{rows}</table>
<p>Real CNR: {cell(result["real_cnr"], 2)}. The floor compares two disjoint halves (along z) of the real
volumes: a score near it cannot be told from real data by this measure. Lower is better for W1, spectrum
and KID; CNR / real should be near 1.</p>
<p>W1: Wasserstein-1 distance of the intensity histograms after each volume is mapped by its own
1st and 99.9th percentiles to 0-1. Spectrum: RMS difference of log10 radially averaged PSDs of
Hann-windowed xy planes, {definition["spectrum_bins"]} bins from {lo:.3f} to {hi:.3f} cycles/µm.
KID: cubic-kernel MMD of filter-bank statistics (Gaussian, gradient magnitude, Laplacian of Gaussian,
Hessian eigenvalues at {", ".join(f"{s:g}" for s in definition["filter_bank"]["scales_um"])} µm; mean and sd
per patch) of random patches of {" x ".join(f"{p:.2f}" for p in definition["kid_patch_um"])} µm (z, y, x),
standardized by the real patches; hand-crafted features, so compare it only between cellsynth runs.
CNR: (mean in structure - mean outside) / sd outside.</p>
{figures}
</body></html>
"""
