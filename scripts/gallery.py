"""Make the README gallery: real | default | physics | generators, from simulated masks.

For every preset one sample is simulated exactly as ``cellsynth dataset`` makes it (seed 0)
and rendered by the preset's default model, the physics renderer (with the preset's
calibrated renderer, and before calibration where the preset has one) and every shipped
generator of its kind; a
preset that mimics a real volume family shows that real volume first (``../shared/data``,
see its README for sources and licences). Every column shows the centre xy and xz slices,
cut to one field of view, at one physical scale, each volume normalized by its own 1st and
99.9th percentiles (``cellsynth.evaluate.plots.plot_montage``). Writes
``docs/gallery/<preset>.png``.

Usage::

    python scripts/gallery.py [--out docs/gallery] [--data ../shared/data] [--presets nuclei membranes ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cellsynth import dataset
from cellsynth.evaluate import plots
from cellsynth.evaluate.preset_benchmark import UNCALIBRATED, render_preset
from cellsynth.families import FAMILIES, real_volume
from cellsynth.render.registry import default_model_name, shipped_generators

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gallery")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--presets", nargs="+", default=dataset.preset_names())
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.presets:
        preset = dataset.load_preset(name)
        default = default_model_name(preset["kind"], preset.get("family"))
        uncalibrated = [UNCALIBRATED] if preset.get("renderer") else []  # else physics is that already
        models = list(dict.fromkeys([default, "physics", *uncalibrated, *shipped_generators(preset["kind"])]))
        sets = render_preset(preset, models, count=1)
        columns, voxels = {}, {}
        if preset.get("family") in FAMILIES and (args.data / FAMILIES[preset["family"]].real_file).is_file():
            real = real_volume(preset["family"], args.data)
            columns["real"], voxels["real"] = real.image, real.voxel_size
        physics = "physics (calibrated)" if preset.get("renderer") else "physics"
        titles = {"physics": physics, UNCALIBRATED: "physics before calibration"}
        for model in models:  # the default first; physics once, in the default's column where it is the default
            title = titles.get(model, f"generator {model}")
            if model == default:
                title = f"default: {title}"
            columns[title], voxels[title] = sets[model][0].image, sets[model][0].voxel_size
        path = args.out / f"{name}.png"
        plots.plot_montage(columns, voxels, path, title=f"{name}: centre xy (top) and xz (bottom) slices")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
