"""Data parallel training with two gloo processes on the CPU (as torchrun would start them)."""

import os
import socket

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cellsynth.gan.config import TrainConfig
from cellsynth.gan.data import TrainingVolume
from cellsynth.gan.train import train


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _volume() -> TrainingVolume:
    rng = np.random.default_rng(0)
    mask = (rng.random((16, 24, 24)) < 0.2).astype(np.uint8)
    image = (0.2 + 0.6 * mask + rng.normal(0, 0.05, mask.shape)).clip(0, 1).astype(np.float32)
    positional = np.zeros(mask.shape, np.float32)
    return TrainingVolume("v", image, mask, positional, (1.0, 1.0, 1.0))


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    config = TrainConfig(patch=(16, 16, 16), width=2, depth=2, d_width=2, d_layers=2, ada_p=0.3, ada_interval=1)
    trainer = train(config, [_volume()], out, 3, checkpoint_every=3, preview_every=0, progress=False)
    torch.save({"generator": trainer.generator.state_dict(), "p": trainer.ada.p,
                "patch_rng": trainer.sampler.rng.bit_generator.state["state"]["state"]},
               os.path.join(out, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_two_gloo_processes_stay_in_sync(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["patch_rng"] != r1["patch_rng"]  # each process drew its own patches ...
    for key in r0["generator"]:  # ... yet the averaged gradients keep the networks identical
        assert torch.equal(r0["generator"][key], r1["generator"][key]), key
    assert torch.equal(r0["p"], r1["p"])
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2 and ckpt["step"] == 3
    # the weights moved: a one-process run from the same seed differs (it saw other patches)
    single = train(TrainConfig(patch=(16, 16, 16), width=2, depth=2, d_width=2, d_layers=2, ada_p=0.3),
                   [_volume()], tmp_path / "single", 3, checkpoint_every=3, preview_every=0, progress=False)
    assert any(not torch.equal(single.generator.state_dict()[k], r0["generator"][k]) for k in r0["generator"])
