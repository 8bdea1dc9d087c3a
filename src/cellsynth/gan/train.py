"""The GAN training loop: steps, checkpoints, logs, previews and data parallelism.

A run lives in one folder::

    RUN/
      run.json         format, the training configuration and the data files
      checkpoint.pt    full state: networks, optimisers, ADA, RNG states, step (atomic)
      generator.pt     the generator alone (fp16), for ``cellsynth synthesize --model``
      generators/      with ``keep_generators``: the generator of every checkpoint
      log.csv          one row per logged step: losses, r, p, data and step times
      previews/        PNGs of mask | real | generated centre slices (and simulated mask | generated)

A checkpoint holds everything that influences later steps, so a resumed run continues
exactly: on CPU it ends with the same weights as an uninterrupted run. A killed run loses
at most the steps since its last checkpoint. The file formats of checkpoints and generators
are those of :mod:`cellsynth.gan.checkpoints`.

Data parallelism follows stylegan2-ada-pytorch: each process draws its own patches, and
after every backward pass the gradients are averaged over processes with
``torch.distributed.all_reduce``; the ADA statistic is summed over processes too, so the
networks and ``p`` stay identical everywhere. Start it with
``torchrun --nproc_per_node N -m cellsynth train ...`` (gloo on CPU, NCCL on GPUs).
"""

from __future__ import annotations

import copy
import csv
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from cellsynth.errors import CellsynthError
from cellsynth.gan.augment import AdaptiveAugment
from cellsynth.gan.checkpoints import CHECKPOINT_FORMAT, generator_record, load_checkpoint, save_torch
from cellsynth.gan.config import TrainConfig
from cellsynth.gan.consistency import SEGMENTER_DEPTH, SEGMENTER_WIDTH, consistency_loss, train_structure_segmenter
from cellsynth.gan.data import PatchSampler, TrainingVolume
from cellsynth.gan.losses import discriminator_loss, generator_adversarial_loss, l1_loss
from cellsynth.gan.networks import PatchGAN3D, UNetGenerator, parameter_count
from cellsynth.io import atomic_path
from cellsynth.memory import check_memory
from cellsynth.progress import progress_bar

RUN_FORMAT = "cellsynth-train-run"
LOG_COLUMNS = ("step", "epoch", "loss_d", "loss_g_adv", "loss_simulated", "loss_identity", "loss_paired",
               "loss_consistency", "r_batch", "r", "p", "data_s", "step_s")


