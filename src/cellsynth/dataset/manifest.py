"""``dataset.json``: a data set's parameters, package version, and every sample with its state."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cellsynth import io
from cellsynth.dataset.seeds import SPLIT_NAMES, sample_name
from cellsynth.errors import CellsynthError

DATASET_FORMAT = "cellsynth-dataset"

DATASET_FORMAT_VERSION = 1


def read_manifest(root: str | os.PathLike) -> dict[str, Any]:
    """Read and check ``root/dataset.json``.

    Raises
    ------
    CellsynthError
        If it is missing, not valid JSON, or not a cellsynth data set manifest.
    """
    path = Path(root) / "dataset.json"
    if not path.is_file():
        raise CellsynthError(f"{root} is not a cellsynth data set (no dataset.json); "
                             "create one with `cellsynth dataset`")
    manifest = io.read_json(path)
    if manifest.get("format") != DATASET_FORMAT or not isinstance(manifest.get("parameters"), dict) \
            or not isinstance(manifest.get("samples"), list):
        raise CellsynthError(f"{path} is not a valid cellsynth data set manifest (corrupted?); "
                             "restore it, or delete the folder and generate again")
    return manifest


def build_manifest(parameters: Mapping[str, Any], count: int, splits: Sequence[str],
              fractions: Sequence[float], states: Mapping[int, str], errors: Mapping[int, str]) -> dict[str, Any]:
    from cellsynth import __version__

    samples = []
    for i in range(count):
        record = {"name": sample_name(i), "index": i, "seed": parameters["seed"], "spawn_key": [i],
                  "split": splits[i], "state": states.get(i, "pending")}
        if i in errors:
            record["error"] = errors[i]
        samples.append(record)
    return {"format": DATASET_FORMAT, "format_version": DATASET_FORMAT_VERSION, "cellsynth_version": __version__,
            "count": count, "split_fractions": dict(zip(SPLIT_NAMES, fractions)),
            "parameters": dict(parameters), "samples": samples}


def differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    diffs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<unset>"), new.get(key, "<unset>")
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += differences(a, b, f"{prefix}{key}.")
        elif a != b:  # by value: 3 and 3.0 are the same radius
            diffs.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return diffs
