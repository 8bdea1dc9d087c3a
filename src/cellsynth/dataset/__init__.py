"""Fully annotated data sets: many simulated samples with their synthetic images.

A data set is a folder::

    DIR/
      dataset.json     parameters, package version, every sample with its seed and state
      splits.csv       name,split (train / val / test)
      README.md        what the data set is, how it was made, how to load it
      log.jsonl        per-sample timings and errors of each run (the one file that is not
                       reproducible byte for byte)
      samples/
        sample_0000/   a sample folder (see :func:`cellsynth.io.write_sample`) with
                       image.tif, or image_alpha{A}.tif per quality level alpha

Every sample is one task with its own seed (:mod:`cellsynth.dataset.seeds`), so a sample's
files do not depend on how many workers made it, in which order, or whether the run was
interrupted and resumed. Sample folders are assembled under a temporary name and renamed
when complete; a re-run with the same parameters makes only the missing samples.

The modules, one job each:

- :mod:`~cellsynth.dataset.presets`: presets and the validation of parameters;
- :mod:`~cellsynth.dataset.seeds`: the seeds of the samples and the train/val/test splits;
- :mod:`~cellsynth.dataset.sample`: making one sample (the task);
- :mod:`~cellsynth.dataset.manifest`: ``dataset.json``;
- :mod:`~cellsynth.dataset.executors`: running the tasks in process or on Dask;
- :mod:`~cellsynth.dataset.runner`: :func:`generate_dataset`, which ties them together;
- :mod:`~cellsynth.dataset.readme`: the data set's README.md;
- :mod:`~cellsynth.dataset.loading`: :func:`load_dataset` and the PyTorch patch dataset.

Examples
--------
>>> import cellsynth as cs
>>> cs.load_preset("nuclei")["kind"]
'nuclei'
"""

from cellsynth._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    ".presets": ["PRESET_KEYS", "SYNTHESIZE_KEYS", "apply_overrides", "load_preset", "parse_alphas",
                 "preset_names", "preset_values", "simulate_arguments", "simulate_keys", "validate_parameters"],
    "cellsynth.checks": ["check_seed"],
    ".seeds": ["DEFAULT_SPLITS", "SPLIT_NAMES", "assign_splits", "check_split_fractions",
               "sample_name", "sample_seeds"],
    ".sample": ["image_name", "make_sample", "one_thread"],
    ".manifest": ["DATASET_FORMAT", "DATASET_FORMAT_VERSION", "read_manifest"],
    ".executors": ["default_workers"],
    ".runner": ["RunReport", "generate_dataset"],
    ".loading": ["PatchDataset", "SyntheticDataset", "load_dataset"],
})
