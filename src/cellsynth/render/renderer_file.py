"""Renderer files: physics parameters in YAML, as ``cellsynth calibrate`` writes them.

A renderer file holds the parameters of the physics renderer
(:class:`cellsynth.render.physics.PhysicsParameters`) fitted to one microscope, with how
they were obtained::

    # the command that made it
    format: cellsynth-renderer
    model: physics
    kind: membranes
    membrane_thickness_um: 0.75     # the apparent wall thickness (a simulation parameter)
    parameters: {psf_sigma_um: [0.4, 0.57, 0.61], signal_photons: ..., ...}
    notes: [...]                    # what the data could not identify
    fit: {...}                      # intermediate estimates
    scores: {...}                   # benchmark of the fit, on the fitted and held-out parts

``synthesize --renderer FILE``, ``dataset --renderer FILE`` and the ``renderer:`` key of
presets and configs take such a file, or (presets) the ``parameters`` mapping inline.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cellsynth import io
from cellsynth.errors import CellsynthError

RENDERER_FORMAT = "cellsynth-renderer"


def write_renderer(path: str | os.PathLike, parameters: Mapping[str, Any], *, kind: str,
                   membrane_thickness_um: float | None = None, header: str = "",
                   extra: Mapping[str, Any] | None = None) -> None:
    """Write a renderer file (atomically).

    Parameters
    ----------
    path
        The ``.yaml`` file.
    parameters
        Physics parameters (validated before anything is written).
    kind
        ``"nuclei"`` or ``"membranes"``.
    membrane_thickness_um
        The apparent wall thickness (membranes).
    header
        Comment lines put on top (e.g. the command that made the file).
    extra
        More top-level keys (``notes``, ``fit``, ``scores``).
    """
    import yaml

    from cellsynth.render.physics import PhysicsParameters

    PhysicsParameters.from_mapping(parameters, f"renderer {path}")
    record: dict[str, Any] = {"format": RENDERER_FORMAT, "model": "physics", "kind": kind}
    if membrane_thickness_um is not None:
        record["membrane_thickness_um"] = float(membrane_thickness_um)
    record["parameters"] = io._jsonable(dict(parameters))
    record.update(io._jsonable(dict(extra or {})))
    comments = "".join(f"# {line}\n" for line in header.splitlines())
    with io.atomic_path(path) as tmp:
        tmp.write_text(comments + yaml.safe_dump(record, sort_keys=False, allow_unicode=True, width=110),
                       encoding="utf-8")


def read_renderer(path: str | os.PathLike) -> dict[str, Any]:
    """Read a renderer file; its ``parameters`` are validated.

    Raises
    ------
    CellsynthError
        For a missing or unreadable file, or one that is not a renderer file.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise CellsynthError(f"renderer file not found: {path}; make one with `cellsynth calibrate`")
    try:
        record = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise CellsynthError(f"cannot parse renderer file {path}: {err}") from None
    if not isinstance(record, dict) or record.get("format") != RENDERER_FORMAT or "parameters" not in record:
        raise CellsynthError(f"{path} is not a renderer file (no 'format: {RENDERER_FORMAT}' and 'parameters'); "
                             "make one with `cellsynth calibrate`")
    renderer_parameters(record["parameters"], where=f"renderer {path}")
    return record


def renderer_parameters(value: Any, where: str = "renderer") -> dict[str, Any]:
    """Physics parameters from a renderer file path or an inline mapping (validated).

    Returns
    -------
    dict
        Plain values (lists for ``psf_sigma_um``), ready for YAML or JSON and for
        :class:`cellsynth.render.physics.PhysicsRenderer`.
    """
    from dataclasses import asdict

    from cellsynth.render.physics import PhysicsParameters

    if isinstance(value, (str, os.PathLike)):
        value = read_renderer(value)["parameters"]
    if not isinstance(value, Mapping):
        raise CellsynthError(f"{where} must be a renderer file or a mapping of physics parameters, got {value!r}")
    checked = asdict(PhysicsParameters.from_mapping(value, where))
    return {k: (list(checked[k]) if isinstance(checked[k], tuple) else checked[k]) for k in value}
