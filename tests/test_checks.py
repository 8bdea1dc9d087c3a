"""Shared checks: values (one seed rule), memory, the config loader that runs values through the
flags' own checks, argparse errors in one line, --help that states every default, and
generator or training settings that ask for absurd sizes."""

import argparse
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from cellsynth.checks import check_integer, check_number, check_seed, check_voxel_size
from cellsynth.cli import build_parser, config_defaults, main
from cellsynth.errors import CellsynthError
from cellsynth.gan.checkpoints import generator_record, read_generator
from cellsynth.gan.config import TrainConfig
from cellsynth.gan.networks import PatchGAN3D, UNetGenerator, parameter_count
from cellsynth.memory import available_bytes, check_memory, format_bytes


def test_value_checks():
    assert check_seed(0) == 0 and check_seed(np.int64(5)) == 5
    for bad in (-1, 1.5, True, "3", None, 2**63):
        with pytest.raises(CellsynthError, match="seed must be a whole number from 0"):
            check_seed(bad)
    assert check_integer(3, "n", low=1) == 3
    with pytest.raises(CellsynthError, match="n must be at least 1, got 0"):
        check_integer(0, "n", low=1)
    assert check_number(0.5, "p", low=0, high=1) == 0.5
    for bad in (float("nan"), float("inf"), 2.0, -0.1, "x"):
        with pytest.raises(CellsynthError, match="p must be"):
            check_number(bad, "p", low=0, high=1)
    with pytest.raises(CellsynthError, match="above 0"):
        check_number(0.0, "lr", low=0, low_open=True)
    for bad in ((1e300, 1, 1), (1e-9, 1, 1), (1, 1), "111", {1: 1, 2: 2, 3: 3}, (1, [2], 3)):
        with pytest.raises(CellsynthError, match="voxel size"):
            check_voxel_size(bad)


@pytest.mark.parametrize("command", ["simulate nuclei --out s", "shape-model sample m.npz --shape 8 8 8 --out s.tif",
                                     "synthesize s --out o.tif", "train", "dataset --out d", "evaluate --real r"])
def test_one_seed_rule_for_every_command(command, capsys):
    """--seed -1 was a traceback in three commands, refused by one and taken by another."""
    assert main([*command.split(), "--seed", "-1"]) == 2
    err = capsys.readouterr().err
    assert "argument --seed: value must be a whole number from 0" in err and err.count("\n") == 1


