"""Data set presets: the parameters of a family of samples, and their validation.

A preset is a YAML mapping with ``kind``, ``shape``, ``voxel_size``, ``simulate`` (keyword
arguments of :func:`cellsynth.simulate.pipeline.simulate_sample`, without their ``_um``
suffix, as the ``cellsynth simulate`` flags name them) and ``synthesize`` (the settings of
:func:`cellsynth.synthesis.synthesize_image`); ``description`` and ``source`` document it.
The package ships presets in ``cellsynth/presets/*.yaml``.
"""

from __future__ import annotations

import copy
import inspect
import math
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from cellsynth import io
from cellsynth.checks import check_seed
from cellsynth.dataset.manifest import read_manifest
from cellsynth.errors import CellsynthError

PRESET_KEYS = ("description", "source", "family", "kind", "shape", "voxel_size", "simulate", "synthesize", "renderer")

SYNTHESIZE_KEYS = ("model", "alpha", "beta", "patch", "overlap", "crop", "blend", "batch_size", "device", "autocast")


def preset_names() -> list[str]:
    """Names of the presets shipped in the package (``cellsynth/presets/*.yaml``)."""
    folder = resources.files("cellsynth") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str | os.PathLike) -> dict[str, Any]:
    """Load and validate a preset.

    Parameters
    ----------
    name
        A shipped preset name (see :func:`preset_names`), a path to a YAML preset file, or
        the ``dataset.json`` of an existing data set (its parameters, to make more of the
        same).

    Returns
    -------
    dict
        The preset with the keys ``kind``, ``shape``, ``voxel_size``, ``simulate``,
        ``synthesize`` (and ``description``, ``source``, ``family``: the real volumes it
        mimics, ``renderer``: physics parameters used wherever it renders with the physics
        model, given inline or as a renderer file relative to the preset file), validated
        by :func:`validate_parameters`.

    Raises
    ------
    CellsynthError
        For an unknown name, an unreadable file, or unknown or invalid keys.
    """
    path = Path(name)
    if path.suffix == ".json":
        manifest = read_manifest(path.parent if path.name == "dataset.json" else path)
        data = {k: v for k, v in manifest["parameters"].items() if k != "seed"}
    elif path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise CellsynthError(f"preset file not found: {path}")
        data = _parse_yaml(path.read_text(), str(path))
        renderer = data.get("renderer")
        if isinstance(renderer, str) and not Path(renderer).is_absolute():  # relative to the preset file
            data["renderer"] = str(path.parent / renderer)
    else:
        folder = resources.files("cellsynth") / "presets"
        resource = folder / f"{name}.yaml"
        if not resource.is_file():
            raise CellsynthError(
                f"unknown preset {str(name)!r}; choose one of {', '.join(preset_names())} or give a .yaml file")
        data = _parse_yaml(resource.read_text(), f"preset {name}")
    return validate_parameters(data, source=str(name))


