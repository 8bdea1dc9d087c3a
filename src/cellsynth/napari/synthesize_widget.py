"""The "Synthesize" widget: simulate an annotation and render its image inside napari.

Choose a preset or set the kind, shape, voxel size, cell size or nucleus radius, seed,
model (with the physics model, optionally a renderer file from ``cellsynth calibrate``) and
alpha, then press *Simulate and render*. A preset brings its family (which decides what
``default`` means) and its calibrated renderer, as ``cellsynth dataset --preset`` uses them. The work runs in a background thread
(the viewer stays responsive; *Cancel* stops it between stages) and the result appears as
labels, mask, foreground and image layers at the voxel size in µm. Changing alpha
afterwards re-renders the image of the same annotation. *Save sample folder* writes the
result as the folder ``cellsynth simulate`` + ``cellsynth synthesize`` would write with the
same settings and seed: the volumes are byte for byte the same.

Bad settings (a shape too large for this machine's memory, a missing generator file, an
organism without room for a cell...) show a napari notification and change no layer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
    TupleEdit,
)
from napari.layers import Layer
from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils.notifications import show_error, show_info

from cellsynth import io
from cellsynth.errors import CellsynthError
from cellsynth.napari.layers import LayerData, contrast_limits, layers_from_sample

if TYPE_CHECKING:
    import napari

CUSTOM = "(none)"
"""The preset choice that leaves every field as set by hand."""
MODEL_CHOICES = ("default", "physics", "shipped generator", "generator file")
LAYER_PREFIX = "synthesized"
SHOWN_KEYS = ("cell_size", "radius")
"""Preset ``simulate`` keys that the widget shows as fields; the preset's other keys are kept."""


@dataclass(frozen=True)
class Request:
    """Everything a run needs, read from the widget in the GUI thread."""

    kind: str
    shape: tuple[int, int, int]
    voxel_size: io.VoxelSize
    seed: int
    simulate: Mapping[str, Any]
    model_spec: str
    model: Any
    alpha: float
    beta: float = 100.0
    settings: Mapping[str, Any] = field(default_factory=dict)
    """Remaining synthesis settings of the preset (patch, overlap, blend...)."""
    renderer: Any = None
    """Physics parameters: a renderer file, or the preset's (None: the physics defaults)."""
    family: str | None = None
    """The preset's family of real volumes (decides what ``default`` means)."""