def _distributed() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_reduce_gradients(module: torch.nn.Module, world: int) -> None:
    """Average the gradients of ``module`` over all processes (one flat all-reduce)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if world == 1 or not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


TRAINING_FIXED_BYTES = 512 * 2**20
"""Memory of a training step that does not grow with the networks (measured: about 500 MiB)."""

TRAINING_BYTES_PER_VOXEL_AND_CHANNEL = 100
"""Activation memory of a training step per patch voxel and unit of width (measured: about 80)."""


def training_bytes(config: TrainConfig) -> int:
    """About the memory one training process needs: weights, gradients, RAdam moments and the
    averaged generator (20 bytes per parameter), activations, and a fixed part."""
    generator = parameter_count(lambda w: UNetGenerator(2, w, config.depth, noise=config.noise), config.width)
    critic = parameter_count(lambda w: PatchGAN3D(2, w, config.d_layers, config.d_norm), config.d_width)
    activations = (TRAINING_BYTES_PER_VOXEL_AND_CHANNEL * (config.width + config.d_width)
                   * math.prod(config.patch) * config.batch)
    return TRAINING_FIXED_BYTES + 20 * (generator + critic) + activations


def check_training_memory(config: TrainConfig) -> None:
    """Refuse settings whose training would not fit in memory (:func:`training_bytes`)."""
    check_memory(training_bytes(config), "training with these settings",
                 "use a smaller --width, --d-width, --patch or --batch")


class Trainer:
    """Networks, optimisers, ADA and the patch sampler of one training process.

    Parameters
    ----------
    config
        The run's configuration.
    volumes
        Prepared training volumes (:func:`cellsynth.gan.data.load_volumes`).
    device
        Torch device of this process.
    amp
        bf16 autocast (used on GPUs).
    """

    def __init__(self, config: TrainConfig, volumes: Sequence[TrainingVolume], device: str | torch.device = "cpu",
                 amp: bool = False) -> None:
        self.config, self.device, self.amp = config, torch.device(device), amp
        self.rank, self.world = _distributed()
        check_training_memory(config)
        torch.manual_seed(config.seed)  # identical initial networks in every process
        self.generator = UNetGenerator(2, config.width, config.depth, noise=config.noise, padding=config.padding,
                                       upsample_blur=config.upsample_blur).to(self.device)
        self.discriminator = PatchGAN3D(2, config.d_width, config.d_layers, config.d_norm).to(self.device)
        self.ada = AdaptiveAugment(p=config.ada_p, target=config.ada_target,
                                   speed_images=config.ada_images).to(self.device)
        betas = tuple(config.betas)
        self.opt_g = torch.optim.RAdam(self.generator.parameters(), lr=config.lr_g, betas=betas)
        self.generator_ema = (copy.deepcopy(self.generator).eval().requires_grad_(False)
                              if config.ema_half_life > 0 else None)
        self.opt_d = torch.optim.RAdam(self.discriminator.parameters(), lr=config.lr_d, betas=betas)
        self.sampler = PatchSampler(volumes, config.patch, np.random.default_rng([config.seed, self.rank]),
                                    paired=config.paired, foreground_bias=config.foreground_bias,
                                    flips=config.flips, rotations=config.rotations)
        self.steps_per_epoch = max(1, math.ceil(len(self.sampler.volumes) * config.patches_per_image
                                                / (config.batch * self.world)))
        if config.ada_interval < 1:
            raise CellsynthError(f"--ada-interval must be at least 1 step, got {config.ada_interval}")
        self.simulated = None
        if config.simulated:
            from cellsynth.gan.simulated import simulated_volumes

            pool = simulated_volumes(config.simulated, config.simulated_pool, config.seed, kind=config.kind,
                                     voxel_size=self.sampler.volumes[0].voxel_size,
                                     membrane_thickness_um=config.membrane_thickness, alpha=config.alpha,
                                     beta=config.beta)
            self.simulated = PatchSampler(pool, config.patch, np.random.default_rng([config.seed, self.rank, 1]),
                                          foreground_bias=config.foreground_bias, flips=config.flips,
                                          rotations=config.rotations)
        elif config.w_consistency > 0:
            raise CellsynthError("--w-consistency needs --simulated PRESET (it applies to images of simulated masks)")
        self.segmenter: torch.nn.Module | None = None
        maps = [v.positional for v in self.sampler.volumes + (self.simulated.volumes if self.simulated else [])]
        self.positional_range = (float(min(m.min() for m in maps)), float(max(m.max() for m in maps)))
        self.step, self.last_r = 0, float("nan")
        if self.world > 1:
            for tensor in [*self.generator.state_dict().values(), *self.discriminator.state_dict().values()]:
                dist.broadcast(tensor, src=0)
        # per-process randomness (noise, augmentation) after the shared initialisation
        torch.manual_seed(config.seed * 7919 + 1 + self.rank)
        random.seed(config.seed * 7919 + 1 + self.rank)

    # ------------------------------------------------------------------ one step

    def _autocast(self) -> Any:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def _segmenter(self) -> torch.nn.Module:
        """The frozen structure segmenter of the consistency term, trained on first use
        (:func:`cellsynth.gan.consistency.train_structure_segmenter`) without touching the
        run's random streams, or restored from the checkpoint."""
        if self.segmenter is None:
            with torch.random.fork_rng(devices=[]):
                self.segmenter = train_structure_segmenter(self.sampler.volumes, self.config.patch,
                                                           self.config.segmenter_steps, self.config.seed,
                                                           device=self.device)
        return self.segmenter

    def train_step(self) -> dict[str, float]:
        """Draw a batch and update the discriminator, then the generator; return the step's figures.

        With ``simulated``, the generator also renders a batch of simulated masks; the
        discriminator sees those images as fakes beside the images of the real masks, and the
        generator is scored on both (weights ``w_adv`` and ``w_simulated``), plus the
        consistency term on the simulated ones (``w_consistency``).
        """
        c = self.config
        segmenter = self._segmenter() if c.w_consistency > 0 else None
        t0 = time.perf_counter()
        batch = {k: torch.from_numpy(v).to(self.device) for k, v in self.sampler.sample(c.batch).items()}
        if self.simulated is not None:
            sim = self.simulated.sample(c.batch)
            batch["sim_mask"], batch["sim_positional"] = (torch.from_numpy(sim[k]).to(self.device)
                                                          for k in ("mask", "positional"))
        data_s = time.perf_counter() - t0
        mask, pos, real, real_pos = batch["mask"], batch["positional"], batch["image"], batch["image_positional"]
        fake_pos = torch.cat([pos, batch["sim_positional"]]) if self.simulated is not None else pos
        n = mask.shape[0]

        self.discriminator.requires_grad_(True)
        with self._autocast():
            inputs = torch.cat([mask, pos], 1)
            if self.simulated is not None:
                inputs = torch.cat([inputs, torch.cat([batch["sim_mask"], batch["sim_positional"]], 1)])
            fakes = self.generator(inputs)
            scores = self.discriminator(self.ada(torch.cat([real, fakes.detach()])), torch.cat([real_pos, fake_pos]))
            real_scores, fake_scores = scores[:n], scores[n:]
            loss_d = discriminator_loss(real_scores, fake_scores, c.loss)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        _all_reduce_gradients(self.discriminator, self.world)
        self.opt_d.step()
        self.ada.accumulate(real_scores)

        self.discriminator.requires_grad_(False)
        zero = torch.zeros((), device=self.device)
        with self._autocast():
            fake_scores = self.discriminator(self.ada(fakes), fake_pos)
            fake = fakes[:n]
            loss_adv = generator_adversarial_loss(fake_scores[:n], c.loss)
            loss = c.w_adv * loss_adv
            loss_sim = loss_id = loss_paired = loss_consistency = zero
            if self.simulated is not None:
                loss_sim = generator_adversarial_loss(fake_scores[n:], c.loss)
                loss = loss + c.w_simulated * loss_sim
            if segmenter is not None:
                loss_consistency = consistency_loss(segmenter, fakes[n:], batch["sim_mask"])
                loss = loss + c.w_consistency * loss_consistency
            if c.w_identity > 0:
                loss_id = l1_loss(real, self.generator(torch.cat([real, real_pos], 1)))
                loss = loss + c.w_identity * loss_id
            if c.paired and c.w_paired > 0:
                loss_paired = l1_loss(real, fake)
                loss = loss + c.w_paired * loss_paired
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        _all_reduce_gradients(self.generator, self.world)
        self.opt_g.step()
        if self.generator_ema is not None:
            self._update_ema()

        self.step += 1
        if self.step % c.ada_interval == 0:
            self.last_r = self.ada.update()
        preview = [mask, real, fake]
        if self.simulated is not None:
            preview += [batch["sim_mask"], fakes[n:]]
        return {"step": self.step, "epoch": self.step / self.steps_per_epoch, "loss_d": float(loss_d.detach()),
                "loss_g_adv": float(loss_adv.detach()), "loss_simulated": float(loss_sim.detach()),
                "loss_identity": float(loss_id.detach()), "loss_paired": float(loss_paired.detach()),
                "loss_consistency": float(loss_consistency.detach()),
                "r_batch": float(torch.sign(real_scores.detach().float()).mean()), "r": self.last_r,
                "p": float(self.ada.p), "data_s": data_s, "step_s": time.perf_counter() - t0,
                "_preview": preview}

    @torch.no_grad()
    def _update_ema(self) -> None:
        """Move the averaged generator towards the trained one (half-life ``ema_half_life`` steps)."""
        keep = 0.5 ** (1.0 / self.config.ema_half_life)
        for averaged, trained in zip(self.generator_ema.parameters(), self.generator.parameters()):
            averaged.lerp_(trained, 1.0 - keep)

    # ------------------------------------------------------------------ state

    def _rng_state(self) -> dict[str, Any]:
        state = {"torch": torch.get_rng_state(), "numpy": self.sampler.rng.bit_generator.state,
                 "python": random.getstate()}
        if self.simulated is not None:
            state["numpy_simulated"] = self.simulated.rng.bit_generator.state
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def state_dict(self) -> dict[str, Any]:
        """The full training state (call on every process: RNG states are gathered)."""
        rng = [self._rng_state()]
        if self.world > 1:
            rng = [None] * self.world
            dist.all_gather_object(rng, self._rng_state())
        return {"format": CHECKPOINT_FORMAT, "version": 1, "config": asdict(self.config), "step": self.step,
                "last_r": self.last_r, "world_size": self.world, "generator": self.generator.state_dict(),
                "discriminator": self.discriminator.state_dict(), "ada": self.ada.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(), "rng": rng,
                **({"generator_ema": self.generator_ema.state_dict()} if self.generator_ema is not None else {}),
                **({"segmenter": self.segmenter.state_dict()} if self.segmenter is not None else {})}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (same configuration, same number of processes)."""
        if state.get("world_size", 1) != self.world:
            raise CellsynthError(f"the checkpoint was written by {state.get('world_size')} processes; "
                                 f"resume it with the same number (now {self.world})")
        self.generator.load_state_dict(state["generator"])
        if self.generator_ema is not None:
            self.generator_ema.load_state_dict(state["generator_ema"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.ada.load_state_dict(state["ada"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.step, self.last_r = int(state["step"]), float(state["last_r"])
        if "segmenter" in state:  # built before the random states are restored: its initialization draws
            self.segmenter = UNetGenerator(1, SEGMENTER_WIDTH, SEGMENTER_DEPTH).to(self.device)
            self.segmenter.load_state_dict(state["segmenter"])
            self.segmenter.eval().requires_grad_(False)
        rng = state["rng"][self.rank]
        torch.set_rng_state(rng["torch"])
        self.sampler.rng.bit_generator.state = rng["numpy"]
        if self.simulated is not None:
            self.simulated.rng.bit_generator.state = rng["numpy_simulated"]
        random.setstate(_as_tuple(rng["python"]))
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)

    def generator_state(self, meta: dict[str, Any] | None = None) -> dict[str, Any]:
        """The content of a generator file (:func:`cellsynth.gan.checkpoints.generator_record`):
        the averaged generator with ``ema_half_life``, else the trained one, and the range of
        positional map values it was trained on."""
        generator = self.generator_ema if self.generator_ema is not None else self.generator
        return generator_record(generator, asdict(self.config), self.step,
                                {"positional_range": list(self.positional_range), **(meta or {})})


def _as_tuple(value: Any) -> Any:
    """``random.setstate`` needs tuples; a checkpoint round trip may give lists."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


