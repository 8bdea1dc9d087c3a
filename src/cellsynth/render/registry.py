"""Resolve a ``--model`` value to a synthesis model.

Accepted values:

- ``"physics"``: the optical forward model (:class:`cellsynth.render.physics.PhysicsRenderer`);
- ``"default"``: the best built-in model for the kind: the generator shipped in
  ``cellsynth/models/<kind>.pt`` where its held-out scores (``<kind>.scores.json``) beat
  the physics renderer on ZNCC, histogram distance and spectrum distance on every held-out
  volume, else ``"physics"``;
- ``"nuclei"`` / ``"membranes"``: the shipped generator of that name;
- a path to a generator or training checkpoint written by ``cellsynth train``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cellsynth.errors import CellsynthError
from cellsynth.io import VoxelSize, check_voxel_size

KINDS = ("nuclei", "membranes")
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "models"
"""Folder of the generators shipped with the package (``<kind>.pt``)."""


def shipped_model(name: str) -> Path | None:
    """Path of the shipped generator ``name`` (a kind), or None where it is not installed."""
    path = SHIPPED_DIR / f"{name}.pt"
    return path if path.is_file() else None


REQUIRED_WINS = {"zncc": 1.0, "histogram_distance": -1.0, "spectrum_distance": -1.0}
"""Scores a shipped generator must beat physics on (sign: +1 higher is better, -1 lower)."""


def beats_physics(scores: list[dict[str, Any]]) -> bool:
    """Whether a generator's held-out scores beat the physics renderer's on every volume.

    ``scores`` holds one entry per held-out volume with ``"generator"`` and ``"physics"``
    score dicts (the ``<kind>.scores.json`` written beside a shipped model).
    """
    return bool(scores) and all(
        sign * (entry["generator"][name] - entry["physics"][name]) > 0
        for entry in scores for name, sign in REQUIRED_WINS.items()
    )


def default_model_name(kind: str) -> str:
    """What ``"default"`` resolves to for ``kind``: the shipped generator's name where it
    beats the physics renderer on its held-out data (see :func:`beats_physics`), else
    ``"physics"``."""
    import json

    _check_kind(kind)
    scores = SHIPPED_DIR / f"{kind}.scores.json"
    if shipped_model(kind) is None or not scores.is_file():
        return "physics"
    try:
        return kind if beats_physics(json.loads(scores.read_text())) else "physics"
    except (ValueError, KeyError, TypeError):
        return "physics"


def load_model(
    spec: str | os.PathLike, kind: str, device: Any = "cpu", *,
    voxel_size: VoxelSize | None = None, seed: int = 0, **physics: Any,
) -> Any:
    """Load a synthesis model.

    Parameters
    ----------
    spec
        ``"physics"``, ``"default"``, a shipped name (``"nuclei"``, ``"membranes"``) or a
        checkpoint path.
    kind
        The structure to render, ``"nuclei"`` or ``"membranes"``. A generator trained on
        another kind is refused.
    device
        Torch device.
    voxel_size
        Voxel size in µm (z, y, x); the physics model needs it (default 1 µm isotropic).
    seed
        Seed of the model's randomness (noise, brightness fields).
    **physics
        Parameters of :class:`cellsynth.render.physics.PhysicsParameters` (physics only).

    Returns
    -------
    A :class:`cellsynth.render.model.SynthesisModel`.

    Raises
    ------
    CellsynthError
        For an unknown name, a missing file, or a checkpoint of another kind.
    """
    from cellsynth.tiling import check_device

    _check_kind(kind)
    device = check_device(device)
    name = str(spec)
    if name == "default":
        name = default_model_name(kind)
    if name == "physics":
        from cellsynth.render.physics import PhysicsRenderer

        return PhysicsRenderer(check_voxel_size(voxel_size or (1.0, 1.0, 1.0)), seed=seed, device=device, **physics)
    if physics:
        raise CellsynthError(f"physics parameters ({', '.join(sorted(physics))}) apply only to --model physics")
    if name in KINDS:
        path = shipped_model(name)
        if path is None:
            raise CellsynthError(f"this installation has no shipped {name} model; use --model physics "
                                 "or a checkpoint from `cellsynth train`")
    else:
        path = Path(spec)
        if not path.is_file():
            raise CellsynthError(f"model {spec!s} not found: give physics, default, nuclei, membranes "
                                 "or the path of a generator from `cellsynth train`")
    try:
        from cellsynth.render.gan import load_generator
    except ImportError as err:
        raise CellsynthError(f"cannot load {path}: GAN support is unavailable ({err}); use --model physics") from None
    return load_generator(path, device, kind=kind, seed=seed)


def describe_model(model: Any) -> dict[str, Any]:
    """What determines a model's output, for recording beside the image."""
    if hasattr(model, "description"):
        return model.description()
    info = {"model": type(model).__name__, "kind": getattr(model, "kind", None), "seed": getattr(model, "seed", None)}
    info.update({k: v for k, v in getattr(model, "info", {}).items() if isinstance(v, (str, int, float, list, dict))})
    return info


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise CellsynthError(f"unknown kind {kind!r}; use nuclei or membranes")
