"""The generators shipped in the package: small, their model cards tell the truth about them,
`default` follows the unpaired benchmark's choice in models/defaults.json, and they synthesise."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

import cellsynth
from cellsynth.gan.checkpoints import read_generator
from cellsynth.render.gan import GeneratorModel
from cellsynth.render.physics import PhysicsRenderer
from cellsynth.render.registry import default_model_name, load_model
from cellsynth.synthesis import synthesize_image

MODELS = Path(cellsynth.__file__).parent / "models"
KINDS = ("nuclei", "membranes")
REQUIRED_WINS = {"zncc": 1.0, "histogram_distance": -1.0, "spectrum_distance": -1.0}
"""The paired scores a model card's verdict compares with physics (+1: higher is better)."""


def test_shipped_models_are_small():
    files = [MODELS / f"{kind}.pt" for kind in KINDS]
    assert all(f.is_file() for f in files)
    assert sum(f.stat().st_size for f in files) <= 20e6


def _card_fields(card: str) -> dict[str, str]:
    """``- name: value`` lines of a model card."""
    return dict(re.findall(r"^- ([a-z ]+?): (.+)$", card, flags=re.MULTILINE))


@pytest.mark.parametrize("kind", KINDS)
def test_model_card_describes_the_shipped_file(kind):
    """The card states the data, step, network, loss weights and alpha/beta stored in the model file."""
    card = (MODELS / f"{kind}.md").read_text()
    record = read_generator(MODELS / f"{kind}.pt")
    training, fields = record["training"], _card_fields(card)
    assert {Path(p).name for p in record["data"]} == set(re.findall(r"^- `([^`]+\.h5)`: ", card, flags=re.MULTILINE))
    assert fields["steps"].split()[0] == str(record["step"])
    network = record["network"]
    assert re.search(rf"generator width {network['width']}, depth {network['depth']}, noise injection "
                     rf"{network['noise']}; loss weights adversarial {training['w_adv']}, identity "
                     rf"{training['w_identity']}, paired L1 {training['w_paired']}; lr G {training['lr_g']}, "
                     rf"D {training['lr_d']}", card)
    assert f"alpha = {record['alpha']} µm, beta = {record['beta']} µm" in card
    assert f"The last {training['holdout']:.0%} of each volume along {training['holdout_axis']} was held out" in card


@pytest.mark.parametrize("kind", KINDS)
def test_model_card_scores_and_verdict_are_those_of_the_scores_file(kind):
    """Every number in the card's table is the scores file's, and its verdict follows from them."""
    card = (MODELS / f"{kind}.md").read_text()
    scores = json.loads((MODELS / f"{kind}.scores.json").read_text())
    header = re.search(r"^\| file \| model \| (.+) \|$", card, flags=re.MULTILINE).group(1).split(" | ")
    table = {(m.group(1), m.group(2)): [float(v) for v in m.group(3).split(" | ")]
             for m in re.finditer(r"^\| (\S+\.h5) \| (generator|physics) \| (.+) \|$", card, flags=re.MULTILINE)}
    assert len(table) == 2 * len(scores)
    for entry in scores:
        for model in ("generator", "physics"):
            assert table[entry["file"], model] == pytest.approx([entry[model][m] for m in header], abs=5e-5)
        verdict = re.search(rf"^- `{re.escape(entry['file'])}`: the generator (.+)\.$", card, flags=re.MULTILINE).group(1)
        lost = [m for m, sign in REQUIRED_WINS.items() if not sign * (entry["generator"][m] - entry["physics"][m]) > 0]
        if lost:
            assert verdict.startswith(f"does NOT beat physics on {', '.join(lost)}")
        else:
            assert verdict == "beats physics on all three required scores"


def test_default_follows_the_unpaired_benchmark():
    """defaults.json names, for every family, the candidate that its own scores make the winner,
    and `default` loads that model."""
    from cellsynth.evaluate.preset_benchmark import choose_default
    from cellsynth.families import FAMILIES

    record = json.loads((MODELS / "defaults.json").read_text())
    assert set(record["families"]) == set(FAMILIES)
    for family, entry in record["families"].items():
        assert entry["model"] == choose_default(entry["scores"], entry["candidates"])
        assert default_model_name(entry["kind"], family) == entry["model"]
        model = load_model("default", entry["kind"], family=family)
        assert isinstance(model, PhysicsRenderer if entry["model"] == "physics" else GeneratorModel)
    for kind, name in record["kinds"].items():
        assert default_model_name(kind) == name


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
