"""cellsynth: fully annotated synthetic 3D fluorescence microscopy data.

Arrays are in axis order (Z, Y, X); voxel sizes are in µm as (z, y, x).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cellsynth")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "load_dataset"]


def __getattr__(name: str):
    # Lazy so that `import cellsynth` stays light (no torch, no dask).
    if name == "load_dataset":
        from cellsynth.dataset import load_dataset

        return load_dataset
    raise AttributeError(f"module 'cellsynth' has no attribute {name!r}")
