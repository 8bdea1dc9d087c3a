"""Reproduce the generators shipped in ``src/cellsynth/models/``: one per family, judged from simulated masks.

    python scripts/train_shipped.py train  FAMILY [--steps N] [--run runs/FAMILY]
    python scripts/train_shipped.py select FAMILY [--run runs/FAMILY] [--count 3]
    python scripts/train_shipped.py export FAMILY [--run runs/FAMILY] [--step S] [--to DIR]

A family (``cellsynth.families``) is a real volume and the preset that mimics it; its
generator trains on the first 75 % along y of the real volume (the recipe
``configs/FAMILY.yaml``, with the preset's simulated masks) and never sees the last 25 %.

``train`` runs ``cellsynth train`` with the recipe (resumable: run it again to continue).
``select`` scores every generator the run kept with the unpaired realism benchmark
(``cellsynth.evaluate.realism``) from masks simulated with the preset (data set seed
``SELECTION_SEED``, not the training pool's), against the **training part** of the real
volume, and writes ``RUN/selection.json``; the chosen step has the lowest
:func:`selection_score`. The held-out part plays no part in the choice.
``export`` ships the chosen generator as ``src/cellsynth/models/FAMILY.pt`` and scores it, on
the **held-out part** only, beside the physics renderer (with the preset's ``renderer:``
where it has one) and the real-vs-real floor: the unpaired benchmark and the artifact check
from simulated masks (data set seed ``REPORT_SEED``), paired raw and band-passed scores on
the held-out real masks, synthesis speed, and ADA's ``p`` over training. It writes
``FAMILY.benchmark.json`` and the model card ``FAMILY.md`` beside the weights.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "src" / "cellsynth" / "models"
DATA = ROOT.parent / "shared" / "data"
SELECTION_SEED = 1000
REPORT_SEED = 2000
DISTANCES = ("histogram_w1", "spectrum", "kid")
CNR_TOLERANCE = 0.3
"""Acceptance of issue 17: the CNR from simulated masks within 30 % of the real volume's."""


# ---------------------------------------------------------------------- data


def family_data(name: str) -> dict[str, Any]:
    """The family's preset, recipe and real volume (image, labels, voxel size, training and held-out slices)."""
    import yaml

    from cellsynth import dataset, io
    from cellsynth.families import FAMILIES
    from cellsynth.gan.data import split_regions

    family = FAMILIES[name]
    preset = dataset.load_preset(name)
    recipe = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())
    raw, voxel = io.read_h5(DATA / family.real_file, "raw")
    labels, _ = io.read_h5(DATA / family.real_file, "label")
    train, held = split_regions(raw.shape, recipe["holdout"], recipe["holdout_axis"])
    return {"family": family, "preset": preset, "recipe": recipe, "raw": raw, "labels": labels,
            "voxel": tuple(voxel or family.voxel_size), "train": train, "held": held}


def real_volume(data: dict[str, Any], part: str):
    """The real volume's training or held-out part as a benchmark volume (with its labels for the CNR)."""
    from cellsynth.evaluate.realism import realism_volume

    region = data[part]
    return realism_volume(data["raw"][region], data["voxel"], kind=data["preset"]["kind"],
                          labels=data["labels"][region],
                          membrane_thickness_um=data["preset"]["simulate"].get("membrane_thickness"),
                          name=f"{data['family'].real_file} ({part})")


def family_model(data: dict[str, Any], spec: str, seed: int = 0):
    """Load ``spec`` for the family: ``"physics"`` with the preset's calibrated ``renderer:``
    (where it has one), else a generator file."""
    from cellsynth.render.registry import load_model

    preset = data["preset"]
    renderer = preset.get("renderer") if spec == "physics" else None
    return load_model(spec, preset["kind"], voxel_size=tuple(preset["voxel_size"]), seed=seed, renderer=renderer)


