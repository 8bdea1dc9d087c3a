"""``cellsynth train``: train the conditional GAN on real images and their labels."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cellsynth.errors import CellsynthError

_BOOL = argparse.BooleanOptionalAction


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand."""
    p = subparsers.add_parser(
        "train", help="train a mask-to-image generator (cGAN with ADA) on real data",
        description="Train the conditional GAN on real 3D images and their instance labels. Arrays are (Z, Y, X); "
                    "sizes in voxels unless marked µm. Multi-GPU / multi-node: torchrun --nproc_per_node N -m "
                    "cellsynth train ...",
    )
    p.add_argument("--data", nargs="+", metavar="PATH",
                   help="HDF5 files (datasets raw, label), folders of them, or folders with images/ and labels/ TIFFs")
    p.add_argument("--kind", choices=("nuclei", "membranes"), help="structure the labels describe")
    p.add_argument("--out", type=Path, metavar="RUN", help="run folder (checkpoints, log, previews, generator.pt)")
    p.add_argument("--steps", type=int, default=2000, help="total training steps (default 2000)")
    p.add_argument("--patch", type=int, nargs=3, default=(32, 64, 64), metavar=("Z", "Y", "X"),
                   help="training patch in voxels, multiples of 2**depth (default 32 64 64)")
    p.add_argument("--width", type=int, default=16, help="generator base width (default 16)")
    p.add_argument("--depth", type=int, default=3, help="generator levels (default 3)")
    p.add_argument("--noise", action=_BOOL, default=True, help="noise injection in the generator (default on)")
    p.add_argument("--d-width", type=int, default=16, help="discriminator base width (default 16)")
    p.add_argument("--d-layers", type=int, default=3, help="discriminator strided layers (default 3)")
    p.add_argument("--d-norm", choices=("instance", "none"), default="instance", help="discriminator normalisation")
    p.add_argument("--batch", type=int, default=1, help="patches per step per process (default 1)")
    p.add_argument("--lr-g", type=float, default=2e-4, help="generator learning rate (RAdam)")
    p.add_argument("--lr-d", type=float, default=2e-4, help="discriminator learning rate (RAdam)")
    p.add_argument("--betas", type=float, nargs=2, default=(0.5, 0.99), metavar=("B1", "B2"),
                   help="RAdam betas of both networks (default 0.5 0.99: a short warm-up)")
    p.add_argument("--loss", choices=("lsgan", "bce"), default="lsgan", help="adversarial loss (default lsgan)")
    p.add_argument("--w-adv", type=float, default=1.0, help="weight of the adversarial loss")
    p.add_argument("--w-identity", type=float, default=1.0, help="weight of the identity loss ||i - G(i)||_1")
    p.add_argument("--w-paired", type=float, default=10.0, help="weight of the paired loss ||i - G(m)||_1")
    p.add_argument("--w-histogram", type=float, default=0.0,
                   help="weight of the histogram loss: W1 between the intensities of G(m) and i (paired only)")
    p.add_argument("--paired", action=_BOOL, default=True,
                   help="aligned image/mask patches (masks made from the images); --no-paired draws them apart")
    p.add_argument("--ema-half-life", type=float, default=0.0, metavar="STEPS",
                   help="save an exponential moving average of the generator weights with this half-life in steps "
                        "(steadier results; 0: the trained weights, default)")
    p.add_argument("--ada-target", type=float, default=0.6, help="ADA target of r = E[sign(D(real))]")
    p.add_argument("--ada-delta", type=float, default=0.05, help="ADA step of p")
    p.add_argument("--ada-epochs", type=float, default=1.0, help="epochs between ADA updates (e_aug)")
    p.add_argument("--ada-p", type=float, default=0.0, help="initial augmentation probability")
    p.add_argument("--patches-per-image", type=int, default=1, help="patches per image per epoch (paper: 1)")
    p.add_argument("--foreground-bias", type=float, default=0.5,
                   help="probability of centring a patch on a structure voxel (default 0.5)")
    p.add_argument("--flips", action=_BOOL, default=True, help="random y/x flips")
    p.add_argument("--rotations", action=_BOOL, default=True, help="random 90-degree rotations in yx")
    p.add_argument("--alpha", type=float, default=100.0, help="positional map decay inside, µm (Eq. 1)")
    p.add_argument("--beta", type=float, default=100.0, help="positional map decay outside, µm (Eq. 1)")
    p.add_argument("--percentiles", type=float, nargs=2, default=(1.0, 99.9), metavar=("LOW", "HIGH"),
                   help="intensity percentiles mapped to 0 and 1 (default 1 99.9)")
    p.add_argument("--holdout", type=float, default=0.25,
                   help="fraction of each volume (at the end of --holdout-axis) kept out of training")
    p.add_argument("--holdout-axis", choices=("z", "y", "x"), default="y", help="axis of the hold-out cut")
    p.add_argument("--voxel-size", type=float, nargs=3, metavar=("Z", "Y", "X"),
                   help="voxel size in µm for files that record none")
    p.add_argument("--membrane-thickness", type=float, help="membrane wall thickness in µm (membranes)")
    p.add_argument("--seed", type=int, default=0, help="random seed (runs reproduce bit for bit on CPU)")
    p.add_argument("--resume", nargs="?", const="auto", metavar="CKPT",
                   help="continue the run in --out (or from CKPT)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--amp", choices=("auto", "on", "off"), default="auto",
                   help="bf16 autocast: auto = on GPUs only")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints")
    p.add_argument("--preview-every", type=int, default=500, help="steps between PNG previews (0: none)")
    p.add_argument("--keep-generators", action="store_true",
                   help="keep the generator of every checkpoint in RUN/generators/ (for weight averaging)")
    p.add_argument("--log-every", type=int, default=10, help="steps between log rows")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    """Run ``cellsynth train``."""
    import torch
    import torch.distributed as dist

    from cellsynth.cli import resolved_config
    from cellsynth.gan.data import find_pairs, load_volumes
    from cellsynth.gan.train import TrainConfig, train

    for flag in ("data", "kind", "out"):
        if not getattr(args, flag):
            raise CellsynthError(f"--{flag} is required")
    if args.steps < 1:
        raise CellsynthError(f"--steps must be at least 1, got {args.steps}")
    if args.threads:
        torch.set_num_threads(args.threads)
    values = resolved_config(args)
    config = TrainConfig.from_dict(values)

    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CellsynthError("--device cuda was asked for but no GPU is available; use --device cpu")
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