def _parse_yaml(text: str, where: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise CellsynthError(f"cannot parse {where}: {err}") from None
    if not isinstance(data, dict):
        raise CellsynthError(f"{where} must be a mapping of preset keys to values")
    return data


def simulate_keys() -> tuple[str, ...]:
    """The simulation parameter names a preset may set: the keyword arguments of
    :func:`cellsynth.simulate.pipeline.simulate_sample` without their ``_um`` suffix, as the
    flags of ``cellsynth simulate`` name them (``progress`` is a run option)."""
    return tuple(_simulate_arguments())


def simulate_arguments(values: Mapping[str, Any]) -> dict[str, Any]:
    """A preset's ``simulate`` values as keyword arguments of
    :func:`cellsynth.simulate.pipeline.simulate_sample` (``radius`` -> ``radius_um``).

    Examples
    --------
    >>> simulate_arguments({"radius": 4.0, "count": 10})
    {'radius_um': 4.0, 'count': 10}
    """
    names = _simulate_arguments()
    return {names[key]: value for key, value in values.items()}


def preset_values(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of :func:`cellsynth.simulate.pipeline.simulate_sample` as a preset's
    ``simulate`` values (``radius_um`` -> ``radius``): the inverse of :func:`simulate_arguments`.

    Examples
    --------
    >>> preset_values({"radius_um": 4.0, "count": 10})
    {'radius': 4.0, 'count': 10}
    """
    keys = {argument: key for key, argument in _simulate_arguments().items()}
    return {keys[name]: value for name, value in arguments.items()}


def _simulate_arguments() -> dict[str, str]:
    """Preset key -> keyword argument of ``simulate_sample``."""
    from cellsynth.simulate.pipeline import simulate_sample

    params = inspect.signature(simulate_sample).parameters.values()
    return {p.name.removesuffix("_um"): p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name != "progress"}


def validate_parameters(data: Mapping[str, Any], source: str = "parameters") -> dict[str, Any]:
    """Check preset or data set parameters and return them in canonical form.

    Shapes become lists of ints, voxel sizes lists of floats, ``synthesize.alpha`` a list
    of distinct positive floats; missing sections become empty mappings.

    Raises
    ------
    CellsynthError
        For unknown keys (at the top level, in ``simulate`` or in ``synthesize``) or
        invalid values.
    """
    data = copy.deepcopy(dict(data))
    unknown = sorted(set(data) - set(PRESET_KEYS) - {"seed"})
    if unknown:
        raise CellsynthError(f"{source}: unknown keys {', '.join(unknown)}; allowed: {', '.join(PRESET_KEYS)}")
    if data.get("kind") not in ("nuclei", "membranes"):
        raise CellsynthError(f"{source}: kind must be nuclei or membranes, got {data.get('kind')!r}")
    family = data.get("family")
    if family is not None and not (isinstance(family, str) and family.isidentifier()):
        raise CellsynthError(f"{source}: family must be a name such as arabidopsis_ovule_nuclei, got {family!r}")
    shape = data.get("shape")
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3
            and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in shape)):
        raise CellsynthError(f"{source}: shape must be three positive integers (z y x), got {shape!r}")
    data["shape"] = [int(s) for s in shape]
    data["voxel_size"] = list(io.check_voxel_size(data.get("voxel_size", (1.0, 1.0, 1.0))))
    for section, allowed in (("simulate", None), ("synthesize", SYNTHESIZE_KEYS)):
        values = data.get(section) or {}
        if not isinstance(values, dict):
            raise CellsynthError(f"{source}: {section} must be a mapping of parameter names to values")
        allowed = allowed or simulate_keys()
        bad = sorted(set(values) - set(allowed))
        if bad:
            raise CellsynthError(
                f"{source}: unknown {section} parameters {', '.join(bad)}; allowed: {', '.join(allowed)}")
        data[section] = dict(values)
    if data.get("renderer") is not None:  # a file becomes its parameters, so the data set records them
        from cellsynth.render.renderer_file import renderer_parameters

        data["renderer"] = renderer_parameters(data["renderer"], where=f"{source}: renderer")
    else:
        data.pop("renderer", None)
    synth = data["synthesize"]
    synth.setdefault("model", "default")
    synth["alpha"] = parse_alphas(synth.get("alpha", [100.0]))
    if "seed" in data:
        data["seed"] = check_seed(data["seed"])
    # one canonical key order, so that files do not depend on how the parameters were written
    data["simulate"], data["synthesize"] = dict(sorted(data["simulate"].items())), dict(sorted(synth.items()))
    return {k: data[k] for k in (*PRESET_KEYS, "seed") if k in data}


def parse_alphas(value: Any) -> list[float]:
    """Quality levels: a number, a list, or a comma-separated string such as ``"10,100,500"``."""
    items = value.split(",") if isinstance(value, str) else (value if isinstance(value, (list, tuple)) else [value])
    try:
        alphas = [float(a) for a in items]
    except (TypeError, ValueError):
        raise CellsynthError(f"alpha must be positive numbers such as 10,100,500 (µm), got {value!r}") from None
    if not alphas or not all(math.isfinite(a) and a > 0 for a in alphas):
        raise CellsynthError(f"alpha must be positive numbers such as 10,100,500 (µm), got {value!r}")
    if len(set(alphas)) != len(alphas):
        raise CellsynthError(f"alpha values must be distinct, got {value!r}")
    return alphas


def apply_overrides(parameters: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Set dotted keys (``shape``, ``simulate.radius``, ``synthesize.alpha``) and re-validate."""
    data = copy.deepcopy(dict(parameters))
    for key, value in overrides.items():
        parts = key.split(".")
        if len(parts) > 2 or (len(parts) == 2 and parts[0] not in ("simulate", "synthesize")):
            raise CellsynthError(f"cannot set {key!r}: use a top-level key or simulate.NAME / synthesize.NAME")
        target = data
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return validate_parameters(data, source="parameters with overrides")
