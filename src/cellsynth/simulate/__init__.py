"""Simulated annotations: organism -> cell positions -> nuclei or membranes (Sec. 3 of the paper).

- :mod:`~cellsynth.simulate.organism`: the organism foreground (box, ellipsoid, SH blob,
  a mask file or a shape model);
- :mod:`~cellsynth.simulate.positions`: cell positions (layer-wise, Poisson-disk, from a CSV);
- :mod:`~cellsynth.simulate.nuclei`: spherical-harmonic nuclei (Eq. 5-7);
- :mod:`~cellsynth.simulate.membranes`: whole cells by a weighted Voronoi tessellation (Eq. 3),
  also with a metric per cell;
- :mod:`~cellsynth.simulate.anisotropy`: cell sizes, elongated shapes, orientation fields and
  their packing (``packing="cells"``);
- :mod:`~cellsynth.simulate.fit`: tissue parameters fitted to real labels;
- :mod:`~cellsynth.simulate.annotations`: maps derived from labels (membrane walls, boundaries,
  centroids, the structure mask the generator sees);
- :mod:`~cellsynth.simulate.pipeline`: :func:`simulate_sample`, all stages in one call.

Nothing here imports torch.

Examples
--------
>>> import numpy as np
>>> from cellsynth.simulate import simulate_sample
>>> sample = simulate_sample("membranes", (16, 32, 32), (1.0, 1.0, 1.0), np.random.default_rng(0),
...                          organism="box", cell_size_um=8.0, progress=False)
>>> sample.labels.shape, sample.mask.dtype.name
((16, 32, 32), 'uint8')
"""

from cellsynth._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    ".pipeline": ["simulate_sample"],
    ".organism": ["make_organism"],
    ".positions": ["layered_positions", "poisson_disk_positions", "positions_from_csv"],
    ".nuclei": ["simulate_nuclei"],
    ".membranes": ["simulate_membranes", "weighted_voronoi"],
    ".anisotropy": ["CellPacking", "cell_metrics", "orientation_field"],
    ".fit": ["fit_tissue"],
    ".annotations": ["boundary_map", "centroid_map", "membrane_mask", "structure_mask", "surface_distance_map"],
})
