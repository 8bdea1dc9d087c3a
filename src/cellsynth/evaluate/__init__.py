"""How realistic and how useful synthetic images are (section 4 of the paper).

- :mod:`~cellsynth.evaluate.metrics`: paired (NRMSE, SSIM, ZNCC) and distribution
  (histogram, spectrum, KID-style) metrics, and the tiling seam metric;
- :mod:`~cellsynth.evaluate.realism`: the unpaired realism benchmark (sets of synthetic
  volumes against real volumes of a family, with the real-vs-real floor), with the filter
  bank of its KID in :mod:`~cellsynth.evaluate.filterbank`;
- :mod:`~cellsynth.evaluate.tissue`: tissue statistics of labels (cell size, shape,
  orientation, packing), real against simulated crop for crop;
- :mod:`~cellsynth.evaluate.plots`: figures with µm axes;
- :mod:`~cellsynth.evaluate.report`: ``metrics.json``, figures and ``report.html``;
- :mod:`~cellsynth.evaluate.segmentation`: segmentation scores (tolerance IoU, instance F1);
- :mod:`~cellsynth.evaluate.segmenter`: a small baseline segmenter (Syn2Real).

Examples
--------
>>> import numpy as np
>>> from cellsynth.evaluate import zncc
>>> image = np.random.default_rng(0).random((4, 16, 16))
>>> round(zncc(image, 2 * image + 1), 6)
1.0
"""

from cellsynth._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    ".metrics": ["histogram_distance", "kid_score", "nrmse", "paired_metrics", "seam_metric", "spectrum_distance",
                 "ssim", "zncc"],
    ".realism": ["RealismVolume", "realism_benchmark", "realism_volume"],
    ".report": ["dataset_volumes", "evaluate_pair", "evaluate_unpaired"],
    ".segmentation": ["match_instances", "multiclass_scores", "tolerance_iou"],
    ".tissue": ["compare_tissue", "measure_cells", "summarize"],
})
