"""The generators shipped in the package: present, small, documented, and they synthesise."""

import json
from pathlib import Path

import numpy as np
import pytest

import cellsynth
from cellsynth.render.gan import GeneratorModel
from cellsynth.render.physics import PhysicsRenderer
from cellsynth.render.registry import beats_physics, load_model
from cellsynth.synthesis import synthesize_image

MODELS = Path(cellsynth.__file__).parent / "models"
KINDS = ("nuclei", "membranes")


def test_shipped_models_are_small_and_have_cards():
    files = [MODELS / f"{kind}.pt" for kind in KINDS]
    assert all(f.is_file() for f in files)
    assert sum(f.stat().st_size for f in files) <= 20e6
    for kind in KINDS:
        card = (MODELS / f"{kind}.md").read_text()
        for needed in ("Data and attribution", "Held-out scores", "zncc", "histogram_distance", "spectrum_distance",
                       "physics", "steps"):
            assert needed in card, (kind, needed)


@pytest.mark.parametrize("kind", KINDS)
def test_default_follows_the_model_card_verdict(kind):
    scores = json.loads((MODELS / f"{kind}.scores.json").read_text())
    expected = GeneratorModel if beats_physics(scores) else PhysicsRenderer
    assert isinstance(load_model("default", kind), expected)


@pytest.mark.parametrize("kind", KINDS)
def test_shipped_model_synthesises_a_small_volume(kind):
    model = load_model(kind, kind)
    assert isinstance(model, GeneratorModel) and model.kind == kind
    mask = np.zeros((16, 48, 48), np.uint8)
    mask[4:12, 10:30, 12:36] = 1
    foreground = np.zeros_like(mask)
    foreground[2:14, 4:44, 4:44] = 1
    voxel = (0.5, 0.25, 0.25)
    image = synthesize_image(mask, foreground, voxel, model=kind, kind=kind, seed=1, progress=False)
    assert image.shape == mask.shape and image.dtype == np.float32
    assert 0 <= image.min() and image.max() <= 1 and image.std() > 0
    again = synthesize_image(mask, foreground, voxel, model=kind, kind=kind, seed=1, progress=False)
    assert np.array_equal(image, again)
    other = "membranes" if kind == "nuclei" else "nuclei"
    with pytest.raises(Exception, match=f"is a {kind} model"):
        load_model(MODELS / f"{kind}.pt", other)