def render_simulated(data: dict[str, Any], models: dict[str, Any], count: int, seed: int):
    """Simulate ``count`` preset samples (data set seed ``seed``) and render each with every model.

    Returns ``({name: [RealismVolume]}, {name: [image]}, {name: [seconds]})``.
    """
    from cellsynth import dataset
    from cellsynth.dataset.presets import simulate_arguments
    from cellsynth.evaluate.realism import realism_volume
    from cellsynth.simulate.pipeline import simulate_sample
    from cellsynth.synthesis import synthesize_image

    preset = data["preset"]
    kind, shape, voxel = preset["kind"], tuple(preset["shape"]), tuple(preset["voxel_size"])
    volumes: dict[str, list] = {m: [] for m in models}
    images: dict[str, list] = {m: [] for m in models}
    seconds: dict[str, list] = {m: [] for m in models}
    for index in range(count):
        simulation_seed, synthesis_seed = dataset.sample_seeds(seed, index)
        sample = simulate_sample(kind, shape, voxel, np.random.default_rng(simulation_seed), progress=False,
                                 **simulate_arguments(preset["simulate"]))
        for name, spec in models.items():
            model = family_model(data, spec, synthesis_seed)
            start = time.perf_counter()
            image = synthesize_image(sample.mask, sample.foreground, voxel, model=model, kind=kind, progress=False)
            seconds[name].append(time.perf_counter() - start)
            images[name].append((image, sample.mask))
            volumes[name].append(realism_volume(image, voxel, mask=sample.mask, foreground=sample.foreground,
                                                name=f"{name} {index}"))
    return volumes, images, seconds


# ---------------------------------------------------------------------- choosing a step


def selection_score(row: dict[str, float], floor: dict[str, float], real_cnr: float) -> float:
    """Lower is better: the mean of the three distances each in units of the floor, plus the
    excess of the CNR's relative error over the acceptance tolerance (in the same units, x10)."""
    distances = [row[k] / max(floor[k], 1e-6) for k in DISTANCES]
    cnr_error = abs(row["cnr"] / real_cnr - 1) if row.get("cnr") is not None else 1.0
    return float(np.mean(distances) + 10 * max(0.0, cnr_error - CNR_TOLERANCE))


def select(name: str, run: Path, count: int) -> dict[str, Any]:
    """Benchmark every kept generator of ``run`` on the training part; write and return the choice."""
    from cellsynth.evaluate.realism import FLOOR, format_table, realism_benchmark

    data = family_data(name)
    generators = sorted((run / "generators").glob("step_*.pt"))
    models = {f.stem: str(f) for f in generators} | {"physics": "physics"}
    volumes, _, _ = render_simulated(data, models, count, SELECTION_SEED)
    result = realism_benchmark(volumes, [real_volume(data, "train")], progress=False)
    result.pop("curves")
    print(format_table(result))
    rows, floor = result["rows"], result["rows"][FLOOR]
    scores = {m: selection_score(rows[m], floor, result["real_cnr"]) for m in models}
    best = min((m for m in models if m != "physics"), key=scores.get)
    choice = {"family": name, "part": "train", "count": count, "seed": SELECTION_SEED, "scores": scores,
              "chosen": best, "step": int(best.split("_")[1]), "rows": rows, "real_cnr": result["real_cnr"]}
    (run / "selection.json").write_text(json.dumps(choice, indent=2) + "\n")
    print(f"chosen: {best} (score {scores[best]:.3f}; physics {scores['physics']:.3f})")
    return choice


# ---------------------------------------------------------------------- the held-out report


def paired_heldout(data: dict[str, Any], generator: Path) -> dict[str, dict[str, float]]:
    """Raw and band-passed paired scores of the generator and physics on the held-out real masks."""
    from cellsynth.conditioning import organism_from_labels
    from cellsynth.evaluate.metrics import band_passed_metrics, paired_metrics
    from cellsynth.simulate.annotations import structure_mask
    from cellsynth.synthesis import synthesize_image

    kind, voxel, held = data["preset"]["kind"], data["voxel"], data["held"]
    thickness = data["preset"]["simulate"].get("membrane_thickness")
    mask = structure_mask(data["labels"], kind, voxel, **({"membrane_thickness_um": thickness} if thickness else {}))
    organism = organism_from_labels(data["labels"], voxel)
    real = data["raw"][held].astype(np.float32)
    scores = {}
    for label, spec in (("generator", str(generator)), ("physics", "physics")):
        model = family_model(data, spec)
        image = synthesize_image(mask, organism, voxel, model=model, kind=kind, progress=False)[held]
        raw_scores = paired_metrics(real, image, voxel_size=voxel)
        scores[label] = {"zncc": raw_scores["zncc"], "ssim": raw_scores["ssim"],
                         **band_passed_metrics(real, image, voxel_size=voxel)}
    return scores


