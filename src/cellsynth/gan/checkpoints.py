"""Checkpoint and generator files: how a trained generator is written and read back.

Two file formats, both ``torch.save`` dictionaries read with ``weights_only=True`` (no
pickled code):

- a **training checkpoint** (``RUN/checkpoint.pt``, format ``cellsynth-gan-checkpoint``):
  the full training state, written by :mod:`cellsynth.gan.train`;
- a **generator file** (``RUN/generator.pt`` and the shipped ``cellsynth/models/<kind>.pt``,
  format ``cellsynth-generator``): the generator's network settings and fp16 weights, its
  kind, the alpha and beta it was trained with, and the training configuration.

Training writes both; synthesis (:mod:`cellsynth.render.gan`) reads either through
:func:`read_generator` and :func:`build_generator`, so that rendering never needs the
training loop (as stylegan2-ada keeps its ``legacy.py`` loader apart from ``training/``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cellsynth.errors import CellsynthError
from cellsynth.gan.networks import PADDINGS, UNetGenerator, parameter_count
from cellsynth.io import atomic_path

CHECKPOINT_FORMAT = "cellsynth-gan-checkpoint"
GENERATOR_FORMAT = "cellsynth-generator"
GENERATOR_VERSION = 2
"""Version 2 records the generator's ``padding`` and ``upsample_blur`` (issue 17); files of
version 1 were written by generators with zero padding and no upsampling blur."""
_VERSION_1_NETWORK = {"padding": "zeros", "upsample_blur": False}


def save_torch(obj: dict[str, Any], path: str | Path) -> None:
    """``torch.save`` atomically (a killed process never leaves a half-written file)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: str | Path, expected: str = CHECKPOINT_FORMAT) -> dict[str, Any]:
    """Load a checkpoint or generator file of format ``expected``, with a one-line error for anything else.

    Raises
    ------
    CellsynthError
        For a missing or unreadable file, or a file of another format.
    """
    path = Path(path)
    if not path.is_file():
        raise CellsynthError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises pickle, zip and runtime errors for damaged files
        raise CellsynthError(f"{path} is not a readable cellsynth checkpoint ({type(err).__name__}); "
                             "give a file written by `cellsynth train`") from None
    if not isinstance(state, dict) or state.get("format") != expected:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise _WrongFormat(f"{path} is not a {expected} file (found {found!r}); "
                           "give a file written by `cellsynth train`")
    return state


class _WrongFormat(CellsynthError):
    """A readable file of another format than the one asked for."""