# ---------------------------------------------------------------------- files of a run


def _write_preview(path: Path, volumes: Sequence[torch.Tensor]) -> None:
    """Save the centre z slices of the first sample of each of ``volumes`` side by side as one PNG
    (mask | real | generated, then simulated mask | its image when training on simulated masks)."""
    import matplotlib.image

    z = volumes[0].shape[2] // 2
    row = [t[0, 0, z].detach().float().cpu().numpy() for t in volumes]
    with atomic_path(path) as tmp:
        matplotlib.image.imsave(tmp, np.concatenate(row, axis=1), cmap="gray", vmin=0, vmax=1, format="png")


class RunLog:
    """The CSV log of a run; on resume, rows after the checkpoint's step are dropped."""

    def __init__(self, path: Path, resume_step: int) -> None:
        self.path = path
        rows = []
        if resume_step and path.is_file():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, LOG_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, LOG_COLUMNS, extrasaction="ignore").writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def check_run_folder(out: Path, run_info: dict[str, Any], resume: bool) -> None:
    """Refuse to start a new run in a used folder, or to resume a different run."""
    from cellsynth.io import read_json
    from cellsynth.outputs import check_output

    check_output(out, existing_ok=True)
    run_file = out / "run.json"
    if not resume:
        if out.exists() and any(out.iterdir()):
            what = "a training run" if run_file.is_file() else "other files"
            raise CellsynthError(f"{out} already holds {what}; pass --resume to continue it or choose another --out")
        return
    if not run_file.is_file():
        if out.exists() and any(out.iterdir()):
            raise CellsynthError(f"{out} does not hold a training run (no run.json); choose another --out")
        return
    old = read_json(run_file)
    if old.get("format") != RUN_FORMAT:
        raise CellsynthError(f"{run_file} is not a cellsynth training run; choose another --out")
    differ = sorted(k for k in set(old.get("config", {})) | set(run_info["config"])
                    if _jsonable(old.get("config", {}).get(k)) != _jsonable(run_info["config"].get(k)))
    if differ:
        raise CellsynthError(f"{out} holds a different run (options {', '.join(differ)} differ); "
                             "use the same options to resume, or choose another --out")


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def train(config: TrainConfig, volumes: Sequence[TrainingVolume], out: str | Path, steps: int, *,
          device: str = "cpu", amp: bool = False, resume: str | Path | None = None,
          checkpoint_every: int = 200, preview_every: int = 500, log_every: int = 10,
          data_files: Sequence[str] = (), options: dict[str, Any] | None = None, keep_generators: bool = False,
          progress: bool | None = None) -> Trainer:
    """Train (or continue training) until ``steps`` steps in the run folder ``out``.

    Parameters
    ----------
    config
        The run's configuration.
    volumes
        Prepared training volumes.
    out
        Run folder (see the module notes).
    steps
        Total number of steps of the run (a resumed run continues up to it).
    device
        Torch device (``cuda:N`` per process under torchrun).
    amp
        bf16 autocast.
    resume
        A checkpoint to continue from (usually ``out/checkpoint.pt``), or None.
    checkpoint_every, preview_every, log_every
        Intervals in steps (0 disables previews).
    data_files
        Names of the training files, recorded in ``run.json``.
    options
        The complete resolved command-line options, recorded in ``run.json``.
    keep_generators
        Also keep the generator of every checkpoint as ``generators/step_NNNNNNN.pt`` (for
        averaging the weights of the last checkpoints, see ``scripts/train_shipped.py``).
    progress
        Progress bar on the first process: None (default) on a terminal only, True always,
        False never.
    """
    from cellsynth import __version__
    from cellsynth.io import write_json

    out = Path(out)
    trainer = Trainer(config, volumes, device, amp)
    rank = trainer.rank
    run_info = {"format": RUN_FORMAT, "cellsynth_version": __version__, "config": asdict(config),
                "data": list(data_files), "options": dict(options or {})}
    check_run_folder(out, run_info, resume is not None)
    if resume is not None:
        state = load_checkpoint(resume)
        try:
            if TrainConfig.from_dict(state["config"]) != config:
                raise CellsynthError(f"{resume} was trained with other options; resume with the same options")
            trainer.load_state_dict(state)
        except CellsynthError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as err:
            raise CellsynthError(f"{resume} is a damaged training checkpoint ({type(err).__name__}: "
                                 f"{str(err).splitlines()[0] if str(err) else ''}); resume from another checkpoint "
                                 "or start a new run") from None
        del state
    if trainer.world > 1:
        dist.barrier()  # every process has checked the folder before the first one writes to it
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "run.json", run_info)
        log = RunLog(out / "log.csv", trainer.step)

    def checkpoint() -> None:
        state = trainer.state_dict()  # collective under torchrun: every process calls it
        if rank == 0:
            save_torch(state, out / "checkpoint.pt")
            generator = trainer.generator_state({"data": list(data_files)})
            save_torch(generator, out / "generator.pt")
            if keep_generators:
                save_torch(generator, out / "generators" / f"step_{trainer.step:07d}.pt")

    bar = progress_bar(total=steps, initial=trainer.step, progress=progress if rank == 0 else False, desc="train",
                       unit="step")
    while trainer.step < steps:
        row = trainer.train_step()
        bar.update(1)
        preview = row.pop("_preview")
        if rank == 0:
            if trainer.step % log_every == 0 or trainer.step == steps:
                log.write(row)
                bar.set_postfix(d=f"{row['loss_d']:.3f}", g=f"{row['loss_g_adv']:.3f}", p=f"{row['p']:.2f}")
            if preview_every and trainer.step % preview_every == 0:
                _write_preview(out / "previews" / f"step_{trainer.step:07d}.png", preview)
        if trainer.step % checkpoint_every == 0 or trainer.step == steps:
            checkpoint()
    bar.close()
    return trainer
