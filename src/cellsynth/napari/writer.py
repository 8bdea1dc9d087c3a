"""napari writer: a labels layer (with mask, foreground and image layers) as a sample folder.

Select the layers of one sample (at least its labels) and use File > Save Selected Layers
with the cellsynth writer, or ``viewer.layers.save(path, plugin="cellsynth")``. The folder
is the one ``cellsynth simulate`` writes (ImageJ TIFFs at the layers' voxel size,
``positions.csv``, ``sample.json``), assembled under a temporary name and renamed when
complete; an existing non-empty folder is never replaced.
"""

from __future__ import annotations

from collections.abc import Sequence

from cellsynth import io
from cellsynth.napari.layers import LayerData, sample_from_layers


def write_sample_folder(path: str, layer_data: Sequence[LayerData]) -> list[str]:
    """Write the given layers as a sample folder at ``path``; return ``[path]``.

    See :func:`cellsynth.napari.layers.sample_from_layers` for how layers become the
    sample's volumes.

    Raises
    ------
    CellsynthError
        If the layers do not make a sample, or ``path`` exists and is not empty.
    """
    sample, images = sample_from_layers(layer_data)
    sample.metadata = {**sample.metadata, "saved_from": "napari"}
    io.write_sample(path, sample, images=images)
    return [str(path)]
