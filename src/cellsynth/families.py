"""Families: the real microscope volumes that presets, renderers and models mimic.

A *family* is one kind of real image (a specimen, a structure and a microscope), named after
the real volume that stands for it. A preset that mimics a real volume names its family
(``family:`` key), and "the default model of a family" is the model that scores best on the
unpaired realism benchmark (:mod:`cellsynth.evaluate.realism`) against that family's real
volume, from masks simulated with the family's preset.

The real volumes are not shipped with the package: :attr:`Family.real_file` is relative to
the project's data folder (``../shared/data`` beside the repository; see its README for
sources and licences).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellsynth.errors import CellsynthError
from cellsynth.io import VoxelSize


@dataclass(frozen=True)
class Family:
    """One family of real images.

    Attributes
    ----------
    name
        The family's name, also the name of the preset that mimics it.
    kind
        ``"nuclei"`` or ``"membranes"``.
    real_file
        The labelled real volume (HDF5 with ``raw`` and ``label``), relative to the data folder.
    voxel_size
        Voxel size in µm (z, y, x) where the file records none (else None).
    source
        Where the volume comes from (citation and licence).
    """

    name: str
    kind: str
    real_file: str
    voxel_size: VoxelSize | None
    source: str


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("arabidopsis_ovule_nuclei", "nuclei", "nuclei/arabidopsis_ovule_nuclei_1135.h5", None,
           "GoNuclear (Vijayan et al., Development 2024); crop from kreshuklab/plant-seg, MIT"),
    Family("arabidopsis_ovule_membranes", "membranes", "membranes/arabidopsis_ovule_membranes.h5", None,
           "PlantSeg ovules (Wolny et al., eLife 2020); test resource of kreshuklab/plant-seg, MIT"),
    Family("lateral_root_membranes", "membranes", "membranes/lateral_root_membranes_train.h5", (0.25, 0.1625, 0.1625),
           "PlantSeg lateral root, light-sheet (Wolny et al., eLife 2020); patch from wolny/pytorch-3dunet, MIT; "
           "voxel size from PlantSeg's model card"),
)}
"""The families of the built-in presets, by name."""


def family(name: str) -> Family:
    """The family called ``name``.

    Raises
    ------
    CellsynthError
        For an unknown name.
    """
    if name not in FAMILIES:
        raise CellsynthError(f"unknown family {name!r}; known families: {', '.join(FAMILIES)}")
    return FAMILIES[name]


HELDOUT_FRACTION = 0.25
"""The last quarter of every real volume along y is held out of every fit (the project's rule)."""


def real_volume(name: str, data_dir: str | os.PathLike, *, part: str = "full",
                membrane_thickness_um: float | None = None) -> Any:
    """The family's real volume with its labels, as a benchmark volume.

    Parameters
    ----------
    name
        The family.
    data_dir
        The folder of the real volumes (``../shared/data``).
    part
        ``"full"``, ``"fit"`` (the first 75 % along y) or ``"heldout"`` (the last 25 %).
    membrane_thickness_um
        Wall thickness drawn between membrane labels for the CNR.

    Returns
    -------
    cellsynth.evaluate.realism.RealismVolume
    """
    from cellsynth import io
    from cellsynth.evaluate.realism import realism_volume
    from cellsynth.gan.data import split_regions

    fam = family(name)
    path = Path(data_dir) / fam.real_file
    if not path.is_file():
        raise CellsynthError(f"the real volume of {name} is not at {path}; give the data folder (../shared/data)")
    raw, voxel = io.read_h5(path, "raw")
    labels, _ = io.read_h5(path, "label")
    fit, heldout = split_regions(raw.shape, HELDOUT_FRACTION, "y")
    parts = {"full": (slice(None),) * 3, "fit": fit, "heldout": heldout}
    if part not in parts:
        raise CellsynthError(f"part must be one of {', '.join(parts)}, got {part!r}")
    box = parts[part]
    return realism_volume(raw[box], voxel or fam.voxel_size, kind=fam.kind, labels=labels[box],
                          membrane_thickness_um=membrane_thickness_um, name=f"{fam.real_file} ({part})")
