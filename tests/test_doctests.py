"""The Examples sections of the docstrings run and give what they show."""

import doctest
import importlib
from pathlib import Path

import pytest

import cellsynth

PACKAGE = Path(cellsynth.__file__).parent
MODULES = sorted(
    ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py") if p.name != "__main__.py"
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, torch_one_thread):
    if name.startswith("cellsynth.napari."):  # the plugin's widgets import napari (the [napari] extra)
        pytest.importorskip("napari")
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name, globs=vars(module).copy()):
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} docstring example(s) of {name} failed (output above)"


def test_the_package_examples_are_found():
    tests = doctest.DocTestFinder().find(cellsynth, "cellsynth")
    assert any("cs.synthesize_image" in example.source for t in tests for example in t.examples)
