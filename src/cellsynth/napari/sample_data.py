"""napari sample data (File > Open Sample > cellsynth): small samples made on the fly.

Nothing is downloaded: each entry simulates a small annotation and renders it with the
physics model, in a second or two, with a fixed seed (the same layers every time).
"""

from __future__ import annotations

import numpy as np

from cellsynth.napari.layers import LayerData, layers_from_sample

SHAPE = (32, 128, 128)
VOXEL_SIZE_UM = (1.0, 0.5, 0.5)
SEED = 0


def _synthesized(kind: str, **simulate: float) -> list[LayerData]:
    from cellsynth.simulate.pipeline import simulate_sample
    from cellsynth.synthesis import synthesize_image

    sample = simulate_sample(kind, SHAPE, VOXEL_SIZE_UM, np.random.default_rng(SEED), progress=False, **simulate)
    sample.image = synthesize_image(sample.mask, sample.foreground, VOXEL_SIZE_UM, model="physics", kind=kind,
                                    seed=SEED, progress=False)
    sample.metadata = {**sample.metadata, "seed": SEED, "synthesis": {"model": "physics", "seed": SEED}}
    return layers_from_sample(sample, f"cellsynth {kind}")


def nuclei_sample() -> list[LayerData]:
    """Spherical-harmonic nuclei (radius 4 µm) in an ellipsoidal organism, 32x128x128
    voxels of 1x0.5x0.5 µm, rendered by the physics model."""
    return _synthesized("nuclei", radius_um=4.0)


def membranes_sample() -> list[LayerData]:
    """Weighted-Voronoi cells of 10 µm in an ellipsoidal organism, 32x128x128 voxels of
    1x0.5x0.5 µm, rendered by the physics model."""
    return _synthesized("membranes", cell_size_um=10.0)
