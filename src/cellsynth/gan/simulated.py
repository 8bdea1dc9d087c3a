"""Simulated annotations for GAN training: the masks users will render, without images.

A generator trained only on the masks of a few real volumes learns their statistics (wall
thickness, nucleus shapes, density) and misbehaves on simulated masks, where users apply it
(Eschweiler et al. 2021, section 3: when masks and images disagree, the generator deforms
structures). :func:`simulated_volumes` simulates a pool of annotations with a preset, the
same way ``cellsynth dataset`` does, and turns each into a masks-only
:class:`~cellsynth.gan.data.TrainingVolume` (structure mask and positional map of its
organism, no image), from which :class:`~cellsynth.gan.data.PatchSampler` draws patches.

The pool is a fixed function of the preset, the seed and the count (sample ``i`` uses the
seed sequence of a data set's sample ``i``, :func:`cellsynth.dataset.sample_seeds`), so a
resumed training rebuilds the same pool.
"""

from __future__ import annotations

import os

import numpy as np

from cellsynth.errors import CellsynthError
from cellsynth.gan.data import TrainingVolume
from cellsynth.io import VoxelSize

VOXEL_SIZE_TOLERANCE = 0.05
"""Largest relative difference between the preset's voxel size and the training data's."""


def simulated_volumes(preset: str | os.PathLike, count: int, seed: int, *, kind: str,
                      voxel_size: VoxelSize | None = None, membrane_thickness_um: float | None = None,
                      alpha: float = 100.0, beta: float = 100.0) -> list[TrainingVolume]:
    """Simulate ``count`` annotations with ``preset`` as masks-only training volumes.

    Parameters
    ----------
    preset
        A shipped preset name or a preset YAML file (:func:`cellsynth.dataset.load_preset`).
    count
        Number of simulated samples.
    seed
        Seed of the pool (sample ``i`` is simulated like sample ``i`` of a data set with this seed).
    kind
        The structure the generator renders; the preset must simulate the same.
    voxel_size
        Voxel size (µm) of the real training data: the generator works in voxels, so the
        preset must use the same within :data:`VOXEL_SIZE_TOLERANCE`.
    membrane_thickness_um
        Wall thickness (µm) of the real training masks (None: the simulation's default);
        membrane presets must draw their walls as thick.
    alpha, beta
        Positional map decay lengths in µm (Eq. 1), as for the real volumes.

    Raises
    ------
    CellsynthError
        For a preset of another kind, voxel size or wall thickness, or a count below 1.
    """
    from cellsynth.conditioning import positional_map
    from cellsynth.dataset import load_preset, sample_seeds
    from cellsynth.dataset.presets import simulate_arguments
    from cellsynth.simulate.pipeline import simulate_sample

    if count < 1:
        raise CellsynthError(f"--simulated-pool must be at least 1, got {count}")
    parameters = load_preset(preset)
    if parameters["kind"] != kind:
        raise CellsynthError(f"preset {preset} simulates {parameters['kind']}, but the training data are {kind}; "
                             f"give a {kind} preset")
    voxel = tuple(float(v) for v in parameters["voxel_size"])
    if voxel_size is not None and not np.allclose(voxel, voxel_size, rtol=VOXEL_SIZE_TOLERANCE):
        raise CellsynthError(f"preset {preset} has voxel size {voxel} µm but the training data {tuple(voxel_size)} "
                             "µm; the generator works in voxels, so give a preset of the data's voxel size")
    if kind == "membranes":
        from cellsynth.simulate.annotations import DEFAULT_MEMBRANE_THICKNESS_UM

        walls = parameters["simulate"].get("membrane_thickness") or DEFAULT_MEMBRANE_THICKNESS_UM
        if not np.isclose(walls, membrane_thickness_um or DEFAULT_MEMBRANE_THICKNESS_UM):
            raise CellsynthError(f"preset {preset} draws walls {walls:g} µm thick but the real training masks "
                                 f"{membrane_thickness_um or DEFAULT_MEMBRANE_THICKNESS_UM:g} µm; pass "
                                 f"--membrane-thickness {walls:g}")
    volumes = []
    for index in range(count):
        simulation_seed, _ = sample_seeds(seed, index)
        sample = simulate_sample(kind, tuple(parameters["shape"]), voxel, np.random.default_rng(simulation_seed),
                                 progress=False, **simulate_arguments(parameters["simulate"]))
        volumes.append(TrainingVolume(f"{preset} #{index}", None, np.asarray(sample.mask, np.uint8),
                                      positional_map(sample.foreground, voxel, alpha, beta), voxel))
    return volumes
