"""Speed of ``cellsynth calibrate`` (the target: a 100^3 volume in under 2 minutes on the
2-core development machine).

Calibrates the real volumes of the families in ``../shared/data`` (the 100^3 GoNuclear
nuclei crop first) ``--repeats`` times and prints the median wall time of the whole
calibration and of its last part (rendering the real labels with the fitted and the default
parameters and scoring them, which fits nothing), beside the 120 s target. Reports the load
average, since the machine is shared.

    python benchmarks/bench_calibrate.py [--families arabidopsis_ovule_nuclei] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from cellsynth import io
from cellsynth.families import FAMILIES
from cellsynth.render import calibration

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
TARGET_S = 120.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), help="families to calibrate (default all)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per family (default 3)")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the real volumes (../shared/data)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    scoring = []
    original = calibration.score_calibration

    def timed_scoring(*a, **k):
        start = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            scoring.append(time.perf_counter() - start)

    calibration.score_calibration = timed_scoring
    print(f"{'family':30s} {'shape':>12s} {'whole (s)':>10s} {'scoring (s)':>12s} {'target (s)':>10s}  load")
    for name in args.families:
        fam = FAMILIES[name]
        raw, voxel = io.read_h5(args.data / fam.real_file, "raw")
        labels, _ = io.read_h5(args.data / fam.real_file, "label")
        whole = []
        scoring.clear()
        for _ in range(args.repeats):
            start = time.perf_counter()
            calibration.calibrate_renderer(raw, labels, voxel or fam.voxel_size, fam.kind, progress=False)
            whole.append(time.perf_counter() - start)
        load = os.getloadavg()[0]
        print(f"{name:30s} {'x'.join(map(str, raw.shape)):>12s} {statistics.median(whole):10.1f} "
              f"{statistics.median(scoring):12.1f} {TARGET_S:10.0f}  {load:.1f}")


if __name__ == "__main__":
    main()
