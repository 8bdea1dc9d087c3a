"""The wheel: it holds every file of the package, installs, and behaves like the source tree."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import cellsynth
from cellsynth.render.registry import default_model_name

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(cellsynth.__file__).parent


def _package_files() -> set[str]:
    """Every file under src/cellsynth that an installation needs (no caches)."""
    return {str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the project (so that the build leaves nothing in the checkout)."""
    if not (ROOT / "pyproject.toml").is_file() or PACKAGE.parent != ROOT / "src":
        pytest.skip("needs the source checkout")
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "project"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(tmp / "dist"), str(source)], check=True, capture_output=True, timeout=300)
    return next((tmp / "dist").glob("cellsynth-*.whl"))


def test_the_wheel_holds_every_file_of_the_package(wheel):
    with zipfile.ZipFile(wheel) as archive:
        packed = {name for name in archive.namelist() if name.startswith("cellsynth/")}
    assert _package_files() - packed == set()


def test_the_installed_wheel_resolves_default_as_the_source_tree(wheel, tmp_path):
    """Installed in a fresh environment (the dependencies come from this interpreter's), the package
    is the wheel's, finds its models and scores, and `default` means what it means here."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    str(wheel)], check=True, env=env, capture_output=True, timeout=300)
    code = ("import json, cellsynth\n"
            "from cellsynth.render.registry import SHIPPED_DIR, default_model_name\n"
            "kinds = ('nuclei', 'membranes')\n"
            "print(json.dumps({'file': cellsynth.__file__, 'presets': cellsynth.preset_names(),\n"
            "                  'default': {k: default_model_name(k) for k in kinds},\n"
            "                  'scores': {k: json.loads((SHIPPED_DIR / f'{k}.scores.json').read_text())\n"
            "                             for k in kinds}}))")
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    installed = json.loads(result.stdout)
    assert Path(installed["file"]).resolve().is_relative_to(venv.resolve())
    assert installed["presets"] == cellsynth.preset_names()
    assert installed["default"] == {k: default_model_name(k) for k in ("nuclei", "membranes")}
    assert installed["scores"] == {k: json.loads((PACKAGE / "models" / f"{k}.scores.json").read_text())
                                   for k in ("nuclei", "membranes")}
