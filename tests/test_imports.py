"""Module boundaries: no import cycles, the layers import only downwards, and the public API.

The import graph is read from the source (every ``import`` statement, also those inside
functions, which are imports all the same when the function runs); the promises that
matter to users are also checked at run time, in fresh interpreters.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import cellsynth

PACKAGE = Path(cellsynth.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """The cellsynth modules and the other top-level packages that a module imports."""
    ours, theirs = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] != "cellsynth":
                theirs.add(name.split(".")[0])
            elif name in MODULES:
                ours.add(name)
    return ours, theirs


GRAPH, EXTERNAL = {}, {}
for _name, _path in MODULES.items():
    GRAPH[_name], EXTERNAL[_name] = _imports(_path)
    GRAPH[_name].discard(_name)
    GRAPH[_name].discard("cellsynth")  # `from cellsynth import __version__`: the light package module


def _reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for name in GRAPH[todo.pop()] - seen:
            seen.add(name)
            todo.append(name)
    return seen


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read():
    assert "cellsynth.simulate.annotations" in GRAPH["cellsynth.simulate.membranes"]
    assert "torch" in EXTERNAL["cellsynth.gan.networks"]


def test_no_import_cycles():
    assert _cycles() == []


def test_core_modules_never_import_the_command_line():
    offenders = {m: sorted(d for d in deps if d.startswith("cellsynth.cli"))
                 for m, deps in GRAPH.items() if not m.startswith(("cellsynth.cli", "cellsynth.__main__"))}
    assert {m: d for m, d in offenders.items() if d} == {}


GUI_PACKAGES = {"napari", "magicgui", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "superqt", "vispy", "npe2"}


def test_only_the_napari_plugin_imports_gui_packages():
    """The base install has no Qt: only the plugin's widgets import GUI packages (its
    reader, writer and sample data make plain layer data, usable without a display)."""
    users = {m: sorted(EXTERNAL[m] & GUI_PACKAGES) for m in GRAPH if not m.endswith("_widget")}
    assert {m: p for m, p in users.items() if p} == {}
    assert "napari" in EXTERNAL["cellsynth.napari.synthesize_widget"]
    assert not any(m.startswith("cellsynth.napari") for m in _reachable("cellsynth"))


def test_simulation_never_imports_torch():
    for module in (m for m in GRAPH if m.startswith("cellsynth.simulate")):
        users = sorted(m for m in _reachable(module) | {module} if "torch" in EXTERNAL[m])
        assert users == [], f"{module} reaches torch through {users}"


def test_rendering_never_imports_the_training_loop():
    for module in (m for m in GRAPH if m.startswith("cellsynth.render")):
        assert "cellsynth.gan.train" not in _reachable(module), module


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_import_cellsynth_is_light_and_simulation_stays_without_torch():
    code = """
import sys
import numpy as np
import cellsynth as cs
heavy = lambda: sorted(m for m in ("torch", "dask", "distributed", "matplotlib") if m in sys.modules)
print(heavy())
cs.simulate_sample("membranes", (8, 24, 24), (1, 1, 1), np.random.default_rng(0), organism="box", progress=False)
cs.simulate_sample("nuclei", (8, 24, 24), (1, 1, 1), np.random.default_rng(0), radius_um=3, progress=False)
print(heavy())
"""
    assert _run(code).splitlines() == ["[]", "[]"]


def test_rendering_with_a_generator_does_not_load_the_training_loop():
    code = """
import sys
from cellsynth.render.registry import load_model
load_model("nuclei", "nuclei")
print("cellsynth.gan.train" in sys.modules, "cellsynth.gan.checkpoints" in sys.modules)
"""
    assert _run(code) == "False True"


def test_every_public_name_resolves():
    for package in ("cellsynth", "cellsynth.simulate", "cellsynth.render", "cellsynth.gan", "cellsynth.evaluate",
                    "cellsynth.shapes", "cellsynth.dataset"):
        module = __import__(package, fromlist=["_"])
        missing = [name for name in module.__all__ if getattr(module, name, None) is None]
        assert missing == [], package
        assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        cellsynth.nothing  # noqa: B018


def test_load_dataset_needs_no_posix_only_module(tmp_path):
    """Windows has no fcntl: reading a data set must not need it (only writing one takes the lock)."""
    from cellsynth.dataset import manifest

    (tmp_path / "samples").mkdir()
    (tmp_path / "dataset.json").write_text(json.dumps(
        {"format": manifest.DATASET_FORMAT, "parameters": {"kind": "nuclei", "voxel_size": [1, 1, 1]}, "samples": []}))
    code = f"""
import sys
sys.modules["fcntl"] = None  # import fcntl now fails, as on Windows
import cellsynth
print(len(cellsynth.load_dataset({str(tmp_path)!r})))
"""
    assert _run(code) == "0"
