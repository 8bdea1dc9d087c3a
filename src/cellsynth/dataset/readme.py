"""The README.md of a data set: what it is, how it was made, how to load it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cellsynth import io
from cellsynth.dataset.sample import image_name
from cellsynth.dataset.seeds import SPLIT_NAMES


def write_readme(root: Path, parameters: Mapping[str, Any], count: int, fractions: Sequence[float]) -> None:
    from cellsynth import __version__

    kind, voxel = parameters["kind"], parameters["voxel_size"]
    alphas = parameters["synthesize"]["alpha"]
    images = ", ".join(f"`{image_name(a, alphas)}.tif` (alpha = {a:g} µm)" for a in alphas)
    params_json = json.dumps(io._jsonable(parameters), indent=2)
    description = parameters.get("description", "").strip().rstrip(".")
    other = f"; `ds.image(0, alpha={alphas[-1]:g})` for another level" if len(alphas) > 1 else ""
    text = f"""# Synthetic 3D fluorescence microscopy data set ({kind})

{count} fully annotated synthetic volumes made by cellsynth {__version__}: simulated {kind} masks
and synthetic microscope images that fit them voxel for voxel (Eschweiler et al., PLoS ONE 16(12):
e0260509, 2021).{f" {description}." if description else ""}

- Volumes are (Z, Y, X) = {tuple(parameters['shape'])} voxels of {tuple(voxel)} µm (z, y, x).
- Images: {images}, made by the `{parameters['synthesize']['model']}` model. Alpha is the
  positional-conditioning length of Eq. 1: smaller alpha means stronger intensity decay with
  depth (poorer quality). Images are uint16 (0-65535 stands for 0-1).

## Files

- `samples/sample_NNNN/`: `labels.tif` (instance labels, uint16, 0 = background), `mask.tif` (the
  structure the generator saw: {kind}, 0/1), `foreground.tif` (the organism, 0/1), `positions.csv`
  (one row per cell), the image(s), and `sample.json` (all parameters and seeds).
- `splits.csv`: train / val / test assignment ({', '.join(f'{n} {f:g}' for n, f in zip(SPLIT_NAMES, fractions))}).
- `dataset.json`: the parameters below, the package version, each sample's seed and state.
- `log.jsonl`: timings and errors of the runs that made the data set.

## How it was made

Sample `i` was simulated from the numpy seed `SeedSequence({parameters['seed']}, spawn_key=(i, 0))`
and synthesised with the seed `synthesis_seed` recorded in its `sample.json` (drawn from
`spawn_key=(i, 1)`). With the same cellsynth version, this command makes the same files byte
for byte (except `log.jsonl`), whatever the number of workers:

```bash
cellsynth dataset --preset THIS_FOLDER/dataset.json --count {count} --seed {parameters['seed']} --out COPY
```

Parameters:

```json
{params_json}
```

## How to load it

- Fiji: File > Open any `.tif`; it is an ImageJ hyperstack with the voxel size in µm
  (Image > Properties).
- napari, with the scale:

```python
import napari, cellsynth
ds = cellsynth.load_dataset("THIS_FOLDER")
viewer = napari.Viewer()
viewer.add_image(ds.image(0), scale=ds.voxel_size)
viewer.add_labels(ds[0].labels, scale=ds.voxel_size)
```

- Python and PyTorch:

```python
import cellsynth
ds = cellsynth.load_dataset("THIS_FOLDER")
sample = ds[0]                      # labels, mask, foreground, voxel_size, positions, metadata
image = ds.image(0)                 # float32 in [0, 1]{other}
train = ds.split("train")
patches = train.patches((32, 64, 64))   # a PyTorch Dataset of random (image, labels) patches
```
"""
    with io.atomic_path(root / "README.md") as tmp:
        tmp.write_text(text)
