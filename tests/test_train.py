"""GAN data loading and training: the CLI end to end, exact resume, bad input."""

import csv

import h5py
import numpy as np
import pytest
import torch

from cellsynth.cli import main
from cellsynth.gan.data import (
    PatchSampler,
    TrainingVolume,
    find_pairs,
    load_volumes,
    split_regions,
)
from cellsynth.io import write_tiff
from cellsynth.render.gan import load_generator

TINY = ["--patch", "16", "16", "16", "--width", "2", "--depth", "2", "--d-width", "2", "--d-layers", "2",
        "--threads", "1", "--log-every", "1", "--device", "cpu"]


def make_volume(rng, shape=(24, 40, 40), cells=6):
    zz, yy, xx = np.indices(shape)
    labels = np.zeros(shape, np.uint16)
    for i in range(1, cells + 1):
        c = rng.uniform(4, np.array(shape) - 4)
        labels[(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < 16] = i
    raw = (40 + 150 * (labels > 0) + rng.normal(0, 10, shape)).clip(0, 255).astype(np.uint8)
    return raw, labels


def write_h5(path, raw, labels, voxel=(1.0, 1.0, 1.0)):
    with h5py.File(path, "w") as f:
        for name, data in (("raw", raw), ("label", labels)):
            ds = f.create_dataset(name, data=data)
            if voxel is not None:
                ds.attrs["element_size_um"] = voxel
    return path


@pytest.fixture
def h5file(tmp_path, rng):
    return write_h5(tmp_path / "vol.h5", *make_volume(rng))


def train_args(data, out, steps, *extra):
    return ["train", "--data", str(data), "--kind", "nuclei", "--out", str(out), "--steps", str(steps), *TINY, *extra]


def read_log(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------- data


def test_volumes_exclude_the_holdout_part(h5file):
    (vol,) = load_volumes([h5file], "nuclei", holdout=0.25, holdout_axis="y")
    assert vol.image.shape == (24, 30, 40) and vol.mask.shape == vol.positional.shape == vol.image.shape
    train, held = split_regions((24, 40, 40), 0.25, "y")
    assert train[1] == slice(0, 30) and held[1] == slice(30, None)
    with h5py.File(h5file) as f:
        labels = f["label"][()]
    assert np.array_equal(vol.mask, (labels[train] > 0).astype(np.uint8))
    assert vol.image.dtype == np.float32 and 0 <= vol.image.min() and vol.image.max() <= 1


def test_training_organism_is_the_labels_file_organism(tmp_path, rng):
    """The positional map comes from the organism of the training part's labels, as a labels file
    gets at synthesis; the image plays no part (a dark tissue corner stays organism)."""
    from cellsynth.conditioning import organism_from_labels, positional_map

    raw, labels = make_volume(rng, cells=12)
    raw[:, :, :10] = 0  # the image says nothing about the organism
    (vol,) = load_volumes([write_h5(tmp_path / "v.h5", raw, labels)], "nuclei", alpha=20, beta=30)
    train, _ = split_regions(labels.shape, 0.25, "y")
    expected = positional_map(organism_from_labels(labels[train], (1, 1, 1)), (1, 1, 1), 20, 30)
    np.testing.assert_array_equal(vol.positional, expected)
    dense = np.arange(1, 24 * 40 * 40 + 1).reshape(24, 40, 40) // 400 + 1  # cells fill the crop: tissue
    (vol,) = load_volumes([write_h5(tmp_path / "d.h5", raw, dense.astype(np.uint16))], "membranes")
    np.testing.assert_array_equal(vol.positional, 1.0)


def _volume(shape=(20, 24, 24), seed=0):
    rng = np.random.default_rng(seed)
    mask = (rng.random(shape) < 0.1).astype(np.uint8)
    image = mask.astype(np.float32)
    positional = np.broadcast_to(np.linspace(-1, 1, shape[0], dtype=np.float32)[:, None, None], shape).copy()
    return TrainingVolume("v", image, mask, positional, (1.0, 1.0, 1.0))


def test_paired_patches_are_aligned_and_unpaired_are_not():
    vol = _volume()
    paired = PatchSampler([vol], (8, 16, 16), np.random.default_rng(0)).sample(20)
    assert np.array_equal(paired["mask"], paired["image"])
    assert np.array_equal(paired["positional"], paired["image_positional"])
    unpaired = PatchSampler([vol], (8, 16, 16), np.random.default_rng(0), paired=False).sample(20)
    assert not np.array_equal(unpaired["mask"], unpaired["image"])
    assert unpaired["mask"].shape == (20, 1, 8, 16, 16) and unpaired["mask"].dtype == np.float32


def test_foreground_bias_centres_patches_on_structures():
    vol = _volume((16, 64, 64))
    vol.mask[:] = 0
    vol.mask[8, 40, 50] = 1
    sampler = PatchSampler([vol], (8, 8, 8), np.random.default_rng(1), foreground_bias=1.0, flips=False,
                           rotations=False)
    assert all(b[0, 4, 4, 4] == 1 for b in sampler.sample(10)["mask"])
    uniform = PatchSampler([vol], (8, 8, 8), np.random.default_rng(1), foreground_bias=0.0)
    assert uniform.sample(10)["mask"].sum() < 10


def test_rotations_and_flips_cover_the_dihedral_group():
    vol = _volume((8, 8, 8))
    vol.image = np.arange(512, dtype=np.float32).reshape(8, 8, 8)
    sampler = PatchSampler([vol], (8, 8, 8), np.random.default_rng(2))
    seen = {tuple(b[0, 0, 0, :2].tolist()) for b in sampler.sample(200)["image"]}
    assert len(seen) == 8  # 4 rotations x 2 reflections of the yx plane; z never flips


def test_tiff_folder_pairs(tmp_path, rng):
    raw, labels = make_volume(rng)
    for sub in ("images", "labels"):
        (tmp_path / sub).mkdir()
    write_tiff(tmp_path / "images" / "a.tif", raw, (1, 1, 1))
    write_tiff(tmp_path / "labels" / "a.tif", labels, (1, 1, 1))
    assert [p[0] for p in find_pairs([tmp_path])] == ["a"]
    (vol,) = load_volumes([tmp_path], "nuclei")
    assert vol.image.shape == (24, 30, 40)
    write_tiff(tmp_path / "images" / "b.tif", raw, (1, 1, 1))
    with pytest.raises(Exception, match="unmatched: b"):
        find_pairs([tmp_path])


# ---------------------------------------------------------------------- training


def test_cli_trains_end_to_end(h5file, tmp_path):
    out = tmp_path / "run"
    assert main(train_args(h5file, out, 3, "--preview-every", "2", "--checkpoint-every", "2", "--keep-generators")) == 0
    rows = read_log(out / "log.csv")
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    assert all(np.isfinite(float(r[k])) for r in rows for k in ("loss_d", "loss_g_adv", "loss_identity", "p"))
    assert (out / "previews" / "step_0000002.png").is_file() and (out / "run.json").is_file()
    assert sorted(p.name for p in (out / "generators").iterdir()) == ["step_0000002.pt", "step_0000003.pt"]
    model = load_generator(out / "generator.pt", kind="nuclei")
    assert model.info["step"] == 3 and model.default_patch == (16, 16, 16)  # tiles as it was trained
    inputs = torch.rand(1, 2, 8, 16, 16)
    inputs[:, 1] = 1.0  # the map of a tissue crop, as in training
    image = model(inputs, torch.zeros(1, 3, dtype=torch.int64))
    assert image.shape == (1, 1, 8, 16, 16)
    (volume,) = load_volumes([h5file], "nuclei")
    assert model.positional_range == pytest.approx([volume.positional.min(), volume.positional.max()])


def test_a_generator_warns_once_beyond_its_trained_positional_range():
    import warnings

    from cellsynth.gan.networks import UNetGenerator
    from cellsynth.render.gan import GeneratorModel

    model = GeneratorModel(UNetGenerator(width=2, depth=1), "nuclei", info={"positional_range": [0.9, 1.0]})
    inside = torch.ones(1, 2, 4, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(inside, torch.zeros(1, 3, dtype=torch.int64))  # within the range: silent
    outside = inside.clone()
    outside[:, 1] = 0.3  # an organism surface in view of a generator trained on tissue crops
    with pytest.warns(UserWarning, match="beyond the 0.90 .. 1.00"):
        model(outside, torch.zeros(1, 3, dtype=torch.int64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(outside, torch.zeros(1, 3, dtype=torch.int64))  # once only


def test_resume_equals_uninterrupted_run(h5file, tmp_path):
    extra = ["--checkpoint-every", "2", "--preview-every", "0", "--ada-p", "0.5", "--patches-per-image", "1",
             "--ema-half-life", "3"]
    assert main(train_args(h5file, tmp_path / "a", 4, *extra)) == 0
    assert main(train_args(h5file, tmp_path / "b", 2, *extra)) == 0
    assert main(train_args(h5file, tmp_path / "b", 4, *extra, "--resume")) == 0
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 4
    for net in ("generator", "generator_ema", "discriminator"):
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), (net, key)
    assert torch.equal(a["ada"]["p"], b["ada"]["p"])
    losses = lambda rows: [(r["step"], r["loss_d"], r["loss_g_adv"], r["p"]) for r in rows]
    assert losses(read_log(tmp_path / "a" / "log.csv")) == losses(read_log(tmp_path / "b" / "log.csv"))


@pytest.fixture
def tiny_preset(tmp_path):
    """A nuclei preset of the test volume's voxel size (1 µm), small enough to simulate in a blink."""
    path = tmp_path / "tiny.yaml"
    path.write_text("kind: nuclei\nshape: [16, 32, 32]\nvoxel_size: [1.0, 1.0, 1.0]\n"
                    "simulate:\n  organism: box\n  radius: 3.0\n  count: 6\n"
                    "synthesize:\n  model: physics\n  alpha: [100]\n  beta: 100\n")
    return path


def test_training_on_simulated_masks_resumes_exactly(h5file, tiny_preset, tmp_path):
    """Simulated masks, the frozen segmenter and their random streams are part of the exact resume."""
    extra = ["--checkpoint-every", "2", "--preview-every", "3", "--ada-p", "0.5", "--simulated", str(tiny_preset),
             "--simulated-pool", "2", "--w-consistency", "2", "--segmenter-steps", "3", "--ada-interval", "1"]
    assert main(train_args(h5file, tmp_path / "a", 4, *extra)) == 0
    assert main(train_args(h5file, tmp_path / "b", 2, *extra)) == 0
    assert main(train_args(h5file, tmp_path / "b", 4, *extra, "--resume")) == 0
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    for net in ("generator", "discriminator", "segmenter"):
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), (net, key)
    rows = read_log(tmp_path / "a" / "log.csv")
    losses = lambda rows: [(r["step"], r["loss_d"], r["loss_simulated"], r["loss_consistency"], r["p"]) for r in rows]
    assert losses(rows) == losses(read_log(tmp_path / "b" / "log.csv"))
    assert all(float(r["loss_simulated"]) > 0 and float(r["loss_consistency"]) > 0 for r in rows)
    import matplotlib.image

    preview = matplotlib.image.imread(tmp_path / "a" / "previews" / "step_0000003.png")
    assert preview.shape[1] == 5 * 16  # mask | real | generated | simulated mask | its image


def test_simulated_masks_must_fit_the_training_data(h5file, tiny_preset, tmp_path, capsys):
    other = tmp_path / "other.yaml"
    other.write_text(tiny_preset.read_text().replace("[1.0, 1.0, 1.0]", "[2.0, 1.0, 1.0]"))
    membranes = tmp_path / "membranes.yaml"
    membranes.write_text(tiny_preset.read_text().replace("kind: nuclei", "kind: membranes")
                         .replace("  radius: 3.0\n  count: 6\n", "  membrane_thickness: 2.0\n"))
    for preset, message in ((other, "voxel size"), (membranes, "nuclei preset")):
        assert main(train_args(h5file, tmp_path / preset.stem, 1, "--simulated", str(preset))) == 2
        assert message in capsys.readouterr().err
    walls = ["--kind", "membranes", "--simulated", str(membranes), "--membrane-thickness", "1.5"]
    assert main([*train_args(h5file, tmp_path / "w", 1), *walls]) == 2
    assert "--membrane-thickness 2" in capsys.readouterr().err
    assert main(train_args(h5file, tmp_path / "c", 1, "--w-consistency", "1")) == 2
    assert "--simulated" in capsys.readouterr().err


def test_saved_generator_is_the_moving_average_of_the_trained_weights(h5file):
    from cellsynth.gan.config import TrainConfig
    from cellsynth.gan.train import Trainer

    config = TrainConfig(patch=(16, 16, 16), width=2, depth=2, d_width=2, d_layers=2, ema_half_life=2.0,
                         lr_g=0.5)
    trainer = Trainer(config, load_volumes([h5file], "nuclei", holdout=0.0))
    average = {k: v.double().numpy().copy() for k, v in trainer.generator.state_dict().items()}
    keep = 0.5 ** (1 / 2.0)
    for _ in range(4):
        trainer.train_step()
        for k, v in trainer.generator.state_dict().items():
            average[k] = keep * average[k] + (1 - keep) * v.double().numpy()
    saved = trainer.generator_state()["state_dict"]
    trained = trainer.generator.state_dict()
    for k, expected in average.items():
        np.testing.assert_allclose(saved[k].double().numpy(), expected, atol=2e-3, rtol=2e-3)
    assert any(not torch.allclose(saved[k].float(), trained[k], atol=1e-2) for k in trained)


# ---------------------------------------------------------------------- bad input


def _error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cellsynth: error:") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_data_is_a_one_line_error(tmp_path, rng, capsys):
    raw, labels = make_volume(rng)
    bad_shape = write_h5(tmp_path / "shape.h5", raw, labels[:, :-1])
    assert "differ" in _error(capsys, train_args(bad_shape, tmp_path / "r1", 1))
    empty = write_h5(tmp_path / "empty.h5", raw, np.zeros_like(labels))
    assert "no cells" in _error(capsys, train_args(empty, tmp_path / "r2", 1))
    ok = write_h5(tmp_path / "ok.h5", raw, labels)
    assert "larger than every" in _error(capsys, train_args(ok, tmp_path / "r3", 1)[:-len(TINY)] + [
        "--patch", "32", "32", "32", *TINY[4:]])
    no_voxel = write_h5(tmp_path / "novoxel.h5", raw, labels, voxel=None)
    assert "--voxel-size" in _error(capsys, train_args(no_voxel, tmp_path / "r4", 1))
    assert "not an HDF5 file" in _error(capsys, train_args(tmp_path / "missing.h5", tmp_path / "r5", 1))
    assert "--ema-half-life" in _error(capsys, train_args(ok, tmp_path / "r6", 1, "--ema-half-life", "-1"))
    assert "--w-paired" in _error(capsys, train_args(ok, tmp_path / "r7", 1, "--w-paired", "-2"))
    assert not (tmp_path / "r7" / "checkpoint.pt").exists()


def test_bad_resume_and_output_folder(h5file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_args(h5file, out, 1, "--preview-every", "0")) == 0
    assert "already holds a training run" in _error(capsys, train_args(h5file, out, 2))
    assert "different run" in _error(capsys, train_args(h5file, out, 2, "--resume", "--seed", "5"))
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint at all")
    assert "not a readable" in _error(capsys, train_args(h5file, out, 2, "--resume", str(tmp_path / "corrupt.pt")))
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    assert "not a cellsynth-gan-checkpoint" in _error(
        capsys, train_args(h5file, out, 2, "--resume", str(tmp_path / "foreign.pt")))
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    assert "other files" in _error(capsys, train_args(h5file, other, 1))
    assert "no checkpoint.pt" in _error(capsys, train_args(h5file, tmp_path / "fresh", 1, "--resume"))
    with pytest.raises(Exception, match="neither a cellsynth generator"):
        load_generator(tmp_path / "foreign.pt")
    with pytest.raises(Exception, match="is a nuclei model"):
        load_generator(out / "generator.pt", kind="membranes")
    with pytest.raises(Exception, match="not found"):
        load_generator(tmp_path / "nothing.pt")
