"""The "Compare" widget: realism scores of a synthetic image against a real one, in napari.

Pick a real image layer and a synthetic one. The unpaired realism benchmark
(:func:`cellsynth.evaluate.realism.realism_benchmark`) compares them as distributions: they
need not show the same cells, nor have the same shape or voxel size. It gives the intensity
histogram W1, the log radial xy power spectrum distance (cycles/µm), the KID on filter-bank
features of patches in µm, and the structure contrast-to-noise ratio (CNR) where the
structures are known: the real image's labels, and the synthetic image's simulated mask.
Beside them stands the floor: the same distances between the two z-halves of the real image.
Where the synthetic image was rendered from the real image's own labels, tick *paired*: the
paired scores NRMSE, SSIM and ZNCC are added. The histograms and spectra are drawn below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, PushButton
from napari.layers import Image, Labels
from napari.qt.threading import FunctionWorker, create_worker
from napari.utils.notifications import show_error

from cellsynth import io
from cellsynth.errors import CellsynthError
from cellsynth.napari.synthesize_widget import error_line

if TYPE_CHECKING:
    import napari

NONE = "(none)"
PAIRED = ("nrmse", "ssim", "zncc")
LOWER_IS_BETTER = {"histogram_w1": True, "spectrum": True, "kid": True, "nrmse": True, "ssim": False, "zncc": False}


def layer_voxel_size(layer: Any) -> io.VoxelSize:
    """The voxel size in µm of a 3D layer: its scale."""
    if layer.ndim != 3:
        raise CellsynthError(f"layer {layer.name!r} is {layer.ndim}D; compare 3D (Z, Y, X) volumes "
                             "(one sample of a stack at a time)")
    return io.check_voxel_size(layer.scale)


def compare_images(real: Any, synthetic: Any, real_voxel: io.VoxelSize, synthetic_voxel: io.VoxelSize, *,
                   kind: str = "nuclei", real_labels: Any = None, synthetic_mask: Any = None,
                   synthetic_foreground: Any = None, paired: bool = False) -> dict[str, Any]:
    """The Compare widget's scores and curves.

    Parameters
    ----------
    real, synthetic
        The two images (Z, Y, X), any intensity range.
    real_voxel, synthetic_voxel
        Their voxel sizes in µm (z, y, x).
    kind
        ``"nuclei"`` or ``"membranes"``: how ``real_labels`` become the real structure.
    real_labels
        Instance labels of the real image (its CNR), or None.
    synthetic_mask, synthetic_foreground
        The synthetic image's structure mask and organism (its CNR), or None.
    paired
        The synthetic image was rendered from ``real_labels``: add NRMSE, SSIM and ZNCC
        (the images must have one shape and voxel size).

    Returns
    -------
    dict
        ``scores`` (the synthetic row: ``histogram_w1``, ``spectrum``, ``kid``, ``cnr``,
        ``cnr_ratio``, and the paired scores), ``floor`` (the real-vs-real row), ``real_cnr``
        and ``curves`` (``real`` and ``synthetic``: histogram, frequency, psd) for the plots.

    Raises
    ------
    CellsynthError
        For a pair of different shapes or voxel sizes, or volumes too small to compare.
    """
    from cellsynth.evaluate import metrics
    from cellsynth.evaluate.realism import FLOOR, realism_benchmark, realism_volume

    real_volume = realism_volume(np.asarray(real), real_voxel, kind=kind, labels=real_labels, name="real")
    synthetic_volume = realism_volume(np.asarray(synthetic), synthetic_voxel, mask=synthetic_mask,
                                      foreground=synthetic_foreground, name="synthetic")
    result = realism_benchmark({"synthetic": [synthetic_volume]}, [real_volume], progress=False)
    scores = {k: v for k, v in result["rows"]["synthetic"].items() if k not in ("cnr_volumes", "n_volumes")}
    if paired:
        if np.shape(real) != np.shape(synthetic) or not np.allclose(real_voxel, synthetic_voxel, rtol=1e-3):
            raise CellsynthError(f"a pair needs one shape and voxel size, got {np.shape(real)} at {real_voxel} µm "
                                 f"and {np.shape(synthetic)} at {synthetic_voxel} µm; untick paired")
        scores.update({name: getattr(metrics, name)(real, synthetic) for name in PAIRED})
    return {"scores": scores, "floor": result["rows"][FLOOR], "real_cnr": result["real_cnr"],
            "curves": {name: result["curves"][name] for name in ("real", "synthetic")}}


def format_scores(result: Mapping[str, Any]) -> str:
    """The scores as lines ``name  synthetic  floor`` with ↓ (lower is better) or ↑ (higher is better)."""
    lines = [f"{'':14s}{'synthetic':>10s}{'floor':>9s}"]
    for name, value in result["scores"].items():
        floor = result["floor"].get(name) if name in LOWER_IS_BETTER else None
        better = (" ↓" if LOWER_IS_BETTER[name] else " ↑") if name in LOWER_IS_BETTER else ""
        lines.append(f"{name:14s}{_number(value):>10s}{_number(floor):>9s}{better}")
    lines.append(f"{'real cnr':14s}{_number(result['real_cnr']):>10s}")
    lines.append("↓ lower is better, ↑ higher is better; floor: real vs real")
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


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
        self.real_labels = ComboBox(label="real labels", choices=self._labels_names,
                                    tooltip="instance labels of the real image: its structure for the CNR")
        self.kind = ComboBox(label="kind", choices=["nuclei", "membranes"], value="nuclei",
                             tooltip="nuclei: labelled voxels are the structure; membranes: the walls between labels")
        self.synthetic = ComboBox(label="synthetic image", choices=self._image_names)
        self.synthetic_mask = ComboBox(label="synthetic mask", choices=self._labels_names,
                                       tooltip="the simulated mask the synthetic image was rendered from (its CNR)")
        self.paired = CheckBox(text="paired: the synthetic image was rendered from the real labels", value=False)
        self.compare_button = PushButton(text="Compare")
        self.table = Label(label="scores", value="")
        self.extend([self.real, self.real_labels, self.kind, self.synthetic, self.synthetic_mask, self.paired,
                     self.compare_button, self.table])
        self.result: dict[str, Any] | None = None
        self.worker: FunctionWorker | None = None
        self.table.native.setStyleSheet("font-family: monospace")  # an aligned table
        self.table.native.setMinimumHeight(self.table.native.fontMetrics().lineSpacing() * (len(PAIRED) + 9))
        self._figure, self._canvas = _plot_canvas()
        self.native.layout().addWidget(self._canvas)
        for event in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            event.connect(self.reset_choices)
        self.compare_button.changed.connect(self.compare)

    def _image_names(self, *_: Any) -> list[str]:
        return [layer.name for layer in self.viewer.layers if isinstance(layer, Image)]

    def _labels_names(self, *_: Any) -> list[str]:
        return [NONE, *(layer.name for layer in self.viewer.layers if isinstance(layer, Labels))]

    def _chosen_labels(self, choice: ComboBox, image: Any) -> Any:
        """The data of the labels layer chosen in ``choice`` (None for none), on the image's grid."""
        if choice.value in (None, NONE):
            return None
        layer = self.viewer.layers[choice.value]
        if layer.data.shape != image.data.shape:
            raise CellsynthError(f"{choice.label} {layer.name!r} {layer.data.shape} are not on the grid of "
                                 f"{image.name!r} {image.data.shape}; choose its own or none")
        return np.asarray(layer.data)

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
            real_labels = self._chosen_labels(self.real_labels, real)
            synthetic_mask = self._chosen_labels(self.synthetic_mask, synthetic)
            if self.paired.value and real_labels is None:
                raise CellsynthError("paired scores need the real labels the synthetic image was rendered from")
        except CellsynthError as err:
            show_error(f"cellsynth: {err}")
            return None
        self.compare_button.enabled = False
        self.table.value = "computing..."
        worker = create_worker(compare_images, np.asarray(real.data), np.asarray(synthetic.data), *voxels,
                               kind=self.kind.value, real_labels=real_labels, synthetic_mask=synthetic_mask,
                               paired=self.paired.value, _start_thread=False, _connect={"errored": self._failed})
        worker.returned.connect(self._show)
        worker.finished.connect(self._finished)
        self.worker = worker
        worker.start()
        return worker

    def _finished(self) -> None:
        self.compare_button.enabled = True
        self.worker = None

    def _failed(self, err: Exception) -> None:
        self.table.value = "failed"
        show_error(f"cellsynth: {error_line(err)}")

    def _show(self, result: dict[str, Any]) -> None:
        self.result = result
        self.table.value = format_scores(result)
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
    """Intensity histograms (each image normalized) and xy power spectra (cycles/µm) of both images."""
    figure.clear()
    histogram_axes, spectrum_axes = figure.subplots(2, 1)
    for name, curve in result["curves"].items():
        histogram = np.asarray(curve["histogram"])
        histogram_axes.plot((np.arange(len(histogram)) + 0.5) / len(histogram), histogram, label=name)
        spectrum_axes.plot(curve["frequency"], curve["psd"], label=name)
    histogram_axes.set(xlabel="normalized intensity", ylabel="fraction of voxels", yscale="log")
    spectrum_axes.set(xlabel="spatial frequency (cycles/µm)", ylabel="xy power (µm²)", yscale="log")
    histogram_axes.legend(fontsize="small")