def test_memory_follows_the_process_limits():
    """Under ``ulimit -v`` the available memory is what the limit leaves, and checks refuse."""
    code = ("import resource; from cellsynth.memory import available_bytes, check_memory\n"
            "resource.setrlimit(resource.RLIMIT_AS, (2**31, 2**31))\n"
            "print(available_bytes() < 2**31)\n"
            "try:\n    check_memory(2**31, 'two GiB', 'less')\nexcept Exception as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("True\ntwo GiB needs about 2 GiB of memory, but only") and out.strip().endswith("; less")
    assert available_bytes() > 2**20
    check_memory(2**20, "small", "nothing")  # below the unchecked floor, always fine
    assert format_bytes(1536 * 2**20) == "1.5 GiB"


def _parser():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=lambda t: check_integer(int(t), "n", low=1))
    parser.add_argument("--size", type=float, nargs=3)
    parser.add_argument("--flag", action="store_true")
    parser.add_argument("--on", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--kind", choices=("a", "b"))
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--resume", nargs="?", const="auto")
    return parser


def test_config_values_go_through_the_flags_checks():
    parser = _parser()
    assert config_defaults(parser, {"n": 2, "size": [1, 2.5, 3], "flag": True, "on": False, "kind": None,
                                    "set": "x=1", "resume": True}, "c.yaml") == \
        {"n": 2, "size": [1.0, 2.5, 3.0], "flag": True, "on": False, "set": ["x=1"], "resume": "auto"}
    for values, message in (({"n": 1.5}, "n: invalid literal"), ({"n": 0}, "n must be at least 1"),
                            ({"size": [1, 2]}, "expected 3 values"), ({"size": 1}, "expected 3 values"),
                            ({"flag": "yes"}, "expected true or false"), ({"kind": "c"}, "not one of a, b"),
                            ({"n": [1, 2]}, "expected one value"), ({"n": True}, "expected one value"),
                            ({"bogus": 1}, "unknown options: bogus")):
        with pytest.raises(CellsynthError, match=message):
            config_defaults(parser, values, "c.yaml")


def test_argparse_errors_are_one_line_with_a_hint(capsys):
    for argv, hint in ((["simulate", "nuclei", "--shape", "1", "2"], "cellsynth simulate nuclei --help"),
                       (["simulate"], "cellsynth simulate --help"), (["nope"], "cellsynth --help"),
                       (["train", "--bogus"], "cellsynth train --help")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("cellsynth: error: ") and f"(see `{hint}`)" in err, err
    out = subprocess.run([sys.executable, "-m", "cellsynth", "simulate", "nuclei", "--shape", "1"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "usage" not in out.stderr


def test_help_states_every_default():
    """Every option that takes a value says its default, or that it is required."""
    missing = []

    def walk(parser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in dict.fromkeys(action.choices.values()):
                    walk(sub)
            elif action.option_strings and action.nargs != 0 and not action.required \
                    and action.dest not in ("help", "version", "config"):
                text = action.help or ""
                if "default" not in text and "required" not in text:
                    missing.append(f"{parser.prog} {action.option_strings[-1]}")

    walk(build_parser())
    assert missing == []


@pytest.mark.parametrize("values, flag", [
    ({"width": 0}, "--width"), ({"lr_g": float("nan")}, "--lr-g"), ({"batch": 0}, "--batch"),
    ({"seed": -1}, "--seed"), ({"ada_p": 5.0}, "--ada-p"), ({"betas": (0.5, 1.0)}, "--betas"),
    ({"percentiles": (50.0, 10.0)}, "--percentiles"), ({"patch": (24, 24, 20)}, "--patch"),
    ({"holdout": 1.0}, "--holdout"), ({"kind": "cells"}, "--kind"), ({"noise": 1}, "--noise"),
    ({"foreground_bias": -0.1}, "--foreground-bias"), ({"voxel_size": (1e9, 1.0, 1.0)}, "voxel size"),
])
def test_training_settings_are_checked_where_they_are_made(values, flag):
    with pytest.raises(CellsynthError, match=flag):
        TrainConfig(**values)


def test_parameter_counts_without_building_the_network():
    for depth, noise in ((1, False), (2, True), (3, True)):
        build = lambda w, depth=depth, noise=noise: UNetGenerator(2, w, depth, noise=noise)  # noqa: E731
        for width in (5, 17):
            assert parameter_count(build, width) == sum(p.numel() for p in build(width).parameters())
    build = lambda w: PatchGAN3D(2, w, 3)  # noqa: E731
    assert parameter_count(build, 9) == sum(p.numel() for p in build(9).parameters())


def test_generator_files_that_lie(tmp_path):
    """Forged files with the right format tag: refused without building what they claim."""
    good = generator_record(UNetGenerator(2, 4, 2, noise=True), {"kind": "nuclei", "alpha": 100.0, "beta": 100.0}, 1)
    torch.save(good, tmp_path / "good.pt")
    assert read_generator(tmp_path / "good.pt")["kind"] == "nuclei"
    network = good["network"]
    forgeries = {
        "nothing": {"format": "cellsynth-generator"},
        "kind": {**good, "kind": None},
        "network": {**good, "network": "x"},
        "keys": {**good, "network": {**network, "extra": 1}},
        "types": {**good, "network": {**network, "width": 4.0}},
        "weights": {**good, "state_dict": []},
        "huge": {**good, "network": {**network, "width": 10**9}},
        "deep": {**good, "network": {**network, "depth": 40}},
        "missing": {**good, "state_dict": dict(list(good["state_dict"].items())[1:])},
    }
    for name, record in forgeries.items():
        torch.save(record, tmp_path / f"{name}.pt")
        start = time.monotonic()
        with pytest.raises(CellsynthError, match=f"{name}.pt"):
            read_generator(tmp_path / f"{name}.pt")
        assert time.monotonic() - start < 20  # nothing of the claimed size was built
    torch.save({"format": "cellsynth-gan-checkpoint", "step": 3}, tmp_path / "ckpt.pt")
    with pytest.raises(CellsynthError, match="damaged training checkpoint"):
        read_generator(tmp_path / "ckpt.pt")