def generator_record(generator: torch.nn.Module, config: dict[str, Any], step: int,
                     meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The content of a generator file: ``generator``'s settings and fp16 weights.

    Parameters
    ----------
    generator
        A :class:`cellsynth.gan.networks.UNetGenerator`.
    config
        The training configuration (``dataclasses.asdict`` of a
        :class:`cellsynth.gan.config.TrainConfig`): gives the kind, alpha and beta.
    step
        The training step the weights come from.
    meta
        More entries to record (e.g. ``{"data": [...]}``).
    """
    weights = {k: v.detach().to("cpu", torch.float16) for k, v in generator.state_dict().items()}
    return {"format": GENERATOR_FORMAT, "version": GENERATOR_VERSION, "kind": config["kind"],
            "network": generator.config, "state_dict": weights, "step": step, "alpha": config["alpha"],
            "beta": config["beta"], "training": config, **(meta or {})}


def read_generator(path: str | Path) -> dict[str, Any]:
    """Read a generator file, or the generator of a training checkpoint, as a generator record.

    A checkpoint gives its averaged generator where the run kept one (``ema_half_life``),
    else the trained one. The record is checked (:func:`check_generator_record`) before it
    is returned, so a damaged or forged file is refused before any network is built.

    Returns
    -------
    dict
        ``kind``, ``network`` (the keyword arguments of
        :class:`~cellsynth.gan.networks.UNetGenerator`), ``state_dict``, ``step``, ``alpha``,
        ``beta``, ``training`` and whatever else the file records.

    Raises
    ------
    CellsynthError
        For a missing file, or a file that is neither a generator file nor a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CellsynthError(f"model file not found: {path}; give a generator.pt from `cellsynth train`")
    try:
        record = load_checkpoint(path, GENERATOR_FORMAT)
    except _WrongFormat:
        pass
    else:
        if record.get("version", 1) < 2 and isinstance(record.get("network"), dict):
            record["network"] = {**_VERSION_1_NETWORK, **record["network"]}
        return check_generator_record(record, path)
    try:
        ckpt = load_checkpoint(path, CHECKPOINT_FORMAT)
    except _WrongFormat:
        raise CellsynthError(f"{path} is neither a cellsynth generator nor a training checkpoint; "
                             "give a generator.pt or checkpoint.pt from `cellsynth train`") from None
    c = ckpt.get("config")
    if not isinstance(c, dict) or not {"kind", "width", "depth", "noise", "alpha", "beta"} <= set(c) \
            or not isinstance(ckpt.get("generator"), dict):
        raise CellsynthError(f"{path} is a damaged training checkpoint (its configuration or generator is missing); "
                             "use another checkpoint of the run")
    network = {"in_channels": 2, "width": c["width"], "depth": c["depth"], "out_channels": 1, "noise": c["noise"],
               **{k: c.get(k, old) for k, old in _VERSION_1_NETWORK.items()}}
    record = {"kind": c["kind"], "network": network,
              "state_dict": ckpt.get("generator_ema", ckpt["generator"]), "step": ckpt.get("step"),
              "alpha": c["alpha"], "beta": c["beta"], "training": c}
    return check_generator_record(record, path)


NETWORK_KEYS = {"in_channels": int, "width": int, "depth": int, "out_channels": int, "noise": bool, "padding": str,
                "upsample_blur": bool}
"""The settings of a generator's network in a generator record, and their types."""


MAX_DEPTH = 6
"""Deepest generator a file may describe (patch sides are multiples of 2**depth)."""


def check_generator_record(record: dict[str, Any], source: str | Path = "the generator file") -> dict[str, Any]:
    """Check a generator record before any network is built from it.

    The kind, the network settings (names, types, ranges) and the weights must be there,
    and the weights must be those of the network the settings describe: the same names as
    a network of width 1 with the same other settings, and as many numbers as the settings
    ask for (:func:`cellsynth.gan.networks.parameter_count`, which builds no large network);
    a file that claims an enormous network is refused without allocating it. Building the
    network then needs only what the file holds, which is checked against the memory
    available (:func:`cellsynth.memory.check_memory`).

    Raises
    ------
    CellsynthError
        Naming the file and what is wrong with it.
    """
    from cellsynth.memory import check_memory

    damaged = f"{source} is not a complete cellsynth generator"
    if record.get("kind") not in ("nuclei", "membranes"):
        raise CellsynthError(f"{damaged} (its kind is {record.get('kind')!r}, not nuclei or membranes)")
    network, weights = record.get("network"), record.get("state_dict")
    if not isinstance(network, dict) or set(network) != set(NETWORK_KEYS) or not all(
            type(network[k]) is t for k, t in NETWORK_KEYS.items()):
        raise CellsynthError(f"{damaged} (its network settings {network!r} are not {', '.join(NETWORK_KEYS)})")
    if not (1 <= network["depth"] <= MAX_DEPTH and network["width"] >= 1
            and 1 <= network["in_channels"] <= 16 and 1 <= network["out_channels"] <= 16
            and network["padding"] in PADDINGS):
        raise CellsynthError(f"{damaged} (its network settings {network} are out of range)")
    if not isinstance(weights, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                for k, v in weights.items()):
        raise CellsynthError(f"{damaged} (no weights)")
    tiny = UNetGenerator(**{**network, "width": 1}).state_dict()
    expected = parameter_count(lambda width: UNetGenerator(**{**network, "width": width}), network["width"])
    found = sum(v.numel() for v in weights.values())
    if set(weights) != set(tiny) or found != expected:
        differ = sorted(set(weights) ^ set(tiny))
        what = f"names {', '.join(differ[:3])} ..." if differ else f"{found} numbers where the network has {expected}"
        raise CellsynthError(f"{source}: the weights do not match the recorded network ({what}); the file is "
                             "damaged: use another generator file")
    check_memory(8 * found, f"the generator of {source}", "use a smaller generator")
    return record


def build_generator(record: dict[str, Any], source: str | Path = "the generator file") -> torch.nn.Module:
    """The :class:`~cellsynth.gan.networks.UNetGenerator` of a generator record, with its weights in float32.

    Raises
    ------
    CellsynthError
        If the record is not a complete generator (:func:`check_generator_record`).
    """
    check_generator_record(record, source)
    generator = UNetGenerator(**record["network"])
    try:
        generator.load_state_dict({k: v.float() for k, v in record["state_dict"].items()})
    except RuntimeError as err:  # a weight of the right count in the wrong shape
        raise CellsynthError(f"{source}: weights do not match the recorded network "
                             f"({str(err).splitlines()[0]})") from None
    return generator