class SynthesizeWidget(Container):
    """Simulate and render a synthetic sample in a background thread (see the module notes).

    Parameters
    ----------
    napari_viewer
        The viewer the layers go to (napari passes it).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        from cellsynth.dataset import preset_names

        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.preset = ComboBox(label="preset", choices=[CUSTOM, *preset_names()], value=CUSTOM,
                               tooltip="fill the fields from a shipped preset (its other settings are kept)")
        self.kind = ComboBox(label="kind", choices=["nuclei", "membranes"], value="nuclei")
        self.shape = TupleEdit(label="shape (z, y, x)", value=(32, 128, 128), options={"min": 1, "max": 100_000},
                               tooltip="volume shape in voxels")
        self.voxel_size = TupleEdit(label="voxel size (µm)", value=(1.0, 0.5, 0.5),
                                    options={"min": 0.001, "max": 1000.0, "step": 0.05},
                                    tooltip="voxel size (z, y, x) in µm")
        self.cell_size = FloatSpinBox(label="cell size (µm)", value=0.0, min=0.0, max=10_000.0, step=1.0,
                                      tooltip="mean cell diameter in µm; 0: the default (10 µm for membranes, "
                                              "4x the radius for nuclei)")
        self.radius = FloatSpinBox(label="nucleus radius (µm)", value=4.0, min=0.1, max=1000.0, step=0.5,
                                   tooltip="mean nucleus radius in µm (nuclei only)")
        self.seed = SpinBox(label="seed", value=0, min=0, max=2**31 - 1,
                            tooltip="the same seed gives the same sample and image")
        self.model = ComboBox(label="model", choices=list(MODEL_CHOICES), value="default",
                              tooltip="default: the best built-in for the kind; physics: the optical model; "
                                      "shipped generator: the trained GAN of the kind; generator file: yours")
        self.model_file = FileEdit(label="generator file", mode="r", filter="*.pt", visible=False,
                                   tooltip="a generator from `cellsynth train`")
        self.renderer_file = FileEdit(label="renderer file", mode="r", filter="*.yaml",
                                      tooltip="physics parameters from `cellsynth calibrate` (physics and a default "
                                              "that resolves to physics); empty: the preset's, else the defaults")
        self.alpha = FloatSpinBox(label="alpha (µm)", value=100.0, min=0.1, max=1e6, step=10.0,
                                  tooltip="positional map decay length in µm (Eq. 1): small renders a deeper, "
                                          "poorer image; changing it re-renders the same annotation")
        self.run_button = PushButton(text="Simulate and render")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="progress", value=0, min=0, max=1)
        self.status = Label(label="", value="")
        self.folder = FileEdit(label="sample folder", mode="w", tooltip="where Save writes the sample folder")
        self.save_after_run = CheckBox(text="save after each run", value=False)
        self.save_button = PushButton(text="Save sample folder", enabled=False)
        for spin, decimals in ((self.cell_size, 4), (self.radius, 4), (self.alpha, 4),
                               *((axis, 8) for axis in self.voxel_size)):
            _show_decimals(spin, decimals)
        self.extend([self.preset, self.kind, self.shape, self.voxel_size, self.cell_size, self.radius, self.seed,
                     self.model, self.model_file, self.renderer_file, self.alpha, self.run_button, self.cancel_button, self.progress,
                     self.status, self.folder, self.save_after_run, self.save_button])

        self.sample: io.Sample | None = None
        """The last simulated sample (its ``image`` is the last rendered image)."""
        self.request: Request | None = None
        """The settings that made :attr:`sample`."""
        self.worker: GeneratorWorker | None = None
        self._preset_values: dict[str, Any] = {}
        self._generation = 0

        self.preset.changed.connect(self._apply_preset)
        self.kind.changed.connect(self._update_visibility)
        self.model.changed.connect(self._update_visibility)
        self.alpha.changed.connect(self._rerender)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.save_button.changed.connect(self.save)
        self._update_visibility()

    # ------------------------------------------------------------------ settings

    def _apply_preset(self, name: str) -> None:
        """Fill the fields from preset ``name``; keep its other settings for the runs."""
        from cellsynth.dataset import load_preset

        if name == CUSTOM:
            self._preset_values = {}
            return
        self.renderer_file.line_edit.value = ""  # the preset's renderer, unless a file is chosen again
        preset = load_preset(name)
        simulate = dict(preset["simulate"])
        self.kind.value = preset["kind"]
        self.shape.value = tuple(preset["shape"])
        self.voxel_size.value = tuple(preset["voxel_size"])
        self.cell_size.value = float(simulate.pop("cell_size", 0.0) or 0.0)
        if "radius" in simulate:
            self.radius.value = float(simulate.pop("radius"))
        synth = dict(preset["synthesize"])
        model = str(synth.pop("model", "default"))
        self.model.value = model if model in ("default", "physics") else (
            "shipped generator" if model in ("nuclei", "membranes") else "generator file")
        if self.model.value == "generator file":
            self.model_file.value = model
        self.alpha.value = float(synth.pop("alpha")[0])
        self._preset_values = {"simulate": simulate, "synthesize": synth, "renderer": preset.get("renderer"),
                               "family": preset.get("family")}

    def _update_visibility(self, *_: Any) -> None:
        self.radius.visible = self.kind.value == "nuclei"
        self.model_file.visible = self.model.value == "generator file"
        self.renderer_file.visible = self.model.value in ("default", "physics")

    def read_request(self) -> Request:
        """The run's settings, checked here (in the GUI thread) so that bad input never starts a run.

        Raises
        ------
        CellsynthError
            For a shape too large for memory, a missing model file, or invalid values.
        """
        from cellsynth.dataset.presets import simulate_arguments
        from cellsynth.simulate.organism import check_shape
        from cellsynth.simulate.pipeline import check_simulation
        from cellsynth.synthesis import check_synthesis

        kind = self.kind.value
        shape = check_shape(tuple(int(s) for s in self.shape.value))
        voxel = io.check_voxel_size(self.voxel_size.value)
        simulate = dict(self._preset_values.get("simulate", {}))
        simulate["cell_size"] = float(self.cell_size.value) or None
        if kind == "nuclei":
            simulate["radius"] = float(self.radius.value)
        simulate = simulate_arguments(simulate)
        check_simulation(kind, shape, voxel, **simulate)  # every setting and the memory, before any work
        settings = {k: v for k, v in self._preset_values.get("synthesize", {}).items() if k != "beta"}
        beta = float(self._preset_values.get("synthesize", {}).get("beta", 100.0))
        spec, seed, alpha = self._model_spec(kind), int(self.seed.value), float(self.alpha.value)
        renderer, family = self._renderer(spec), self._preset_values.get("family")
        plan = check_synthesis(shape, voxel, model=spec, kind=kind, alpha=alpha, beta=beta, seed=seed,
                               renderer=renderer, family=family, **settings)
        return Request(kind=kind, shape=shape, voxel_size=voxel, seed=seed, simulate=simulate, model_spec=spec,
                       model=plan.model, alpha=alpha, beta=beta, settings=settings, renderer=renderer, family=family)

    def _renderer(self, spec: str) -> Any:
        """The physics parameters: the renderer file chosen, else the preset's (None: the defaults)."""
        if spec not in ("default", "physics"):
            return None
        text = self.renderer_file.line_edit.value.strip()  # empty: none chosen (.value would be ".")
        if text:
            path = Path(text)
            if not path.is_file():
                raise CellsynthError(f"renderer file {text!r} not found; choose a file from `cellsynth calibrate` "
                                     "or clear the field")
            return path
        return self._preset_values.get("renderer")

    def _model_spec(self, kind: str) -> str:
        choice = self.model.value
        if choice == "shipped generator":
            return kind
        if choice == "generator file":
            path = Path(self.model_file.value)
            if not str(self.model_file.value) or not path.is_file():
                raise CellsynthError(f"generator file {str(path)!r} not found; choose a .pt file from "
                                     "`cellsynth train` or another model")
            return str(path)
        return choice

    # ------------------------------------------------------------------ actions

    def run(self) -> GeneratorWorker | None:
        """Simulate and render with the current settings in a background thread.

        Returns the worker (None when the settings are refused; a notification says why).
        """
        try:
            request = self.read_request()
        except CellsynthError as err:
            show_error(f"cellsynth: {err}")
            return None
        folder = None
        if self.save_after_run.value:
            folder = self._output_folder()
            if folder is None:
                return None
        return self._start(_simulate_and_render, request, folder, steps=3 if folder else 2,
                           done=lambda result: self._show(*result))

    def cancel(self) -> None:
        """Stop the running work at its next stage; what it made so far is dropped."""
        if self.worker is not None:
            self.worker.quit()
            self._generation += 1  # results of the stopped worker are ignored
            self._finish("cancelled")

    def save(self) -> GeneratorWorker | None:
        """Write the current sample and image as a sample folder (in a background thread)."""
        if self.sample is None or self.request is None:
            show_error("cellsynth: nothing to save yet; press Simulate and render first")
            return None
        folder = self._output_folder()
        if folder is None:
            return None
        return self._start(_write, self.sample, folder, steps=1,
                           done=lambda path: show_info(f"cellsynth: wrote {path}"))

    def _output_folder(self) -> Path | None:
        """The chosen sample folder, or None (with a notification) when it cannot be written."""
        text = str(self.folder.value)
        if not text or text == ".":
            show_error("cellsynth: choose the sample folder to write first")
            return None
        path = Path(text)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            show_error(f"cellsynth: {path} already exists and is not empty; choose a new folder")
            return None
        return path

    def _rerender(self, alpha: float) -> GeneratorWorker | None:
        """Render the current annotation again at the new alpha (no new simulation)."""
        if self.sample is None or self.request is None:
            return None
        request = replace(self.request, alpha=float(alpha))
        return self._start(_render, self.sample, request, steps=1, done=self._show_image)

    def _start(self, work: Callable[..., Generator[str, None, Any]], *args: Any, steps: int,
               done: Callable[[Any], None]) -> GeneratorWorker:
        """Run generator function ``work(*args)`` in a thread; each yield is a finished stage
        (a status text); ``done`` gets its return value in the GUI thread."""
        if self.worker is not None:
            self.worker.quit()
        self._generation += 1
        generation = self._generation
        started = time.perf_counter()
        self.progress.max, self.progress.value = steps, 0
        self.run_button.enabled = self.save_button.enabled = False
        self.cancel_button.enabled = True
        self.status.value = "working..."

        def on_yield(stage: str) -> None:
            if generation == self._generation:
                self.progress.value = min(self.progress.value + 1, steps)
                self.status.value = stage

        def on_return(result: Any) -> None:
            if generation == self._generation:
                done(result)
                self.progress.value = steps
                self._finish(f"done in {time.perf_counter() - started:.1f} s")

        def on_error(err: Exception) -> None:
            if generation == self._generation:
                show_error(f"cellsynth: {error_line(err)}")
                self._finish("failed")

        worker = create_worker(work, *args, _start_thread=False, _connect={"errored": on_error})
        worker.yielded.connect(on_yield)
        worker.returned.connect(on_return)

        def on_finish() -> None:
            if self.worker is worker:
                self.worker = None

        worker.finished.connect(on_finish)
        self.worker = worker
        worker.start()
        return worker

    def _finish(self, status: str) -> None:
        self.status.value = status
        self.run_button.enabled = True
        self.cancel_button.enabled = False
        self.save_button.enabled = self.sample is not None

    # ------------------------------------------------------------------ layers

    def _show(self, sample: io.Sample, request: Request) -> None:
        self.sample, self.request = sample, request
        for layer_data in layers_from_sample(sample, LAYER_PREFIX):
            self._put_layer(layer_data)

    def _show_image(self, result: tuple[np.ndarray, Request]) -> None:
        image, request = result
        assert self.sample is not None
        self.sample.image, self.request = image, request
        self.sample.metadata = _metadata(self.sample.metadata, request)
        self._put_layer(layers_from_sample(self.sample, LAYER_PREFIX)[-1])

    def _put_layer(self, layer_data: LayerData) -> None:
        """Replace the data of the layer of that name (keeping the user's display settings), or add it."""
        data, attributes, layer_type = layer_data
        name = attributes["name"]
        if name in self.viewer.layers and self.viewer.layers[name]._type_string == layer_type:
            layer = self.viewer.layers[name]
            layer.data = data
            layer.scale = attributes["scale"]
            layer.metadata = attributes["metadata"]
            if layer_type == "image":
                layer.contrast_limits = contrast_limits(data)
        else:
            self.viewer.add_layer(Layer.create(data, attributes, layer_type))


