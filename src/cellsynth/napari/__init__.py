"""The cellsynth napari plugin (npe2; install with ``pip install "cellsynth[napari]"``).

napari finds it through the ``napari.manifest`` entry point (``napari.yaml`` here):

- reader (:mod:`~cellsynth.napari.reader`): sample folders, data set folders and OME-Zarr
  images open as layers at their voxel size in µm;
- writer (:mod:`~cellsynth.napari.writer`): labels (and image) layers back to a sample folder;
- sample data (:mod:`~cellsynth.napari.sample_data`): File > Open Sample > cellsynth;
- widgets: Synthesize (:mod:`~cellsynth.napari.synthesize_widget`: simulate and render in
  the background) and Compare (:mod:`~cellsynth.napari.compare_widget`: realism scores of a
  synthetic image against a real one).

:mod:`~cellsynth.napari.layers` turns samples into napari layer data and back; it needs
neither Qt nor napari. The rest of cellsynth never imports this package, so the base
install stays free of Qt.
"""
