"""Resolve a ``--model`` value to a synthesis model.

Accepted values:

- ``"physics"``: the optical forward model (:class:`cellsynth.render.physics.PhysicsRenderer`);
- ``"default"``: the model with the best unpaired realism benchmark from simulated masks
  against the real volumes of the family (or, without a family, of every family of the
  kind), as ``scripts/choose_defaults.py`` records it in ``cellsynth/models/defaults.json``;
  ``"physics"`` where the file names no installed model;
- ``"nuclei"`` / ``"membranes"`` (or any other ``cellsynth/models/<name>.pt``): a shipped
  generator;
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
    """Path of the shipped generator ``name`` (``cellsynth/models/<name>.pt``), or None where it
    is not installed."""
    path = SHIPPED_DIR / f"{name}.pt"
    return path if name and "/" not in name and path.is_file() else None


def shipped_generators(kind: str) -> list[str]:
    """Names of the shipped generators that render ``kind`` (one per kind or per family),
    from the kind their files record."""
    from cellsynth.gan.checkpoints import read_generator

    return sorted(p.stem for p in SHIPPED_DIR.glob("*.pt") if read_generator(p).get("kind") == kind)


DEFAULTS_FILE = "defaults.json"
"""The default model of each family and kind, beside the shipped models (``scripts/choose_defaults.py``)."""


def default_model_name(kind: str, family: str | None = None) -> str:
    """What ``"default"`` resolves to: the model that ``models/defaults.json`` names for
    ``family`` (the best on the unpaired realism benchmark from simulated preset masks), or
    for ``kind`` where the family is not listed; ``"physics"`` where the file is missing or
    names a model that is not installed."""
    import json

    _check_kind(kind)
    try:
        record = json.loads((SHIPPED_DIR / DEFAULTS_FILE).read_text())
        entry = record.get("families", {}).get(family) if family else None
        name = entry["model"] if entry and entry.get("kind") == kind else record.get("kinds", {}).get(kind)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "physics"
    return name if isinstance(name, str) and (name == "physics" or shipped_model(name) is not None) else "physics"


def load_model(
    spec: str | os.PathLike, kind: str, device: Any = "cpu", *,
    voxel_size: VoxelSize | None = None, seed: int = 0, renderer: Any = None, family: str | None = None,
    **physics: Any,
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
    family
        The family of real volumes being mimicked (a preset's ``family``): chooses what
        ``"default"`` means (:func:`default_model_name`).
    renderer
        Physics parameters for the physics model: a renderer file from ``cellsynth
        calibrate`` or a mapping (a preset's ``renderer:``). A generator does not use them
        (a preset's renderer applies wherever it renders with physics).
    **physics
        Parameters of :class:`cellsynth.render.physics.PhysicsParameters` (physics only;
        they override ``renderer``).

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
        name = default_model_name(kind, family)
    if name == "physics":
        from cellsynth.render.physics import PhysicsRenderer
        from cellsynth.render.renderer_file import renderer_parameters

        fitted = renderer_parameters(renderer) if renderer is not None else {}
        return PhysicsRenderer(check_voxel_size(voxel_size or (1.0, 1.0, 1.0)), seed=seed, device=device,
                               **{**fitted, **physics})
    if physics:
        raise CellsynthError(f"physics parameters apply only to the physics model, not to {spec!s}; "
                             "drop them or use --model physics")
    if name in KINDS or shipped_model(name) is not None:
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
