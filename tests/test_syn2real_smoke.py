"""The Syn2Real benchmark (benchmarks/syn2real.py) end to end on tiny data with 2 training steps:
data made and exported per synthesis model, every arm trained and scored on the held-out real
part, results resumable, table written. StarDist (nuclei) runs only where it is installed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "syn2real.py"


@pytest.fixture(scope="module")
def syn2real():
    spec = importlib.util.spec_from_file_location("syn2real", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_run_scores_every_arm_and_resumes(syn2real, shared_data, tmp_path, torch_one_thread, capsys):
    args = ["--out", str(tmp_path), "--smoke", "--part", "membranes", "--families", "ovule",
            "--models", "default", "physics"]
    syn2real.main(args)
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    default = rows[0]["default_model"]
    arms = {r["arm"] for r in rows}
    assert arms == {f"Syn:{m}" for m in {default, "physics"}} | {"Real", f"Mix:{default}"}
    assert len(rows) == len(arms) and all(r["family"] == "ovule" and r["seed"] == 0 for r in rows)
    for r in rows:
        assert 0 <= r["f1"] <= 1 and 0 <= r["iou_membrane"] <= 1 and 0 <= r["iou_centroid"] <= 1
        assert r["tp"] + r["fn"] > 0  # the held-out real crop has cells
    (export,) = (tmp_path / "data").glob("arabidopsis_ovule_membranes-physics-*-plantseg")
    assert sorted(p.parent.name for p in export.rglob("*.h5")) == ["train", "val"]
    table = (tmp_path / "table.md").read_text()
    assert all(f"| ovule | {arm}" in table for arm in arms)
    capsys.readouterr()
    syn2real.main(args)  # everything is done: nothing is trained again
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == len(rows)
    assert '"part"' not in capsys.readouterr().out


def test_table_gives_mean_spread_and_ratio_to_real(syn2real):
    rows = [{"part": "nuclei", "family": "nuclei", "arm": arm, "seed": s, "train_s": 10.0, "default_model": "physics",
             "f1": f1, "ap": f1 / 2, "matched_iou": 0.7}
            for arm, values in (("Real", (0.8, 0.6)), ("Syn:physics", (0.6, 0.4))) for s, f1 in enumerate(values)]
    table = syn2real.table(rows)
    # F1 mean 0.5, sd 0.1 (population); AP half of it; ratio 0.5 / 0.7 = 0.71
    assert ("| nuclei | Syn:physics (= default) | 2 | 0.500 ± 0.100 | 0.250 ± 0.050 | 0.700 ± 0.000 | 0.71 | 10 |"
            in table)
    assert "| nuclei | Real | 2 | 0.700 ± 0.100 |" in table