def ada_trace(run: Path, points: int = 9) -> list[dict[str, float]]:
    """ADA's p (and r) at evenly spaced logged steps of the run."""
    with open(run / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    picks = np.unique(np.linspace(0, len(rows) - 1, points).round().astype(int))
    return [{"step": int(rows[i]["step"]), "p": float(rows[i]["p"]), "r": float(rows[i]["r"])} for i in picks]


def speed(data: dict[str, Any], generator: Path, repeats: int = 3) -> dict[str, float]:
    """Median seconds (and voxels per second) to render one preset-sized volume, generator and physics."""
    from cellsynth import dataset
    from cellsynth.dataset.presets import simulate_arguments
    from cellsynth.simulate.pipeline import simulate_sample
    from cellsynth.synthesis import synthesize_image

    preset = data["preset"]
    shape, voxel = tuple(preset["shape"]), tuple(preset["voxel_size"])
    sample = simulate_sample(preset["kind"], shape, voxel, np.random.default_rng(dataset.sample_seeds(REPORT_SEED, 0)[0]),
                             progress=False, **simulate_arguments(preset["simulate"]))
    out = {}
    for label, spec in (("generator", str(generator)), ("physics", "physics")):
        times, cpu = [], []
        for _ in range(repeats):
            model = family_model(data, spec)
            start, start_cpu = time.perf_counter(), time.process_time()
            synthesize_image(sample.mask, sample.foreground, voxel, model=model, kind=preset["kind"], progress=False)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        out[f"{label}_s"] = statistics.median(times)
        out[f"{label}_voxels_per_s"] = float(np.prod(shape)) / statistics.median(times)
        out[f"{label}_cpu_s"] = statistics.median(cpu)
    out["shape"] = list(shape)
    return out


def export(name: str, run: Path, step: int | None, count: int, folder: Path = MODELS) -> None:
    """Ship the chosen generator, score it on the held-out part, write its benchmark and model card.

    ``folder`` other than the package's models folder scores a candidate without shipping it.
    """
    import torch

    from cellsynth import io
    from cellsynth.evaluate.artifacts import artifact_check
    from cellsynth.evaluate.realism import realism_benchmark

    data = family_data(name)
    if step is None:
        step = json.loads((run / "selection.json").read_text())["step"]
    source = run / "generators" / f"step_{step:07d}.pt"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.pt"
    with io.atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    models = {"generator": str(target), "physics": "physics"}
    volumes, images, seconds = render_simulated(data, models, count, REPORT_SEED)
    result = realism_benchmark(volumes, [real_volume(data, "held")], progress=False)
    result.pop("curves")
    real_held = data["raw"][data["held"]]
    artifacts = {m: [artifact_check(image, real_held, data["preset"]["voxel_size"], data["voxel"])
                     for image, _ in images[m]] for m in models}
    report = {
        "family": name, "preset": name, "part": "held-out (last 25 % along y)", "count": count, "seed": REPORT_SEED,
        "step": step, "run": str(run), "rows": result["rows"], "real_cnr": result["real_cnr"],
        "artifacts": {m: {"flagged": sum(a["flagged"] for a in v), "reasons": [a["reasons"] for a in v],
                          "border_band": max(a["border_band"] for a in v)} for m, v in artifacts.items()},
        "paired": paired_heldout(data, target), "speed": speed(data, target), "ada": ada_trace(run),
        "training": torch.load(target, weights_only=True)["training"],
    }
    (folder / f"{name}.benchmark.json").write_text(json.dumps(report, indent=2) + "\n")
    card = model_card(name, data, report, target.stat().st_size)
    with io.atomic_path(folder / f"{name}.md") as tmp:
        tmp.write_text(card)
    print(card)


def acceptance(report: dict[str, Any]) -> dict[str, bool]:
    """Issue 17's acceptance of a family generator from its held-out report: the CNR from simulated
    masks within 30 % of the real one, better than (calibrated) physics on at least two of W1,
    spectrum and KID, no artifact flagged, band-passed ZNCC on the held-out masks at least physics'."""
    gen, phys = report["rows"]["generator"], report["rows"]["physics"]
    wins = sum(gen[k] < phys[k] for k in DISTANCES)
    paired = report["paired"]
    return {"cnr": gen.get("cnr_ratio") is not None and abs(gen["cnr_ratio"] - 1) <= CNR_TOLERANCE,
            "distances": wins >= 2, "artifacts": report["artifacts"]["generator"]["flagged"] == 0,
            "paired": paired["generator"]["zncc_bandpass"] >= paired["physics"]["zncc_bandpass"]}


def model_card(name: str, data: dict[str, Any], report: dict[str, Any], size_bytes: int) -> str:
    """The model card (Markdown): data, recipe, differences from the paper, held-out scores."""
    from cellsynth.evaluate.realism import FLOOR

    t = report["training"]
    rows = report["rows"]
    lines = [f"# Generator of the family `{name}` (`cellsynth/models/{name}.pt`)", "",
             f"Renders {data['preset']['kind']} masks (the structure mask and the positional map, Eq. 1) as images of "
             f"the family's microscope: {data['family'].source}. Use it with the preset `{name}` "
             f"(`cellsynth dataset --preset {name} --model {name}`) or any mask of voxel size "
             f"{' x '.join(f'{v:g}' for v in data['preset']['voxel_size'])} µm.", "",
             "## Data", "",
             f"- real: `{data['family'].real_file}`, the first {1 - t['holdout']:.0%} along {t['holdout_axis']} "
             f"(held out: the rest; no training, selection or tuning used it)",
             f"- simulated: {t['simulated_pool']} annotations of the preset `{t['simulated']}` (seed {t['seed']}), "
             "rendered by the generator and judged against real patches without pairing", "",
             "## Recipe", "",
             f"`configs/{name}.yaml`; reproduce with `python scripts/train_shipped.py train {name}`, "
             f"`select {name}` and `export {name}` (step {report['step']} chosen on the training part).", "",
             f"- generator: 3D U-Net, width {t['width']}, depth {t['depth']}, pixel shuffle with a [1 2 1]/4 filter, "
             f"{t['padding']} padding, noise injection {t['noise']}; discriminator: PatchGAN width {t['d_width']}, "
             f"{t['d_layers']} layers; patch {' x '.join(map(str, t['patch']))}; batch {t['batch']} real + "
             f"{t['batch']} simulated per step",
             f"- losses: LSGAN (adversarial {t['w_adv']} on real masks, {t['w_simulated']} on simulated ones), "
             f"paired L1 {t['w_paired']}, identity {t['w_identity']}, consistency (frozen segmenter, "
             f"{t['segmenter_steps']} steps) {t['w_consistency']}; RAdam, lr G {t['lr_g']}, D {t['lr_d']}; "
             f"weights: moving average, half-life {t['ema_half_life']:g} steps",
             f"- ADA: target r {t['ada_target']}, p moves by at most 1 per {t['ada_images']:g} real images "
             f"(updates every {t['ada_interval']} steps); p over training: "
             + ", ".join(f"{a['p']:.2f} (step {a['step']})" for a in report["ada"]),
             f"- alpha {t['alpha']} µm, beta {t['beta']} µm (synthesis uses them unless told otherwise)",
             f"- file: {size_bytes / 1e6:.2f} MB (fp16 weights)", "",
             "**What differs from the paper:** paired L1 on the real pairs and LSGAN instead of the paper's unpaired "
             "BCE; the identity loss off (weight 0) to save a generator pass on the CPU; masks simulated with the "
             "preset rendered unpaired beside the real ones, with a frozen segmenter as consistency term; ADA's p "
             "moves at a bounded speed (stylegan2-ada) instead of a fixed step per epoch; a small network and a short "
             "training on a 2-core CPU (the paper: 5000 epochs on a GPU).", "",
             f"## Unpaired benchmark from simulated masks (held-out part, {report['count']} samples)", "",
             "Distances to the real held-out part (lower is better), each volume normalized by its 1-99.9 "
             "percentiles; the floor is two halves of the real part.", "",
             "| renderer | W1 | spectrum | KID | CNR | CNR / real |", "|---|---|---|---|---|---|"]
    for label in (FLOOR, "physics", "generator"):
        r = rows[label]
        cnr = "" if r.get("cnr") is None else f"{r['cnr']:.2f}"
        ratio = "" if r.get("cnr_ratio") is None else f"{r['cnr_ratio']:.2f}"
        lines.append(f"| {label} | {r['histogram_w1']:.4f} | {r['spectrum']:.4f} | {r['kid']:.4f} | {cnr} | {ratio} |")
    lines += ["", f"Real CNR {report['real_cnr']:.2f}. Artifact check (spectral peaks the real volume lacks, border "
              "band): " + "; ".join(f"{m}: {a['flagged']} of {report['count']} flagged, border band "
                                    f"{a['border_band']:.3f}" for m, a in report["artifacts"].items()), "",
              "## Paired scores on the held-out real masks", "",
              "Raw ZNCC and SSIM, and after a band pass (difference of Gaussians, 0.5 µm minus 4 µm) on both "
              "images, which removes the ceiling independent noise puts on a pixel score and the shading no mask "
              "predicts.", "", "| renderer | ZNCC | SSIM | ZNCC band-passed | SSIM band-passed |", "|---|---|---|---|---|"]
    for label, s in report["paired"].items():
        lines.append(f"| {label} | {s['zncc']:.3f} | {s['ssim']:.3f} | {s['zncc_bandpass']:.3f} | "
                     f"{s['ssim_bandpass']:.3f} |")
    verdict = acceptance(report)
    wins = [k for k in DISTANCES if rows["generator"][k] < rows["physics"][k]]
    lines += ["", "## Acceptance (issue 17)", "",
              f"- CNR within ±{CNR_TOLERANCE:.0%} of the real held-out part's: "
              f"{'yes' if verdict['cnr'] else 'NO'} (ratio {rows['generator'].get('cnr_ratio') or float('nan'):.2f})",
              f"- better than physics on at least two of W1, spectrum, KID: {'yes' if verdict['distances'] else 'NO'} "
              f"({', '.join(wins) or 'none'})",
              f"- no artifact flagged: {'yes' if verdict['artifacts'] else 'NO'}",
              f"- band-passed ZNCC on the held-out masks at least physics': {'yes' if verdict['paired'] else 'NO'}"]
    sp = report["speed"]
    lines += ["", "## Speed", "",
              f"One {'x'.join(map(str, sp['shape']))} preset volume on this CPU (median of 3, one thread; wall "
              f"clock depends on the machine's load, CPU seconds less): generator {sp['generator_s']:.1f} s "
              f"({sp['generator_voxels_per_s'] / 1e3:.0f} k voxels/s; {sp['generator_cpu_s']:.1f} CPU s), physics "
              f"{sp['physics_s']:.1f} s ({sp['physics_voxels_per_s'] / 1e3:.0f} k voxels/s; {sp['physics_cpu_s']:.1f} "
              "CPU s). Compare models side by side with `benchmarks/bench_synthesis_speed.py`.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("train", "select", "export"))
    parser.add_argument("family", help="a family with a recipe in configs/ (see cellsynth.families)")
    parser.add_argument("--steps", type=int, help="train: total steps (default: the recipe's)")
    parser.add_argument("--run", type=Path, help="run folder (default runs/FAMILY)")
    parser.add_argument("--step", type=int, help="export: this step instead of the selected one")
    parser.add_argument("--to", type=Path, default=MODELS, metavar="DIR",
                        help="export: write weights, benchmark and card here instead of src/cellsynth/models "
                             "(score a candidate without shipping it)")
    parser.add_argument("--count", type=int, default=3, help="simulated samples per benchmark (default 3)")
    args = parser.parse_args()
    run = args.run or ROOT / "runs" / args.family
    if args.action == "train":
        data = family_data(args.family)
        cmd = [sys.executable, "-m", "cellsynth", "train", "--config", str(ROOT / "configs" / f"{args.family}.yaml"),
               "--data", str(DATA / data["family"].real_file), "--out", str(run),
               *(["--steps", str(args.steps)] if args.steps else [])]
        if (run / "checkpoint.pt").is_file():
            cmd.append("--resume")
        os.execv(sys.executable, cmd)  # the trainer replaces this process: killing it leaves no child behind
    elif args.action == "select":
        select(args.family, run, args.count)
    else:
        export(args.family, run, args.step, args.count, args.to)


if __name__ == "__main__":
    main()
