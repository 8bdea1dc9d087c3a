"""cellsynth: fully annotated synthetic 3D fluorescence microscopy data.

Simulate an annotation (organism, cell positions, nuclei or membranes), render a
microscope image that fits it voxel for voxel, and measure how realistic it is. Arrays are
in axis order (Z, Y, X); voxel sizes are in µm as (z, y, x); keyword arguments carry their
unit in the name (``radius_um``).

The functions below are available from the top level; their modules are imported on first
use, so ``import cellsynth`` stays fast (it imports neither torch nor dask).

- simulate: :func:`simulate_sample` (all stages), :func:`make_organism`,
  :func:`simulate_nuclei`, :func:`simulate_membranes`, :func:`structure_mask`,
  :func:`membrane_mask`
- render: :func:`synthesize_image`, :func:`synthesize_to_file`,
  :func:`annotation_from_labels`, :func:`load_model`, :func:`positional_map`
- measure: :func:`nrmse`, :func:`ssim`, :func:`zncc`, :func:`histogram_distance`,
  :func:`spectrum_distance`, :func:`kid_score`, :func:`paired_metrics`,
  :func:`seam_metric`, :func:`normalize_percentiles`; the unpaired realism benchmark
  :func:`realism_benchmark` of :func:`realism_volume` sets
- annotate real images: :func:`annotate_nuclei`, :func:`annotate_membranes`
- files: :func:`read_volume`, :func:`write_volume`, :func:`read_sample`,
  :func:`write_sample`, :class:`Sample`
- data sets: :func:`generate_dataset`, :func:`load_dataset`, :func:`load_preset`,
  :func:`preset_names`, :func:`export_dataset` (to StarDist, Cellpose, nnU-Net, PlantSeg)

Examples
--------
>>> import numpy as np
>>> import cellsynth as cs
>>> sample = cs.simulate_sample("nuclei", (16, 48, 48), (1.0, 0.5, 0.5), np.random.default_rng(0),
...                             radius_um=3.0, count=5, progress=False)
>>> image = cs.synthesize_image(sample.mask, sample.foreground, sample.voxel_size, kind="nuclei",
...                             progress=False)
>>> image.shape, image.dtype.name
((16, 48, 48), 'float32')
>>> cs.zncc(image, image)
1.0
"""

from importlib.metadata import PackageNotFoundError, version

from cellsynth._lazy import attach

try:
    __version__ = version("cellsynth")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__getattr__, __dir__, _public = attach(__name__, {
    "cellsynth.errors": ["CellsynthError"],
    "cellsynth.simulate.pipeline": ["simulate_sample"],
    "cellsynth.simulate.organism": ["make_organism"],
    "cellsynth.simulate.nuclei": ["simulate_nuclei"],
    "cellsynth.simulate.membranes": ["simulate_membranes"],
    "cellsynth.simulate.annotations": ["membrane_mask", "structure_mask"],
    "cellsynth.conditioning": ["positional_map"],
    "cellsynth.synthesis": ["annotation_from_labels", "synthesize_image", "synthesize_to_file"],
    "cellsynth.render.registry": ["load_model"],
    "cellsynth.evaluate.metrics": ["histogram_distance", "kid_score", "nrmse", "paired_metrics", "seam_metric",
                                   "spectrum_distance", "ssim", "zncc"],
    "cellsynth.evaluate.realism": ["realism_benchmark", "realism_volume"],
    "cellsynth.intensity": ["normalize_percentiles"],
    "cellsynth.annotate": ["annotate_membranes", "annotate_nuclei"],
    "cellsynth.io": ["Sample", "read_sample", "read_volume", "write_sample", "write_volume"],
    "cellsynth.dataset": ["generate_dataset", "load_dataset", "load_preset", "preset_names"],
    "cellsynth.export": ["export_dataset"],
}, submodules=["dataset", "evaluate", "gan", "io", "omezarr", "render", "shapes", "simulate"])
__all__ = ["__version__", *_public]
