"""The "Compare" widget: realism scores of a synthetic image against a real one, in napari.

Pick a real image layer and a synthetic one. The unpaired scores compare the two as
distributions (they need not show the same cells or have the same shape): intensity
histogram W1, log radial xy power spectrum distance (cycles/µm) and the KID-style texture
score (:mod:`cellsynth.evaluate.metrics`). Where the synthetic image was rendered from the
real image's own labels, pick that labels layer too: the images are then a pair, and the
paired scores (NRMSE, SSIM, ZNCC) are added. Both images are normalized by their own 1st
and 99.9th percentiles. The histograms and spectra are drawn below the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, PushButton
from napari.layers import Image, Labels
from napari.qt.threading import FunctionWorker, create_worker
from napari.utils.notifications import show_error

from cellsynth import io
from cellsynth.errors import CellsynthError
from cellsynth.napari.synthesize_widget import error_line

if TYPE_CHECKING:
    import napari

NO_LABELS = "(none: unpaired only)"
UNPAIRED = ("histogram_distance", "spectrum_distance", "kid")
PAIRED = ("nrmse", "ssim", "zncc")
LOWER_IS_BETTER = {"histogram_distance": True, "spectrum_distance": True, "kid": True, "nrmse": True,
                   "ssim": False, "zncc": False}


def layer_voxel_size(layer: Any) -> io.VoxelSize:
    """The voxel size in µm of a 3D layer: its scale."""
    if layer.ndim != 3:
        raise CellsynthError(f"layer {layer.name!r} is {layer.ndim}D; compare 3D (Z, Y, X) volumes "
                             "(one sample of a stack at a time)")
    return io.check_voxel_size(layer.scale)


def compare_images(real: Any, synthetic: Any, real_voxel: io.VoxelSize, synthetic_voxel: io.VoxelSize, *,
                   paired: bool = False) -> dict[str, Any]:
    """The Compare widget's scores and curves.

    Parameters
    ----------
    real, synthetic
        The two images (Z, Y, X), any intensity range.
    real_voxel, synthetic_voxel
        Their voxel sizes in µm (z, y, x); the spectrum needs them equal.
    paired
        The synthetic image was rendered from the real image's labels: add the paired
        scores (the images must have one shape).

    Returns
    -------
    dict
        ``scores`` (name -> value), ``histograms`` and ``spectra`` (``real`` and
        ``synthetic``) for the plots.

    Raises
    ------
    CellsynthError
        For voxel sizes that differ, or a pair of different shapes.
    """
    from cellsynth.evaluate import metrics
    from cellsynth.intensity import normalize

    if not np.allclose(real_voxel, synthetic_voxel, rtol=1e-3):
        raise CellsynthError(f"the real image has {tuple(real_voxel)} µm voxels and the synthetic one "
                             f"{tuple(synthetic_voxel)} µm; render the synthetic image at the real voxel size")
    real, synthetic = normalize(np.asarray(real)), normalize(np.asarray(synthetic))
    if paired:
        if real.shape != synthetic.shape:
            raise CellsynthError(f"a pair needs one shape, got {real.shape} and {synthetic.shape}; choose no labels "
                                 "for unpaired scores")
        scores, curves = metrics.paired_metrics_details(real, synthetic, voxel_size=real_voxel, percentiles=None)
        return {"scores": {k: scores[k] for k in (*UNPAIRED, *PAIRED)}, **curves}
    fmax = min(0.5 / real_voxel[1], 0.5 / real_voxel[2])
    histograms = {name: metrics.intensity_histogram(image, percentiles=None)
                  for name, image in (("real", real), ("synthetic", synthetic))}
    spectra = {name: metrics.xy_power_spectrum(image, real_voxel, max_frequency=fmax, percentiles=None)
               for name, image in (("real", real), ("synthetic", synthetic))}
    scores = {"histogram_distance": metrics.wasserstein_histograms(histograms["real"], histograms["synthetic"]),
              "spectrum_distance": metrics.log_spectrum_distance(spectra["real"][1], spectra["synthetic"][1]),
              "kid": metrics.kid_score(real, synthetic, percentiles=None)}
    return {"scores": scores, "histograms": histograms, "spectra": spectra}


def format_scores(scores: Mapping[str, float]) -> str:
    """The scores as lines ``name  value  (lower/higher is better)``."""
    return "\n".join(f"{name:<20s}{value:9.4f}  ({'lower' if LOWER_IS_BETTER[name] else 'higher'} is better)"
                     for name, value in scores.items())


class CompareWidget(Container):
    """Realism scores and plots of a synthetic image layer against a real one (see the module notes).

    Parameters
    ----------
    napari_viewer
        The viewer whose layers are compared (napari passes it).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.real = ComboBox(label="real image", choices=self._image_names)
        self.synthetic = ComboBox(label="synthetic image", choices=self._image_names)
        self.labels = ComboBox(label="real labels", choices=self._labels_names,
                               tooltip="the labels the synthetic image was rendered from: adds the paired scores")
        self.compare_button = PushButton(text="Compare")
        self.table = Label(label="scores", value="")
        self.extend([self.real, self.synthetic, self.labels, self.compare_button, self.table])
        self.result: dict[str, Any] | None = None
        self.worker: FunctionWorker | None = None
        self._figure, self._canvas = _plot_canvas()
        self.native.layout().addWidget(self._canvas)
        for event in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            event.connect(self.reset_choices)
        self.compare_button.changed.connect(self.compare)

    def _image_names(self, *_: Any) -> list[str]:
        return [layer.name for layer in self.viewer.layers if isinstance(layer, Image)]

    def _labels_names(self, *_: Any) -> list[str]:
        return [NO_LABELS, *(layer.name for layer in self.viewer.layers if isinstance(layer, Labels))]

    def compare(self) -> FunctionWorker | None:
        """Compute the scores in a background thread; the table and plots follow.

        Returns the worker (None when the choice is refused; a notification says why).
        """
        try:
            if not self.real.value or not self.synthetic.value:
                raise CellsynthError("add a real and a synthetic image layer first")
            real, synthetic = self.viewer.layers[self.real.value], self.viewer.layers[self.synthetic.value]
            if real is synthetic:
                raise CellsynthError("choose two different image layers")
            voxels = layer_voxel_size(real), layer_voxel_size(synthetic)
            paired = self.labels.value != NO_LABELS
            if paired and self.viewer.layers[self.labels.value].data.shape != synthetic.data.shape:
                raise CellsynthError(f"the labels {self.viewer.layers[self.labels.value].data.shape} are not those "
                                     f"of the synthetic image {synthetic.data.shape}; choose its labels or none")
        except CellsynthError as err:
            show_error(f"cellsynth: {err}")
            return None
        self.compare_button.enabled = False
        self.table.value = "computing..."
        worker = create_worker(compare_images, real.data, synthetic.data, *voxels, paired=paired,
                               _start_thread=False, _connect={"errored": self._failed})
        worker.returned.connect(self._show)
        worker.finished.connect(lambda: setattr(self.compare_button, "enabled", True))
        self.worker = worker
        worker.start()
        return worker

    def _failed(self, err: Exception) -> None:
        self.table.value = "failed"
        show_error(f"cellsynth: {error_line(err)}")

    def _show(self, result: dict[str, Any]) -> None:
        self.result = result
        self.table.value = format_scores(result["scores"])
        _draw(self._figure, result)
        self._canvas.draw_idle()


def _plot_canvas() -> tuple[Any, Any]:
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.0, 4.5), layout="constrained")
    canvas = FigureCanvasQTAgg(figure)
    canvas.setMinimumHeight(320)
    return figure, canvas


def _draw(figure: Any, result: Mapping[str, Any]) -> None:
    """Histograms (normalized intensity) and xy power spectra (cycles/µm) of both images."""
    figure.clear()
    histogram_axes, spectrum_axes = figure.subplots(2, 1)
    for name, histogram in result["histograms"].items():
        centres = (np.arange(len(histogram)) + 0.5) / len(histogram)
        histogram_axes.plot(centres, histogram, label=name)
    histogram_axes.set(xlabel="normalized intensity", ylabel="fraction of voxels", yscale="log")
    for name, (frequency, power) in result["spectra"].items():
        spectrum_axes.plot(frequency, power, label=name)
    spectrum_axes.set(xlabel="spatial frequency (cycles/µm)", ylabel="xy power", yscale="log")
    histogram_axes.legend(fontsize="small")
