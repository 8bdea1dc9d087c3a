"""Streaming synthesis: an OME-Zarr mask turned into an OME-Zarr image with bounded memory.

Writes a mask and organism foreground of ``--shape`` (default 256x1024x1024) as OME-Zarr,
then, each in a fresh subprocess whose peak RSS is read from ``getrusage``:

- ``streamed``: ``synthesize_to_file`` from the on-disk arrays into an OME-Zarr image,
  slab by slab, with its multiscale pyramid (physics model), within ``--memory-budget``
  (default 1 GiB, as ``cellsynth synthesize``; the child limits malloc arenas as the command
  does); target: peak RSS under 2 GiB. Run it from an older checkout (``PYTHONPATH``) for the
  baseline before the budget: the child leaves the budget out where the package lacks it;
- ``in memory`` (baseline, ``--baseline``): the same volumes read into numpy first and the
  image written at the end, as a straightforward pipeline would.

    python benchmarks/bench_streaming.py
    python benchmarks/bench_streaming.py --shape 128 512 512 --baseline
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from cellsynth.omezarr import create_image

VOXEL = (1.0, 0.25, 0.25)

CHILD = r"""
import inspect, json, resource, sys, time
import numpy as np, torch
import cellsynth.memory
torch.set_num_threads(int(sys.argv[3]))
getattr(cellsynth.memory, "limit_malloc_arenas", lambda: None)()  # as `cellsynth` does
from cellsynth.io import image_to_uint16, write_zarr
from cellsynth.omezarr import open_image
from cellsynth.synthesis import synthesize_image, synthesize_to_file
work, mode = sys.argv[1], sys.argv[2]
voxel = tuple(json.loads(sys.argv[4]))
budget = {"memory_budget": int(float(sys.argv[5]) * 2**30)} \
    if "memory_budget" in inspect.signature(synthesize_image).parameters else {}
start = time.perf_counter()
mask, _ = open_image(work + "/mask.ome.zarr")
foreground, _ = open_image(work + "/foreground.ome.zarr")
if mode == "streamed":
    synthesize_to_file(work + f"/image_{mode}.ome.zarr", mask, foreground, voxel, model="physics", progress=False,
                       **budget)
else:
    image = synthesize_image(mask[...], foreground[...], voxel, model="physics", progress=False)
    write_zarr(work + f"/image_{mode}.ome.zarr", image_to_uint16(image), voxel)
print(json.dumps({"seconds": time.perf_counter() - start,
                  "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def write_inputs(work: Path, shape: tuple[int, int, int]) -> None:
    """An ellipsoidal organism and a blob pattern inside it, written slab by slab."""
    mask = create_image(work / "mask.ome.zarr", shape, np.uint8, VOXEL)["0"]
    foreground = create_image(work / "foreground.ome.zarr", shape, np.uint8, VOXEL)["0"]
    _, y, x = np.ogrid[:1, : shape[1], : shape[2]]
    for z0 in range(0, shape[0], 32):
        z = np.arange(z0, min(z0 + 32, shape[0]))[:, None, None]
        r2 = ((z - shape[0] / 2) / (0.45 * shape[0])) ** 2 + sum(((g - s / 2) / (0.45 * s)) ** 2
                                                                    for g, s in zip((y, x), shape[1:]))
        fg = (r2 < 1).astype(np.uint8)
        foreground[z0:z0 + len(z)] = fg
        mask[z0:z0 + len(z)] = fg & ((np.sin(z / 3.0) * np.sin(y / 9.0) * np.sin(x / 9.0)) > 0.3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=3, default=[256, 1024, 1024])
    parser.add_argument("--baseline", action="store_true", help="also run the in-memory pipeline")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-budget", type=float, default=1.0, help="GiB (default 1, the command's default)")
    parser.add_argument("--workdir", help="where to write the volumes (default: a temporary folder)")
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="cellsynth-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    shape = tuple(args.shape)
    try:
        write_inputs(work, shape)
        print(f"volume {shape} ({np.prod(shape) / 2**20:.0f} Mi voxels; float32 image alone "
              f"{np.prod(shape) * 4 / 2**30:.2f} GiB), physics model, threads {args.threads}")
        print(f"{'pipeline':12s} {'seconds':>8s} {'peak RSS GiB':>13s}")
        for mode in ["streamed"] + (["in memory"] if args.baseline else []):
            result = subprocess.run([sys.executable, "-c", CHILD, str(work), mode.replace(" ", "_"),
                                     str(args.threads), json.dumps(VOXEL), str(args.memory_budget)],
                                    capture_output=True, text=True, check=False)
            if result.returncode:
                print(f"{mode:12s} failed: {result.stderr.strip().splitlines()[-1]}")
                continue
            stats = json.loads(result.stdout.strip().splitlines()[-1])
            print(f"{mode:12s} {stats['seconds']:8.1f} {stats['peak_rss_gib']:13.2f}")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
