"""``cellsynth train``: train the conditional GAN on real images and their labels."""

from __future__ import annotations

import argparse
import os
import types
from dataclasses import Field, fields
from pathlib import Path
from typing import get_args, get_origin, get_type_hints

from cellsynth.cli import _options
from cellsynth.errors import CellsynthError
from cellsynth.gan.config import TrainConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand; the training options come from :class:`cellsynth.gan.config.TrainConfig`."""
    p = subparsers.add_parser(
        "train", help="train a mask-to-image generator (cGAN with ADA) on real data",
        description="Train the conditional GAN on real 3D images and their instance labels. Arrays are (Z, Y, X); "
                    "sizes in voxels unless marked µm. Multi-GPU / multi-node: torchrun --nproc_per_node N -m "
                    "cellsynth train ...",
    )
    p.add_argument("--data", nargs="+", metavar="PATH",
                   help="HDF5 files (datasets raw, label), folders of them, or folders with images/ and labels/ TIFFs "
                        "(required)")
    p.add_argument("--out", type=Path, metavar="RUN",
                   help="run folder (checkpoints, log, previews, generator.pt) (required)")
    p.add_argument("--steps", type=_options.positive_int, default=2000, help="total training steps (default 2000)")
    g = p.add_argument_group("training configuration (the keys of run.json)")
    for option in fields(TrainConfig):
        _add_config_flag(g, option)
    g = p.add_argument_group("run")
    g.add_argument("--resume", nargs="?", const="auto", metavar="CKPT",
                   help="continue the run in --out (or from CKPT) (default: start a new run)")
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default auto: a GPU if there is one)")
    g.add_argument("--amp", choices=("auto", "on", "off"), default="auto",
                   help="bf16 autocast (default auto: on GPUs only)")
    g.add_argument("--threads", type=_options.positive_int, help="CPU threads for torch (default: torch's choice)")
    g.add_argument("--checkpoint-every", type=_options.positive_int, default=200,
                   help="steps between checkpoints (default 200)")
    g.add_argument("--preview-every", type=_options.nonnegative_int, default=500,
                   help="steps between PNG previews (0: none; default 500)")
    g.add_argument("--keep-generators", action="store_true",
                   help="keep the generator of every checkpoint in RUN/generators/ (for weight averaging)")
    g.add_argument("--log-every", type=_options.positive_int, default=10, help="steps between log rows (default 10)")
    p.set_defaults(func=run)


def _add_config_flag(group: argparse._ArgumentGroup, option: Field) -> None:
    """One flag per :class:`TrainConfig` field: its type (checked within the field's bounds), help and default
    from the dataclass."""
    cli = dict(option.metadata)
    help_text, required, bounds = cli.pop("help"), cli.pop("required", False), cli.pop("bounds")
    default = option.default
    flag = "--" + option.name.replace("_", "-")
    if isinstance(default, bool):
        group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default,
                           help=f"{help_text} (default {'on' if default else 'off'})")
        return
    kind = get_type_hints(TrainConfig)[option.name]
    if isinstance(kind, types.UnionType):  # X | None
        kind = next(a for a in get_args(kind) if a is not type(None))
    if get_origin(kind) is tuple:
        cli["nargs"], kind = len(get_args(kind)), get_args(kind)[0]
    if option.name == "seed":
        cli["type"] = _options.seed
    elif kind is int:
        cli["type"] = _options.integer(bounds["low"], bounds["high"])
    elif kind is float:
        cli["type"] = _options.number(**bounds)
    else:
        cli["type"] = kind
    if required:
        group.add_argument(flag, **cli, help=f"{help_text} (required)")
    elif default is None:
        group.add_argument(flag, **cli, help=help_text)
    else:
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        group.add_argument(flag, default=default, **cli, help=f"{help_text} (default {shown})")


def run(args: argparse.Namespace) -> None:
    """Run ``cellsynth train``."""
    import torch
    import torch.distributed as dist

    from cellsynth.cli import resolved_config
    from cellsynth.gan.data import find_pairs, load_volumes
    from cellsynth.gan.train import check_training_memory, train
    from cellsynth.outputs import check_output
    from cellsynth.tiling import check_device

    for flag in ("data", "kind", "out"):
        if not getattr(args, flag):
            raise CellsynthError(f"--{flag} is required")
    check_output(args.out, existing_ok=True)
    values = resolved_config(args)
    config = TrainConfig.from_dict(values)
    check_training_memory(config)
    if args.threads:
        torch.set_num_threads(args.threads)

    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    check_device(device)  # a device string torch does not know, or a GPU that is not there: one line
    if world > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device.startswith("cuda"):
            device = f"cuda:{local}"
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    amp = args.amp == "on" or (args.amp == "auto" and device.startswith("cuda"))
    resume = None
    if args.resume:
        resume = args.out / "checkpoint.pt" if args.resume == "auto" else Path(args.resume)
        if args.resume == "auto" and not resume.is_file():
            raise CellsynthError(f"{args.out} has no checkpoint.pt to resume; start without --resume")
    try:
        volumes = load_volumes(args.data, config.kind, voxel_size=config.voxel_size, alpha=config.alpha,
                               beta=config.beta, percentiles=config.percentiles, holdout=config.holdout,
                               holdout_axis=config.holdout_axis, membrane_thickness_um=config.membrane_thickness)
        files = [str(Path(f).resolve()) for _, f, _ in find_pairs(args.data)]
        train(config, volumes, args.out, args.steps, device=device, amp=amp, resume=resume,
              checkpoint_every=args.checkpoint_every, preview_every=args.preview_every, log_every=args.log_every,
              data_files=files, options=values, keep_generators=args.keep_generators)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()