def _show_decimals(spin: FloatSpinBox, decimals: int) -> None:
    """Let a float field hold ``decimals`` decimals (Qt rounds the value to those it shows;
    presets give voxel sizes such as 0.28371837 µm)."""
    value = spin.value
    spin.native.setDecimals(decimals)
    spin.value = value


def error_line(err: Exception) -> str:
    """One line for a notification: a user error as it is, anything else with its type."""
    return str(err) if isinstance(err, CellsynthError) else f"{type(err).__name__}: {err}"


# ---------------------------------------------------------------------- work (background thread)


def _metadata(meta: Mapping[str, Any], request: Request) -> dict[str, Any]:
    """The sample's metadata with the seed and the synthesis settings of ``request``."""
    from cellsynth.render.registry import describe_model

    return {**meta, "seed": request.seed, "command": "napari Synthesize",
            "synthesis": {"model": describe_model(request.model), "model_spec": request.model_spec,
                          **({"renderer": str(request.renderer)} if isinstance(request.renderer, Path) else {}),
                          **({"family": request.family} if request.family else {}),
                          "kind": request.kind, "alpha": request.alpha, "beta": request.beta, "seed": request.seed,
                          **request.settings}}


def _render_image(sample: io.Sample, request: Request) -> np.ndarray:
    from cellsynth.synthesis import synthesize_image

    return synthesize_image(sample.mask, sample.foreground, request.voxel_size, model=request.model,
                            kind=request.kind, alpha=request.alpha, beta=request.beta, seed=request.seed,
                            progress=False, **request.settings)


def _simulate_and_render(request: Request, folder: Path | None) -> Generator[str, None, tuple[io.Sample, Request]]:
    """Simulate, render and (with ``folder``) write; yields after each stage."""
    from cellsynth.simulate.pipeline import simulate_sample

    sample = simulate_sample(request.kind, request.shape, request.voxel_size, np.random.default_rng(request.seed),
                             progress=False, **request.simulate)
    yield f"simulated {len(sample.positions.get('label', ()))} {request.kind}; rendering..."
    sample.image = _render_image(sample, request)
    sample.metadata = _metadata(sample.metadata, request)
    yield "rendered"
    if folder is not None:
        yield from _write(sample, folder)
    return sample, request


def _render(sample: io.Sample, request: Request) -> Generator[str, None, tuple[np.ndarray, Request]]:
    """Render ``sample`` again with ``request`` (a new alpha)."""
    image = _render_image(sample, request)
    yield f"rendered at alpha {request.alpha:g} µm"
    return image, request


def _write(sample: io.Sample, folder: Path) -> Generator[str, None, Path]:
    """Write ``sample`` as a sample folder, atomically (nothing appears until it is complete)."""
    io.write_sample(folder, sample)
    yield f"wrote {folder}"
    return folder
