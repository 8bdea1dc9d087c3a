"""3D SSIM and the full evaluate report vs scikit-image's SSIM alone, side by side.

    python benchmarks/bench_ssim.py [--shape 128 512 512] [--repeats 3]

Builds a structured real/synthetic pair (blurred blobs, a depth gradient and noise), then
times, in one run:
- ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1)`` on the normalized float32 images (the
  baseline, single-threaded scipy filters);
- :func:`cellsynth.evaluate.metrics.ssim` (banded float32 filters in BLAS, threads);
- :func:`cellsynth.evaluate.report.evaluate_pair` with its full report (all metrics,
  figures, report.html), from the raw images.
Prints medians and the agreement of the two SSIM values.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
from scipy import ndimage

from cellsynth.intensity import normalize_percentiles


def make_pair(shape: tuple[int, int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    spikes = (rng.random(shape) > 0.9995).astype(np.float32)
    blobs = ndimage.gaussian_filter(spikes, (1.5, 3, 3)) * 200
    depth = np.exp(-np.arange(shape[0]) / shape[0])[:, None, None].astype(np.float32)
    real = blobs * depth + 0.05 * rng.random(shape, dtype=np.float32)
    synthetic = ndimage.gaussian_filter(blobs, 0.7) * depth + 0.05 * rng.random(shape, dtype=np.float32)
    return real.astype(np.float32), synthetic.astype(np.float32)


def timed(fn, repeats: int) -> tuple[float, object]:
    times, value = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), value


def main() -> None:
    from skimage.metrics import structural_similarity

    from cellsynth.evaluate import metrics, report

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=3, default=(128, 512, 512))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    shape = tuple(args.shape)
    real, synthetic = make_pair(shape)
    a, b = normalize_percentiles(real), normalize_percentiles(synthetic)
    print(f"shape {shape}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")

    t_sk, v_sk = timed(lambda: structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                                     use_sample_covariance=False, data_range=1.0), args.repeats)
    t_ours, v_ours = timed(lambda: metrics.ssim(a, b, percentiles=None), args.repeats)
    t_one, _ = timed(lambda: metrics.ssim(a, b, percentiles=None, workers=1), args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        t_rep, results = timed(lambda: report.evaluate_pair(real, synthetic, (0.5, 0.2, 0.2), tmp), args.repeats)
    ref64 = structural_similarity(a.astype(np.float64), b.astype(np.float64), gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False, data_range=1.0)
    print(f"{'what':48s} {'median s':>9s} {'vs skimage':>10s}")
    rows = [("skimage structural_similarity (float32)", t_sk),
            ("cellsynth ssim (threads)", t_ours),
            ("cellsynth ssim (1 thread)", t_one),
            ("cellsynth evaluate_pair + full report", t_rep)]
    for name, t in rows:
        print(f"{name:48s} {t:9.2f} {t_sk / t:9.1f}x")
    print(f"SSIM: skimage float32 {v_sk:.7f}, skimage float64 {ref64:.7f}, cellsynth {v_ours:.7f}, "
          f"|difference| {abs(v_ours - ref64):.1e}")
    print("report metrics:", {k: round(v, 4) for k, v in results.items()})
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
